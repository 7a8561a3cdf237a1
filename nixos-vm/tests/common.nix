# Shared by the labs: every machine imports the Lightscale module and the package, and the
# test script gets helpers (tokens, status, overlay addresses, wg show vs netmap checks).
{ lightscaleModule, lightscalePackage }:
{
  node = { pkgs, ... }: {
    imports = [ lightscaleModule ];
    services.lightscale.package = lightscalePackage;
    virtualisation.memorySize = 1024;
    networking.firewall.allowedUDPPorts = [ 51820 ];
    environment.systemPackages = [ lightscalePackage pkgs.curl pkgs.jq pkgs.wireguard-tools pkgs.bpftools ];
  };

  # An agent that waits for its token: the test script writes /run/lightscale-token and
  # starts the unit.
  agent = { lib, ... }: {
    services.lightscale.profiles.lab = {
      controlUrl = "http://control:8080";
      tokenFile = "/run/lightscale-token";
      engine = "kernel";
    };
    systemd.services.lightscale-agent-lab.wantedBy = lib.mkForce [ ];
  };

  control = { ... }: {
    services.lightscale.control = {
      enable = true;
      port = 8080;
      openFirewall = true;
    };
  };

  pythonHelpers = ''
    import json
    import re

    CONTROL_STATE = "/var/lib/lightscale-control"

    def new_token(control):
        """An enrollment token for network `lab' (network created on first use)."""
        control.succeed(f"lightscale-control network show lab --state-dir {CONTROL_STATE} "
                        f"|| lightscale-control network create lab --state-dir {CONTROL_STATE}")
        out = control.succeed(f"lightscale-control token create --network lab --state-dir {CONTROL_STATE}")
        m = re.search(r"lst_[A-Za-z0-9_-]+", out)
        assert m, f"no token in: {out}"
        return m.group(0)

    def join(control, node):
        token = new_token(control)
        node.succeed(f"install -m 0600 /dev/null /run/lightscale-token && echo {token} > /run/lightscale-token")
        node.systemctl("start lightscale-agent-lab.service")
        node.wait_for_unit("lightscale-agent-lab.service")
        node.wait_until_succeeds("ip link show ls-lab")

    def status(node):
        return json.loads(node.succeed("lightscale status --profile lab --json"))

    def overlay_v4(node):
        for a in status(node)["self"]["addresses"]:
            if ":" not in a:
                return a.split("/")[0]
        raise AssertionError(f"{node.name} has no IPv4 overlay address")

    def ifindex(node):
        return int(node.succeed("cat /sys/class/net/ls-lab/ifindex").strip())

    def check_wg_matches_netmap(node, others):
        """`wg show` lists exactly the netmap's peers, and every other node is among them."""
        st = status(node)
        wg_peers = set(node.succeed("wg show ls-lab peers").split())
        netmap_peers = {p["public_key"] for p in st["peers"]}
        assert wg_peers == netmap_peers, f"{node.name}: wg {wg_peers} != netmap {netmap_peers}"
        for o in others:
            assert status(o)["public_key"] in wg_peers, f"{node.name} lacks peer {o.name}"
        allowed = node.succeed("wg show ls-lab allowed-ips")
        for p in st["peers"]:
            for a in p["addresses"]:
                assert a.split("/")[0] in allowed, f"{node.name}: {a} not in AllowedIPs:\n{allowed}"

    def check_maps_pinned(node):
        node.succeed("test -d /sys/fs/bpf/lightscale/lab")
        maps = node.succeed("find /sys/fs/bpf/lightscale/lab -maxdepth 2 -type f").split()
        assert maps, f"{node.name}: nothing pinned under /sys/fs/bpf/lightscale/lab"
        node.succeed("bpftool map show pinned " + maps[0] + " || bpftool prog show pinned " + maps[0])
        node.succeed("bpftool map list | grep -q .")
  '';
}
