# tests/lab/: netns labs of the agent and CLI (need root, wireguard-go, nft, jq).
# lab-2node runs in `make check`; the longer ones in `make check-lab`.
CHECK_LABS += tests/lab/lab-2node.sh tests/lab/multi-exit.sh
# dns-split: br0's MAC is fixed, so the agents' control connections no longer time out (15/15 under load)
CHECK_LABS += tests/lab/dns-split.sh
LONG_LABS  += tests/lab/dns-split.sh
# the issue-3 labs that CI must run, also part of make check-lab
CHECK_LABS += tests/lab/lab-5node.sh tests/lab/agent-restart.sh tests/lab/agent-control-outage.sh
LONG_LABS  += tests/lab/lab-5node.sh tests/lab/agent-restart.sh tests/lab/agent-control-outage.sh tests/lab/agent-bpf.sh \
              tests/lab/agent-2profiles.sh tests/lab/multi-overlap.sh
# issue 6: staged TLS key rotation with pinned agents and HA (~80 s), agents rotating their
# WireGuard keys before expiry (~95 s): over a minute each, so make check-lab
LONG_LABS  += tests/lab/trust-tls-rotate.sh tests/lab/trust-key-autorotate.sh
# NAT traversal and relay fallback in the agent (userspace/agent.c, tests/lab/relay-lib.sh)
CHECK_LABS += tests/lab/nat-direct.sh tests/lab/nat-fallback.sh
LONG_LABS  += tests/lab/nat-direct.sh tests/lab/nat-fallback.sh tests/lab/nat-relay-failover.sh \
              tests/lab/nat-rotate.sh tests/lab/nat-scale.sh tests/lab/nat-turn.sh
# a relayed peer's path MTU (per-peer MTU routes while on the UDP relay; ~25 s)
LONG_LABS  += tests/lab/nat-relay-mtu.sh
# IPv6-only underlay, per-app exit routing, the local UI and L2 segments (seed items)
CHECK_LABS += tests/lab/v6only-2node.sh tests/lab/app-route.sh tests/lab/ui-status.sh tests/lab/l2-segment.sh
LONG_LABS  += tests/lab/v6only-relay.sh tests/lab/app-route-multi.sh tests/lab/app-exit-metrics.sh
# BPF SNAT in the agent (--snat-subnet-routes) and routed mode's return routes (58 checks, ~50 s)
CHECK_LABS += tests/lab/agent-snat.sh
LONG_LABS  += tests/lab/agent-snat.sh
