#!/usr/bin/env bash
# trust-acl: an ACL policy set with `lightscale-control acl set' reaches the agents' BPF
# packet filter (agent --bpf) and is seen on real traffic: web may open TCP 5432 on db,
# nothing else passes; removing the policy allows everything again. Visibility "all" keeps
# the peers configured, so what is refused is refused by the filter, not by a missing peer.
#
#   web 10.99.0.11 ---- br0 (ns inet, control 10.99.0.1:8080) ---- db 10.99.0.12
#   (agent --bpf, tag web)                                         (agent --bpf, tag db)
source "$(dirname "$0")/lib.sh"
lab_init
mountpoint -q /sys/fs/bpf || { echo "ok 1 # SKIP no bpffs at /sys/fs/bpf"; exit 0; }

lab_ns inet
lab_bridge inet br0 10.99.0.1/24 fd99::1/64
lab_node web inet br0 10.99.0.11/24 fd99::11/64
lab_node db inet br0 10.99.0.12/24 fd99::12/64
control_start inet 10.99.0.1 8080
net_create acl
tw=$(lsc token create --network acl --tag web --json | jq -r .enroll)
td=$(lsc token create --network acl --tag db --json | jq -r .enroll)
node_init web "$tw"
node_init db "$td"
agent_start web --bpf
agent_start db --bpf
wait_for 40 "web peer" peer_count web 1 || lab_die "web peer" "$(node_log web)"
wait_for 40 "db peer" peer_count db 1 || lab_die "db peer" "$(node_log db)"
DB4=$(node_addr db 4)
WEB4=$(node_addr web 4)

# tcp_ok NODE ADDR PORT: a TCP connection opens (a listener on ADDR's node)
listen() { bg "$1" "$LAB_DIR/$1.listen$2.log" python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', $2)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(b'hi\n'); c.close()"; }
tcp_ok() { nsx "$1" python3 -c "
import socket, sys
s = socket.socket(); s.settimeout(2)
try:
    s.connect(('$2', $3)); sys.exit(0 if s.recv(3) == b'hi\n' else 1)
except Exception:
    sys.exit(1)"; }
listen db 5432
listen db 5433
listen web 22
sleep 0.5

ping_within web "$DB4" 10 && ok "no policy: ping web -> db" || fail "no policy ping" "$(node_log web)"
tcp_ok web "$DB4" 5433 && ok "no policy: web -> db:5433 opens" || fail "no policy tcp 5433"

cat >"$LAB_DIR/policy.json" <<'P'
{"rules": [{"src": ["tag:web"], "dst": ["tag:db"], "ports": ["5432"], "proto": "tcp"}],
 "visibility": "all"}
P
cp "$LAB_DIR/policy.json" "$LAB_DIR/inet-policy.json"
lsc acl set --network acl "$LAB_DIR/policy.json" >/dev/null && ok "acl set" || fail "acl set"
# the agents apply the new map at their long-poll; the filter is on when 5433 closes
wait_for 20 "filter on db" sh -c "! nsenter --net=/run/netns/$(nsname web) python3 -c \"
import socket, sys
s = socket.socket(); s.settimeout(1)
try:
    s.connect(('$DB4', 5433)); sys.exit(0)
except Exception:
    sys.exit(1)\"" && ok "policy: web -> db:5433 is now dropped" || fail "5433 dropped" "$(node_log db)"
tcp_ok web "$DB4" 5432 && ok "policy: web -> db:5432/tcp allowed (and its replies)" || fail "5432 allowed" "$(node_log db)"
ping_ok web "$DB4" && fail "policy: ping web -> db dropped" || ok "policy: ping web -> db dropped (tcp only)"
tcp_ok db "$WEB4" 22 && fail "policy: db -> web:22 dropped" || ok "policy: db -> web:22 dropped (no rule)"
check_eq "both still see each other (visibility all)" "1 1" "$(lsx web status --json | jq '.peers | length') $(lsx db status --json | jq '.peers | length')"
lab_log "db bpf status: $(lsx db bpf status 2>&1 | grep -i -m3 filter)"

lsc acl delete --network acl >/dev/null
wait_for 20 "filter off" tcp_ok web "$DB4" 5433 && ok "policy removed: web -> db:5433 opens again" || fail "filter off" "$(node_log db)"
ping_within web "$DB4" 5 && ok "policy removed: ping again" || fail "ping after delete"
tap_done
