# The 5-node lab: the control plane plus four agents (kernel WireGuard). Three join first and
# form a full mesh; the fourth joins later and reaches the others through netmap updates that
# add a peer without recreating anyone's interface; every pair pings; `wg show` matches the
# netmap everywhere; a removed node disappears from the others' peers.
#
#   control --+-- n1
#             +-- n2
#             +-- n3
#             +-- n4 (joins late)          one VLAN, 192.168.1.0/24
args@{ lightscaleModule, lightscalePackage }:
let
  common = import ./common.nix args;
  agentNode = { imports = [ common.node common.agent ]; };
in
{
  name = "lightscale-lab-5node";

  nodes = {
    control = { imports = [ common.node common.control ]; };
    n1 = agentNode;
    n2 = agentNode;
    n3 = agentNode;
    n4 = agentNode;
  };

  testScript = common.pythonHelpers + ''
    import itertools

    start_all()
    wait_for_control(control)

    first = [n1, n2, n3]
    for n in first:
        join(control, n)
    for n in first:
        n.wait_until_succeeds("test $(wg show ls-lab peers | wc -l) -eq 2", timeout=90)

    with subtest("full mesh of three"):
        for x, y in itertools.permutations(first, 2):
            x.wait_until_succeeds(f"ping -c 1 -W 2 {overlay_v4(y)}", timeout=60)

    with subtest("a late node is added by netmap update, without interface flap"):
        before = {n.name: ifindex(n) for n in first}
        join(control, n4)
        for n in first:
            n.wait_until_succeeds("test $(wg show ls-lab peers | wc -l) -eq 3", timeout=90)
            assert ifindex(n) == before[n.name], f"{n.name}: ls-lab was recreated"
        everyone = first + [n4]
        for x, y in itertools.permutations(everyone, 2):
            x.wait_until_succeeds(f"ping -c 1 -W 2 {overlay_v4(y)}", timeout=60)

    with subtest("wg show matches the netmap on every node"):
        for n in everyone:
            check_wg_matches_netmap(n, [o for o in everyone if o is not n])
            check_maps_pinned(n)

    with subtest("a deleted node leaves every peer list"):
        gone = status(n4)["public_key"]
        node_id = status(n4)["self"]["id"]
        control.succeed(f"lightscale-control node delete {node_id} --state-dir {CONTROL_STATE}")
        for n in first:
            n.wait_until_fails(f"wg show ls-lab peers | grep -qF '{gone}'", timeout=90)
  '';
}
