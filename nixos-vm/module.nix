# services.lightscale: the control plane, the relay and one agent per profile.
#
#   services.lightscale.control.enable = true;        # lightscale-control (own PostgreSQL),
#                                                     # HTTPS (self-signed unless tls.certificateFile)
#   services.lightscale.relay.enable = true;          # lightscale-relay (STUN + relays)
#   services.lightscale.profiles.home = {             # lightscale agent --profile home
#     controlUrl = "https://control.example:8080";
#     tokenFile = "/run/secrets/lightscale-home-token";   # the enrollment string
#     engine = "kernel";
#   };
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkEnableOption mkOption mkIf types mapAttrs' nameValuePair escapeShellArgs
    optional mkMerge mapAttrsToList;
  cfg = config.services.lightscale;

  profileOpts = { name, ... }: {
    options = {
      controlUrl = mkOption {
        type = types.str;
        description = "Control server URL(s), comma-separated for an HA set.";
        example = "https://10.0.0.1:8080";
      };
      tokenFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = ''
          File holding the enrollment string (`lightscale-control token create --json`:
          `enroll`, TOKEN@IDENTITY@PINS), or a bare token. The enrollment string carries the
          control plane's identity key and TLS pins, so the agent pins its HTTPS server from
          the first request (a self-signed certificate needs no CA). Read once, when the
          profile has no keys yet (first start); later starts reuse the keys under the state
          directory.
        '';
      };
      engine = mkOption {
        type = types.enum [ "auto" "kernel" "userspace" ];
        default = "auto";
        description = "WireGuard engine: kernel (netlink), userspace (built-in engine on TUN), or auto.";
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Extra arguments for `lightscale agent`.";
      };
    };
  };

  agentUnit = name: p: nameValuePair "lightscale-agent-${name}" {
    description = "Lightscale agent, profile ${name}";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-online.target" ];
    after = [ "network-online.target" ] ++ optional cfg.control.enable "lightscale-control.service";
    path = [ cfg.package pkgs.iproute2 pkgs.wireguard-tools ];
    # First start: keys and enrollment. The token is read from a file, never from the
    # command line of a long-lived process.
    preStart = ''
      if [ ! -e /var/lib/lightscale/${name}/machine.key ]; then
        ${if p.tokenFile == null then ''
          echo "lightscale: profile ${name} is not enrolled and has no tokenFile" >&2
          exit 1
        '' else ''
          lightscale init --profile ${name} --control ${lib.escapeShellArg p.controlUrl} \
            --token "$(cat ${p.tokenFile})"
          lightscale register --profile ${name}
        ''}
      fi
    '';
    serviceConfig = {
      ExecStart = escapeShellArgs ([
        "${cfg.package}/bin/lightscale" "agent"
        "--profile" name
        "--engine" p.engine
        "--foreground"
      ] ++ p.extraArgs);
      Restart = "on-failure";
      RestartSec = 2;
      StateDirectory = "lightscale";
      StateDirectoryMode = "0700";
      RuntimeDirectory = "lightscale";
      RuntimeDirectoryPreserve = true;
      # The data plane (interface, BPF links) outlives the agent; do not kill it on stop.
      KillMode = "process";
    };
  };
