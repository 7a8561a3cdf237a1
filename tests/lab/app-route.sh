#!/usr/bin/env bash
# app-route: per-app routing. Only the processes of one cgroup leave through the chosen
# exit node (a cgroup/sock_create BPF program marks their sockets; ip rules send the mark
# to the exit's table); everything else on c keeps its direct route. A second cgroup
# routed to another exit of the same network is a conflict (one interface routes the
# default to one peer) and is blocked, not leaked. Changing the exit, the agent
# restarting, and removing the rule are checked, v4 and v6.
#
#   e1 (exit) lo 198.51.100.1, 2001:db8:100::1 answers "e1"     e2 (exit): the same, "e2"
#        | 10.99.0.21                                                | 10.99.0.22
#        +------------------- br0 (ns inet: 10.99.0.1, fd99::1) ------+
#                                 control :8080; lo 198.51.100.1, 2001:db8:100::1 answers "direct" on :8090
#                                    |
#                               c 10.99.0.11 (default route via 10.99.0.1 / fd99::1)
#                               cgroups $CG2/lsux-$$-a, -b
source "$(dirname "$0")/lib.sh"
lab_init

app_cgroups c

lab_star c e1=21 e2=22
nsx c ip route add default via 10.99.0.1
nsx c ip -6 route add default via fd99::1
for n in inet e1 e2; do
	nsx $n ip addr add 198.51.100.1/32 dev lo
	nsx $n ip addr add 2001:db8:100::1/128 dev lo
	mkdir -p "$LAB_DIR/www-$n"
	if [ $n = inet ]; then echo direct; else echo $n; fi >"$LAB_DIR/www-$n/who"
	bg $n "$LAB_DIR/www-$n.log" python3 -m http.server 8090 --bind :: --directory "$LAB_DIR/www-$n"
done
lab_exits_up
exits=$(lsx c exit-node list --json | jq -c '[.exit_nodes[].name] | sort')
check_eq "both exits offered" '["e1","e2"]' "$exits"

# who SOURCE-CGROUP|- FAMILY: the answer of the "internet" host from c
who() {
	local cg=$1 fam=$2 url=http://198.51.100.1:8090/who
	[ "$fam" = 6 ] && url="http://[2001:db8:100::1]:8090/who"
	if [ "$cg" = - ]; then
		nsx c curl -s --max-time 2 "$url" 2>/dev/null
	else
		sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
			nsenter --net="/run/netns/$(nsname c)" -- curl -s --max-time 2 "$url" 2>/dev/null
	fi
}
who_is() { [ "$(who "$1" "$2")" = "$3" ]; }
wait_for 10 "direct path" who_is - 4 direct || lab_die "c reaches the internet directly" "$(who - 4)"
check_eq "before: a process in cgroup a goes direct (v4)" direct "$(who "$CGA" 4)"
check_eq "before: no exit node on c" none "$(lsx c exit-node list --json | jq -r .selection)"

out=$(lsx c app-route add --cgroup "$CGA" --exit e9 2>&1) && fail "an unknown exit is refused" ||
	{ [[ $out == *"e9"* ]] && ok "an unknown exit is refused, naming it" || fail "unknown exit message" "$out"; }
out=$(lsx c app-route add --cgroup "$CG2/lsux-$$-nosuch" --exit e1 2>&1) && fail "a missing cgroup is refused" ||
	{ [[ $out == *"lsux-$$-nosuch"* ]] && ok "a missing cgroup is refused, naming it" || fail "missing cgroup message" "$out"; }
out=$(lsx c app-route add --cgroup /tmp --exit e1 2>&1) && fail "a directory outside cgroup2 is refused" ||
	{ [[ $out == *"cgroup v2"* ]] && ok "a directory outside cgroup2 is refused" || fail "not cgroup2 message" "$out"; }

lsx c exit-node use e1 --cgroup "$CGA" >/dev/null && ok "exit-node use e1 --cgroup a" || fail "exit-node use --cgroup" "$(lsx c exit-node use e1 --cgroup "$CGA" 2>&1)"
wait_for 5 "cgroup a via e1" who_is "$CGA" 4 e1 && ok "a process in cgroup a leaves through e1 (v4)" ||
	fail "cgroup a via e1 v4" "$(who "$CGA" 4)" "$(nsx c ip rule)" "$(lsx c app-route list)"
check_eq "... and over IPv6" e1 "$(who "$CGA" 6)"
check_eq "a process outside the cgroup still goes direct (v4)" direct "$(who - 4)"
check_eq "... and v6" direct "$(who - 6)"
check_eq "the profile's own exit choice is unchanged" none "$(lsx c exit-node list --json | jq -r .selection)"
check_eq "exit-node list shows the app route" "$CGA e1" \
	"$(lsx c exit-node list --json --no-probe | jq -r '.app_routes[0] | "\(.cgroup) \(.exit)"')"
