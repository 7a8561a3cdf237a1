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

  # An agent that waits for its enrollment string: the test script writes
  # /run/lightscale-token and starts the unit. The control plane serves HTTPS with its
  # self-signed certificate; the enrollment string carries its pin.
  agent = { lib, ... }: {
    services.lightscale.profiles.lab = {
      controlUrl = "https://control:8080";
      tokenFile = "/run/lightscale-token";
      engine = "kernel";
      extraArgs = [ "--bpf" ];
    };
    systemd.services.lightscale-agent-lab.wantedBy = lib.mkForce [ ];
  };

  # HTTPS is the module's default (tls.enable); no certificateFile: self-signed.
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

    def wait_for_control(control):
        """The control plane answers over HTTPS, pinned to the key of its own certificate."""
        control.wait_for_unit("lightscale-control.service")
        control.wait_until_succeeds(f"test -s {CONTROL_STATE}/tls.pin")
        control.wait_until_succeeds(
            f"curl -sfk --pinnedpubkey $(cat {CONTROL_STATE}/tls.pin) https://control:8080/v1/health")
        control.fail("curl -sf --max-time 5 http://control:8080/v1/health")

    def new_token(control):
        """An enrollment string TOKEN@IDENTITY@PINS for network `lab' (network created on
        first use): the agent pins the control plane's self-signed certificate from it."""
        control.succeed(f"lightscale-control network show lab --state-dir {CONTROL_STATE} "
                        f"|| lightscale-control network create lab --state-dir {CONTROL_STATE}")
        out = control.succeed(f"lightscale-control token create --network lab --json --state-dir {CONTROL_STATE}")
        enroll = json.loads(out)["enroll"]
        pin = control.succeed(f"cat {CONTROL_STATE}/tls.pin").strip()
        assert re.match(r"^lst_[A-Za-z0-9_-]+@[A-Za-z0-9+/=]+@", enroll), f"not an enrollment string: {enroll}"
        assert pin in enroll.split("@")[2].split(","), f"{enroll} lacks the server's pin {pin}"
        return enroll

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
        """agent --bpf: programs on ls-lab, every pinned map readable by bpftool, and the
        network's overlay prefix in the routes map (named after the network)."""
        pin = "/sys/fs/bpf/lightscale/lab"
        st = json.loads(node.succeed("lightscale bpf status --profile lab --json"))
        hooks = {a["hook"] for a in st["attachments"] if a["interface"] == "ls-lab" and a["attached"]}
        assert {"overlay_in", "overlay_out"} <= hooks, f"{node.name}: programs on ls-lab: {hooks}"
        maps = node.succeed(f"find {pin} -maxdepth 1 -type f").split()
        assert f"{pin}/routes4" in maps and f"{pin}/config" in maps, f"{node.name}: pinned: {maps}"
        for m in maps:
            node.succeed(f"bpftool map show pinned {m} && bpftool map dump pinned {m} >/dev/null")
        info = json.loads(node.succeed(f"bpftool -j map dump pinned {pin}/route_info"))
        names = {e["formatted"]["value"]["name"] for e in info if e["formatted"]["value"]["family"]}
        assert "overlay lab" in names, f"{node.name}: route_info names {names}"
  '';
}
