# The 2-node fast lab: the control plane on `control' (with its embedded PostgreSQL), agents
# on a and b with kernel WireGuard. Overlay ping both ways, `wg show` against the netmap,
# BPF maps pinned and readable with bpftool, a restart of the agent keeps the data plane.
#
#   control ---- a (agent, ls-lab)
#      \-------- b (agent, ls-lab)        one VLAN, 192.168.1.0/24
args@{ lightscaleModule, lightscalePackage }:
let
  common = import ./common.nix args;
in
{
  name = "lightscale-lab-2node";

  nodes = {
    control = { imports = [ common.node common.control ]; };
    a = { imports = [ common.node common.agent ]; };
    b = { imports = [ common.node common.agent ]; };
  };

  testScript = common.pythonHelpers + ''
    start_all()
    wait_for_control(control)

    join(control, a)
    join(control, b)
    a.wait_until_succeeds("test $(wg show ls-lab peers | wc -l) -eq 1", timeout=60)
    b.wait_until_succeeds("test $(wg show ls-lab peers | wc -l) -eq 1", timeout=60)

    with subtest("overlay ping both ways"):
        a.wait_until_succeeds(f"ping -c 1 -W 2 {overlay_v4(b)}", timeout=60)
        b.succeed(f"ping -c 3 -W 2 {overlay_v4(a)}")

    with subtest("wg show matches the netmap"):
        check_wg_matches_netmap(a, [b])
        check_wg_matches_netmap(b, [a])

    with subtest("BPF maps pinned and readable by bpftool"):
        check_maps_pinned(a)
        check_maps_pinned(b)

    with subtest("an agent restart keeps the interface and the tunnel"):
        before = ifindex(a)
        a.systemctl("restart lightscale-agent-lab.service")
        a.wait_for_unit("lightscale-agent-lab.service")
        b.succeed(f"ping -c 3 -W 2 {overlay_v4(a)}")
        assert ifindex(a) == before, "ls-lab was recreated by an agent restart"
  '';
}