in
{
  options.services.lightscale = {
    package = mkOption {
      type = types.package;
      default = pkgs.lightscale or (throw "services.lightscale.package: add the lightscale overlay or set the package");
      defaultText = lib.literalExpression "pkgs.lightscale";
      description = "The Lightscale package.";
    };

    control = {
      enable = mkEnableOption "the Lightscale control plane (lightscale-control)";
      listenAddress = mkOption {
        type = types.str;
        default = "0.0.0.0";
        description = "Address the control plane listens on.";
      };
      port = mkOption {
        type = types.port;
        default = 8080;
        description = "Port of the control plane.";
      };
      database = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "postgresql:///lightscale?host=/run/postgresql";
        description = "PostgreSQL connection string; null runs a private cluster under the state directory.";
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Open the control plane's port.";
      };
      tls = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Serve HTTPS (the default). Without certificateFile, lightscale-control makes a
            self-signed ECDSA certificate in its state directory on the first start; its pin
            is endorsed by the deployment's identity key and travels in the enrollment
            strings of `token create --json`, so agents need no CA. false serves plain HTTP
            (`--insecure-http`): only behind another TLS terminator.
          '';
        };
        certificateFile = mkOption {
          type = types.nullOr types.path;
          default = null;
          example = "/var/lib/acme/control.example/cert.pem";
          description = ''
            PEM certificate (chain) to serve instead of the self-signed one; set keyFile too.
            Its key's pin is endorsed and published like the self-signed one's. Both files
            reach the service through systemd credentials, so they may be readable by root only.
          '';
        };
        keyFile = mkOption {
          type = types.nullOr types.path;
          default = null;
          example = "/var/lib/acme/control.example/key.pem";
          description = "PEM private key of certificateFile.";
        };
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Extra arguments for lightscale-control.";
      };
    };

    relay = {
      enable = mkEnableOption "the Lightscale relay (STUN, UDP and stream relay)";
      stunPort = mkOption {
        type = types.port;
        default = 3478;
        description = "STUN / UDP relay port.";
      };
      streamPort = mkOption {
        type = types.port;
        default = 8444;
        description = "Stream (TCP/TLS) relay port.";
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Open the relay's ports.";
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Extra arguments for lightscale-relay.";
      };
    };

    profiles = mkOption {
      type = types.attrsOf (types.submodule profileOpts);
      default = { };
      description = "Networks this machine joins; one agent (and interface) per profile.";
    };
  };

  config = mkMerge [
    (mkIf cfg.control.enable {
      assertions = [
        {
          assertion = (cfg.control.tls.certificateFile == null) == (cfg.control.tls.keyFile == null);
          message = "services.lightscale.control.tls: certificateFile and keyFile go together";
        }
        {
          assertion = cfg.control.tls.enable || cfg.control.tls.certificateFile == null;
          message = "services.lightscale.control.tls: certificateFile is set but tls.enable is false";
        }
      ];
      systemd.services.lightscale-control = {
        description = "Lightscale control plane";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ] ++ optional (cfg.control.database != null) "postgresql.service";
        # With no --db, lightscale-control runs initdb/postgres from PATH under its state dir.
        path = [ cfg.package config.services.postgresql.package ];
        serviceConfig = {
          ExecStart = escapeShellArgs ([
            "${cfg.package}/bin/lightscale-control" "serve"
            "--listen" "${cfg.control.listenAddress}:${toString cfg.control.port}"
            "--state-dir" "/var/lib/lightscale-control"
          ]
          ++ (if cfg.control.database != null
              then [ "--db" cfg.control.database ]
              else [ "--pg-bin" "${config.services.postgresql.package}/bin" ])
          ++ (if !cfg.control.tls.enable then [ "--insecure-http" ]
              else if cfg.control.tls.certificateFile == null then [ "--tls" ]
              else [ "--tls-cert" "%d/tls.crt" "--tls-key" "%d/tls.key" ])
          ++ cfg.control.extraArgs);
          # %d: the credentials directory, where systemd puts copies the dynamic user can read.
          LoadCredential = lib.optionals (cfg.control.tls.enable && cfg.control.tls.certificateFile != null) [
            "tls.crt:${toString cfg.control.tls.certificateFile}"
            "tls.key:${toString cfg.control.tls.keyFile}"
          ];
          DynamicUser = true;
          StateDirectory = "lightscale-control";
          StateDirectoryMode = "0700";
          Restart = "on-failure";
        };
      };
      networking.firewall.allowedTCPPorts = optional cfg.control.openFirewall cfg.control.port;
    })

    (mkIf cfg.relay.enable {
      systemd.services.lightscale-relay = {
        description = "Lightscale relay";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        serviceConfig = {
          ExecStart = escapeShellArgs ([
            "${cfg.package}/bin/lightscale-relay"
            "--stun-port" (toString cfg.relay.stunPort)
            "--stream-port" (toString cfg.relay.streamPort)
          ] ++ cfg.relay.extraArgs);
          DynamicUser = true;
          AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" ];
          Restart = "on-failure";
        };
      };
      networking.firewall = mkIf cfg.relay.openFirewall {
        allowedUDPPorts = [ cfg.relay.stunPort ];
        allowedTCPPorts = [ cfg.relay.streamPort ];
      };
    })

    (mkIf (cfg.profiles != { }) {
      # Kernel WireGuard, bpffs and the tools operators use to inspect both.
      boot.kernelModules = [ "wireguard" ];
      environment.systemPackages = [ cfg.package pkgs.wireguard-tools pkgs.bpftools ];
      systemd.services = mapAttrs' agentUnit cfg.profiles;
      networking.firewall.checkReversePath = "loose";
      networking.firewall.trustedInterfaces = mapAttrsToList (name: _: "ls-${name}") cfg.profiles;
    })
  ];
}
