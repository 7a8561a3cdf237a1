#!/usr/bin/env bash
# dns-split: one client in two networks runs one resolver per profile (127.77.S.1, S the
# profile's slot + 1). Each answers the names under its network's suffix from the netmap
# (A and AAAA), NXDOMAIN for unknown names under the suffix, and forwards other names to
# an upstream DNS server in its own namespace (tests/lab/dns-upstream.py).
#
#   ha -- ra (neta) --+                         +-- rb (netb) -- hb
#                     br0 (ns inet, control 10.99.0.1:8080, upstream DNS 10.99.0.53 in ns up)
#                           |
#                     c 10.99.0.11: profiles ca (neta) and cb (netb)
source "$(dirname "$0")/lib.sh"
lab_init
command -v dig >/dev/null || { echo "1..0 # skip: no dig (bind9-dnsutils)"; exit 0; }

# (br0's MAC stays fixed while ports are added below: lab_bridge pins it, so the agents'
# ARP entries for 10.99.0.1 stay valid)
multi_setup
lab_node up inet br0 10.99.0.53/24
bg up "$LAB_DIR/upstream.log" python3 "$LAB_ROOT/tests/lab/dns-upstream.py" 10.99.0.53 53 www.example.com=203.0.113.7
wait_for 5 "upstream answers" sh -c "nsenter --net=/run/netns/$(nsname c) dig +time=1 +tries=1 @10.99.0.53 www.example.com +short | grep -q 203.0.113.7" ||
	lab_die "upstream DNS starts" "$(cat "$LAB_DIR/upstream.log")"

agent_start ra
agent_start rb
multi_agent ca --dns-upstream 10.99.0.53
multi_agent cb --dns-upstream 10.99.0.53:53

dstat() { lsp "$1" dns status --json; }
has_netmap() { [ "$(lsp "$1" status --json | jq '.netmap_version // 0')" -gt 0 ]; }
wait_for 40 "ca netmap" has_netmap ca && wait_for 40 "cb netmap" has_netmap cb ||
	fail "netmaps" "$(node_log ca)" "$(node_log cb)"
wait_for 10 "ca's resolver has records" sh -c "[ \"\$(nsenter --net=/run/netns/$(nsname c) $LS dns status --json --profile $(profile_of ca) --state-dir $LAB_DIR/ca | jq .records)\" -ge 2 ]" ||
	fail "ca records" "$(dstat ca)" "$(node_log ca)"
sa=$(dstat ca) sb=$(dstat cb)
lab_log "ca dns: $(jq -c . <<<"$sa")"
la=$(jq -r .listen <<<"$sa") lb=$(jq -r .listen <<<"$sb")
[[ "$la" == 127.77.*.1 && "$lb" == 127.77.*.1 && "$la" != "$lb" ]] && ok "one resolver per profile ($la, $lb)" || fail "listen addresses" "$la" "$lb"
check_eq "dns status: ca's suffix" neta.ls.internal "$(jq -r .suffix <<<"$sa")"
check_eq "dns status: cb's suffix" netb.ls.internal "$(jq -r .suffix <<<"$sb")"
check_eq "dns status: upstream" 10.99.0.53:53 "$(jq -r '.upstreams[0]' <<<"$sa")"
check_eq "dns status: no resolver integration without systemd-resolved" none "$(jq -r .integration <<<"$sa")"
jq -e '.instructions | contains("nameserver '"$la"'")' <<<"$sa" >/dev/null && ok "dns status: instructions name the resolver address" ||
	fail "instructions" "$(jq -r .instructions <<<"$sa")"
lsp ca dns status | grep -q "^resolver: *$la port 53" && ok "dns status (text)" || fail "dns status text" "$(lsp ca dns status)"

d() { nsx c dig +time=2 +tries=1 "$@"; }
ra4=$(node_addr ra 4) ra6=$(node_addr ra 6) rb4=$(node_addr rb 4)
check_eq "neta: ra.neta.ls.internal A" "$ra4" "$(d @"$la" ra.neta.ls.internal A +short)"
check_eq "neta: ra.neta.ls.internal AAAA" "$ra6" "$(d @"$la" ra.neta.ls.internal AAAA +short)"
check_eq "neta: the client's own name" "$(jq -r '.node.addresses[0]' "$LAB_DIR/ca.register.json")" "$(d @"$la" c.neta.ls.internal A +short)"
check_eq "netb: rb.netb.ls.internal A" "$rb4" "$(d @"$lb" rb.netb.ls.internal A +short)"
check_eq "neta: case-insensitive (RA.NETA.LS.INTERNAL)" "$ra4" "$(d @"$la" RA.NETA.LS.INTERNAL A +short)"
check_eq "neta: unknown name under the suffix: NXDOMAIN" NXDOMAIN \
	"$(d @"$la" nosuch.neta.ls.internal A | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')"
