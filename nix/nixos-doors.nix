# nixos-doors.nix — the three doors (keeperd, scoutd, netd) as hardened NixOS
# system services: `imports = [ claude-box.nixosModules.doors ];`.
#
# A door's control socket admits only the daemon's own uid (and root), and the
# launcher talks to it as the person who launches boxes — so the doors run as
# that user (`user`), not as a dynamic one. What systemd takes away from them:
# every capability, new privileges, writes outside their state and socket
# directories (keeperd: plus the repositories it commits to), devices, kernel
# knobs, namespaces, and — for scoutd routed through a netd door — the network
# itself. Sockets live in a private directory /run/claude-box (0700, the
# user's), never mounted into a box as a whole.
{ self }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    ;
  cfg = config.services.claude-box-doors;
  system = pkgs.stdenv.hostPlatform.system;
  flakePackages = self.packages.${system} or { };

  socketDir = "/run/claude-box";
  # The doors keep their own files (keeperd's key, launch records) under the
  # user's ~/.claude-box, as they do when the user runs them; "-": it may not
  # exist yet.
  home = config.users.users.${cfg.user}.home or "/home/${cfg.user}";
  ownState = [ "-${home}/.claude-box" ];
  socket = door: "${socketDir}/${door}.sock";

  # systemd hardening every door gets.
  hardening = {
    User = cfg.user;
    Group = cfg.group;
    UMask = "0077";
    RuntimeDirectory = "claude-box";
    RuntimeDirectoryMode = "0700";
    RuntimeDirectoryPreserve = "yes";
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = "read-only";
    PrivateTmp = true;
    PrivateDevices = true;
    DevicePolicy = "closed";
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    KeyringMode = "private";
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
    # A refused call fails with EPERM instead of killing the daemon: Go's
    # runtime raises its own open-file limit at start (setrlimit, in
    # @resources) and carries on when it may not.
    SystemCallErrorNumber = "EPERM";
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
    ];
    Restart = "on-failure";
    RestartSec = "2s";
    TimeoutStopSec = "15s";
  };

  doorOptions = door: {
    enable = mkEnableOption "the ${door} door";
    package = mkOption {
      type = types.package;
      default = flakePackages.${door};
      defaultText = "claude-box.packages.\${system}.${door}";
      description = "The ${door} package.";
    };
    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra arguments to `${door} serve` (e.g. --allow, --profile).";
    };
  };

  serve =
    door: args:
    lib.escapeShellArgs (
      [
        "${cfg.${door}.package}/bin/${door}"
        "serve"
        "--socket"
        (socket door)
      ]
      ++ args
      ++ cfg.${door}.extraArgs
    );

  optionalArg = flag: value: lib.optionals (value != null) [ flag (toString value) ];
in
{
  options.services.claude-box-doors = {
    user = mkOption {
      type = types.str;
      example = "alice";
      description = ''
        The user who launches boxes. The doors run as this user: a door's
        control socket admits only its own uid (and root).
      '';
    };
    group = mkOption {
      type = types.str;
      default = "users";
      description = "Group of the door services.";
    };

    keeperd = doorOptions "keeperd" // {
      policy = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "keeperd policy file (--policy). Without one keeperd denies everything.";
      };
      key = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/home/alice/.claude-box/keeperd/signing_key";
        description = ''
          The ed25519 signing key (--key). null: keeperd's default, a key of
          its own under the user's ~/.claude-box (generated 0600 on first use).
        '';
      };
      repositories = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "/home/alice/src" ];
        description = ''
          Directories keeperd may write (the worktrees it commits in). Every
          other path is read-only to it.
        '';
      };
    };

    scoutd = doorOptions "scoutd" // {
      config = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "scoutd config file (--config).";
      };
      tokenFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = ''
          A read token for the GitHub API, passed as a systemd credential
          (never in the environment, never in the store).
        '';
      };
      egressDoor = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/claude-box/netd-scout.sock";
        description = ''
          Route all of scoutd's egress through this netd door (--egress-door).
          When set, scoutd gets no network of its own: a private network
          namespace and unix sockets only.
        '';
      };
    };

    netd = doorOptions "netd" // {
      config = mkOption {
        type = types.nullOr types.path;
        default = null;
        description = "netd config file (--config).";
      };
    };
  };

  config = mkIf (cfg.keeperd.enable || cfg.scoutd.enable || cfg.netd.enable) {
    # The launcher finds the control sockets here instead of ~/.claude-box/run.
    environment.sessionVariables = {
      KEEPERD_SOCK = mkIf cfg.keeperd.enable (socket "keeperd");
      SCOUTD_SOCK = mkIf cfg.scoutd.enable (socket "scoutd");
      NETD_SOCK = mkIf cfg.netd.enable (socket "netd");
    };

    systemd.services = {
      claude-box-keeperd = mkIf cfg.keeperd.enable {
        description = "claude-box keeper door (signed commits, policed pushes)";
        wantedBy = [ "multi-user.target" ];
        after = [ "network-online.target" ];
        wants = [ "network-online.target" ];
        serviceConfig = hardening // {
          ExecStart = serve "keeperd" (
            optionalArg "--policy" cfg.keeperd.policy ++ optionalArg "--key" cfg.keeperd.key
          );
          ReadWritePaths = ownState ++ cfg.keeperd.repositories;
        };
      };

      claude-box-scoutd = mkIf cfg.scoutd.enable {
        description = "claude-box scout door (policed external reads)";
        wantedBy = [ "multi-user.target" ];
        after = [ "network-online.target" ] ++ lib.optional cfg.netd.enable "claude-box-netd.service";
        wants = [ "network-online.target" ];
        serviceConfig =
          hardening
          // {
            ExecStart = serve "scoutd" (
              optionalArg "--config" cfg.scoutd.config
              ++ optionalArg "--egress-door" cfg.scoutd.egressDoor
              ++ lib.optionals (cfg.scoutd.tokenFile != null) [
                "--token-file"
                "%d/token"
              ]
            );
            LoadCredential = lib.optional (cfg.scoutd.tokenFile != null) "token:${cfg.scoutd.tokenFile}";
            ReadWritePaths = ownState;
          }
          // lib.optionalAttrs (cfg.scoutd.egressDoor != null) {
            # No network of its own: everything goes through the netd door.
            PrivateNetwork = true;
            RestrictAddressFamilies = [ "AF_UNIX" ];
            IPAddressDeny = "any";
          };
      };

      claude-box-netd = mkIf cfg.netd.enable {
        description = "claude-box net door (policed egress)";
        wantedBy = [ "multi-user.target" ];
        after = [ "network-online.target" ];
        wants = [ "network-online.target" ];
        serviceConfig = hardening // {
          ExecStart = serve "netd" (optionalArg "--config" cfg.netd.config);
          ReadWritePaths = ownState;
        };
      };
    };
  };
}