lst=$(lsx c app-route list --json)
check_eq "list: cgroup, exit, state" "$CGA e1 active" "$(jq -r '.app_routes[0] | "\(.cgroup) \(.exit_name) \(.state)"' <<<"$lst")"
check_eq "list: BPF program attached, 4 rules" "true 4" "$(jq -r '.app_routes[0] | "\(.bpf) \(.rules)"' <<<"$lst")"
(($(jq '.app_routes[0].sockets_marked' <<<"$lst") >= 2)) && ok "list: the program counted the cgroup's sockets" ||
	fail "sockets_marked" "$lst"
mark=$(jq -r '.app_routes[0].mark' <<<"$lst") table=$(jq -r '.app_routes[0].table' <<<"$lst")
nsx c ip rule | grep -q "fwmark $mark lookup $table" && ok "ip rule: fwmark $mark lookup $table" || fail "ip rule" "$(nsx c ip rule)"
nsx c ip -6 rule | grep -q "fwmark $mark lookup $table" && ok "ip -6 rule too" || fail "ip -6 rule" "$(nsx c ip -6 rule)"
nsx c ip route show table "$table" | grep -q "^blackhole default" && ok "the app table has the fail-closed blackhole" ||
	fail "blackhole" "$(nsx c ip route show table "$table")"
bpftool -j link show | jqe --argjson id "$(stat -c %i "$CGA")" '.[] | select(.type == "cgroup" and .cgroup_id == $id and (.attach_type | test("sock_create")))' >/dev/null &&
	ok "bpftool: a sock_create link on cgroup a" || fail "bpftool link" "$(bpftool link show)"
lsx c app-route list | grep -q "$CGA -> exit e1" && ok "list text" || fail "list text" "$(lsx c app-route list)"

# a second cgroup to the other exit of the same interface: a conflict, blocked
lsx c app-route add --cgroup "$CGB" --exit e2 >/dev/null
st=$(lsx c app-route list --json | jq -r --arg c "$CGB" '.app_routes[] | select(.cgroup == $c) | .state')
[[ $st == conflict:* ]] && ok "cgroup b to e2 (same interface as e1): a conflict" || fail "conflict state" "$st"
check_eq "cgroup b's traffic is blocked, not leaked" "" "$(who "$CGB" 4)"
check_eq "cgroup a still through e1" e1 "$(who "$CGA" 4)"
lsx c app-route remove --cgroup "$CGB" >/dev/null && ok "app-route remove b" || fail "remove b"
check_eq "cgroup b direct again" direct "$(who "$CGB" 4)"

# change a's exit
lsx c app-route add --cgroup "$CGA" --exit e2 >/dev/null && ok "app-route add a -> e2 (changes the exit)" || fail "change exit"
wait_for 5 "cgroup a via e2" who_is "$CGA" 4 e2 && ok "cgroup a now leaves through e2" || fail "a via e2" "$(who "$CGA" 4)"
check_eq "one rule for a (same slot)" 1 "$(lsx c app-route list --json | jq '.app_routes | length')"

# the agent restarts: the rule is in the profile, the program stays pinned
agent_kill c
check_eq "with the agent stopped, cgroup a still leaves through e2" e2 "$(who "$CGA" 4)"
agent_start c --apply-routes
sleep 2
wait_for 10 "cgroup a via e2 after restart" who_is "$CGA" 4 e2 && ok "after the agent restart cgroup a still leaves through e2" ||
	fail "after restart" "$(who "$CGA" 4)" "$(lsx c app-route list)" "$(nsx c wg show "$(ifname_of c)")"
check_eq "... and the rest goes direct" direct "$(who - 4)"

lsx c app-route remove --cgroup "$CGA" >/dev/null && ok "app-route remove a" || fail "remove a"
check_eq "cgroup a direct again (v4)" direct "$(who "$CGA" 4)"
check_eq "cgroup a direct again (v6)" direct "$(who "$CGA" 6)"
check_eq "no app rule left" 0 "$(nsx c ip rule | grep -c "lookup $table")"
check_eq "no pinned program left" "" "$(ls "/sys/fs/bpf/lightscale-perapp/$(profile_of c)" 2>/dev/null)"
check_eq "no peer keeps the default route" 0 "$(nsx c wg show "$(ifname_of c)" allowed-ips | grep -c '0\.0\.0\.0/0')"
out=$(lsx c app-route remove --cgroup "$CGA" 2>&1) && fail "removing it twice fails" ||
	{ [[ $out == *"no app route"* ]] && ok "removing it twice: no app route" || fail "remove twice message" "$out"; }
tap_done
