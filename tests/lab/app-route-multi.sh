#!/usr/bin/env bash
# app-route-multi: per-app routing across networks. One client in two networks, each
# with an exit node; cgroup a leaves through neta's exit, cgroup b through netb's, at
# the same time; other processes have no default route at all. The two app routes take
# distinct machine-wide slots (marks, tables, rule priorities).
#
#   ha (198.51.100.1: "A") -- ra (neta exit) --+            +-- rb (netb exit) -- hb (198.51.100.1: "B")
#                                              br0 (ns inet, control 10.99.0.1:8080)
#                                                  |
#                                              c 10.99.0.11: profiles ca (neta) and cb (netb)
#                                              cgroups $CG2/lsux-$$-a -> ra, -b -> rb
source "$(dirname "$0")/lib.sh"
lab_init

app_cgroups ca cb

multi_setup 0.0.0.0/0
agent_start ra
agent_start rb
multi_agent ca --apply-routes
multi_agent cb --apply-routes
multi_peers_up

# who CGROUP|-: the answer of 198.51.100.1 from c
who() {
	if [ "$1" = - ]; then
		nsx c curl -s --max-time 2 http://198.51.100.1:8080/who 2>/dev/null
	else
		sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$1" \
			nsenter --net="/run/netns/$(nsname c)" -- curl -s --max-time 2 http://198.51.100.1:8080/who 2>/dev/null
	fi
}
who_is() { [ "$(who "$1")" = "$2" ]; }
check_eq "before: no route to the internet from c" "" "$(who -)"

lsp ca app-route add --cgroup "$CGA" --exit ra >/dev/null && ok "ca: app-route add a -> ra" || fail "add a"
lsp cb exit-node use rb --cgroup "$CGB" >/dev/null && ok "cb: exit-node use rb --cgroup b" || fail "add b"
wait_for 8 "a via ra" who_is "$CGA" A && ok "cgroup a reaches the internet through neta's exit (A)" ||
	fail "a via ra" "$(who "$CGA")" "$(lsp ca app-route list)" "$(nsx c ip route get 198.51.100.1 mark 0x4c410001 2>&1)" \
		"$(nsx c wg show "$(ifname_of ca)" allowed-ips)" "$(nsx ra ip -s link show "$(ifname_of ra)")" \
		"$(nsx ra nft list ruleset 2>&1 | grep -i -B2 masq)" "$(nsx ra sysctl net.ipv4.ip_forward)"
wait_for 8 "b via rb" who_is "$CGB" B && ok "cgroup b, at the same time, through netb's exit (B)" ||
	fail "b via rb" "$(who "$CGB")" "$(lsp cb app-route list)"
check_eq "the rest of c still has no route out" "" "$(who -)"
nsx c nft list table inet lightscale-perapp | grep -q "ct mark set meta mark" &&
	ok "replies carry the app's mark back (ct mark; c has no route back to the internet)" || fail "nft ct mark" "$(nsx c nft list ruleset)"
sa=$(lsp ca app-route list --json | jq -r '.app_routes[0] | "\(.slot) \(.mark) \(.table)"')
sb=$(lsp cb app-route list --json | jq -r '.app_routes[0] | "\(.slot) \(.mark) \(.table)"')
[ "${sa%% *}" != "${sb%% *}" ] && ok "distinct slots across profiles ($sa / $sb)" || fail "slots" "$sa" "$sb"
check_eq "ca's state" active "$(lsp ca app-route list --json | jq -r '.app_routes[0].state')"
check_eq "cb's state" active "$(lsp cb app-route list --json | jq -r '.app_routes[0].state')"
out=$(lsp cb app-route add --cgroup "$CGA" --exit rb 2>&1) && fail "a cgroup routed by ca is refused in cb" ||
	{ [[ $out == *"already routed by profile '$(profile_of ca)'"* ]] && ok "a cgroup routed by another profile is refused, naming it" ||
		fail "cgroup conflict message" "$out"; }

# swap: a -> rb, b -> ra (remove, then add in the other profile)
lsp ca app-route remove --cgroup "$CGA" >/dev/null
lsp cb app-route remove --cgroup "$CGB" >/dev/null
lsp cb app-route add --cgroup "$CGA" --exit rb >/dev/null
lsp ca app-route add --cgroup "$CGB" --exit ra >/dev/null
wait_for 8 "a via rb" who_is "$CGA" B && ok "swapped: cgroup a through netb's exit" || fail "a via rb" "$(who "$CGA")"
wait_for 8 "b via ra" who_is "$CGB" A && ok "swapped: cgroup b through neta's exit" || fail "b via ra" "$(who "$CGB")"
lsp ca app-route remove --cgroup "$CGB" >/dev/null
lsp cb app-route remove --cgroup "$CGA" >/dev/null
check_eq "removed: no route out again" "" "$(who "$CGA")$(who "$CGB")"
check_eq "no app rules left on c" 0 "$(nsx c ip rule | grep -c 'fwmark 0x4c41')"
nsx c nft list table inet lightscale-perapp >/dev/null 2>&1 && fail "the conntrack mark table goes with the last app route" ||
	ok "the conntrack mark table goes with the last app route"
tap_done