check_eq "netb: unknown name under the suffix: NXDOMAIN" NXDOMAIN \
	"$(d @"$lb" nosuch.netb.ls.internal A | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')"
check_eq "neta's resolver forwards the other network's names (no answer from netmap a)" NXDOMAIN \
	"$(d @"$la" rb.netb.ls.internal A | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')"
check_eq "neta: other names forwarded upstream" 203.0.113.7 "$(d @"$la" www.example.com A +short)"
check_eq "netb: other names forwarded upstream" 203.0.113.7 "$(d @"$lb" www.example.com A +short)"
check_eq "upstream NXDOMAIN passed through" NXDOMAIN "$(d @"$la" nothing.example.com A | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')"
sa=$(dstat ca)
(($(jq .forwarded <<<"$sa") >= 3)) && ok "dns status counts forwarded queries ($(jq .forwarded <<<"$sa"))" || fail "forwarded count" "$sa"
(($(jq .nxdomain <<<"$sa") >= 1)) && ok "dns status counts NXDOMAIN answers" || fail "nxdomain count" "$sa"

# a new peer joins netb: its name resolves without restarting anything
lab_node rb2 inet br0 10.99.0.14/24
node_init rb2 "$TOK_B"
agent_start rb2
rb2=$(node_addr rb2 4)
wait_for 40 "rb2 resolves" sh -c "nsenter --net=/run/netns/$(nsname c) dig +time=1 +tries=1 @$lb rb2.netb.ls.internal +short | grep -qx $rb2" &&
	ok "a new peer's name resolves after the netmap update" || fail "rb2 name" "$(d @"$lb" rb2.netb.ls.internal +short)" "$(dstat cb)"
# --manage-resolv-conf (on a lab copy: LIGHTSCALE_RESOLV_CONF), upstreams from that file
printf 'search example\nnameserver 10.99.0.53\n' >"$LAB_DIR/resolv.conf"
cp "$LAB_DIR/resolv.conf" "$LAB_DIR/resolv.conf.orig"
agent_kill ca
LIGHTSCALE_RESOLV_CONF="$LAB_DIR/resolv.conf" multi_agent ca --manage-resolv-conf
wait_for 5 "resolv.conf managed" grep -q "^nameserver $la # lightscale" "$LAB_DIR/resolv.conf"
check_eq "--manage-resolv-conf: our nameserver is the first line" "nameserver $la # lightscale $(profile_of ca)" "$(head -1 "$LAB_DIR/resolv.conf")"
check_eq "--manage-resolv-conf: the rest is kept" "$(cat "$LAB_DIR/resolv.conf.orig")" "$(tail -n +2 "$LAB_DIR/resolv.conf")"
check_eq "upstreams read from resolv.conf (ours left out)" '["10.99.0.53:53"]' "$(dstat ca | jq -c .upstreams)"
check_eq "dns status: integration resolv.conf" "resolv.conf ($LAB_DIR/resolv.conf)" "$(dstat ca | jq -r .integration)"
check_eq "forwarding through the upstream from resolv.conf" 203.0.113.7 "$(d @"$la" www.example.com A +short)"
agent_kill ca
check_eq "the original resolv.conf is back after the agent stops" "$(cat "$LAB_DIR/resolv.conf.orig")" "$(cat "$LAB_DIR/resolv.conf")"

# --no-dns: no resolver
agent_kill cb
multi_agent cb --no-dns
lsp cb dns status --json >/dev/null 2>&1 && fail "dns status fails with --no-dns" || ok "dns status fails with --no-dns"
d @"$lb" rb.netb.ls.internal +short >/dev/null 2>&1 && [ -n "$(d @"$lb" rb.netb.ls.internal +short 2>/dev/null)" ] &&
	fail "no resolver with --no-dns" || ok "no resolver with --no-dns"
tap_done
