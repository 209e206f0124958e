# home-manager.nix — the claude-box CLI and the three doors as user services:
# `imports = [ claude-box.homeManagerModules.default ];`.
#
# Linux: systemd user units; control sockets in ~/.claude-box/run (the
# daemons' default, dir 0700, sockets 0600). macOS: launchd agents with
# DOORS_TCP=1 (a podman machine cannot share unix sockets with the Mac).
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
  cfg = config.programs.claude-box;
  system = pkgs.stdenv.hostPlatform.system;
  flakePackages = self.packages.${system} or { };
  isDarwin = pkgs.stdenv.hostPlatform.isDarwin;
  doorNames = [
    "keeperd"
    "scoutd"
    "netd"
  ];
  enabledDoors = builtins.filter (d: cfg.doors.${d}.enable) doorNames;

  doorOptions = door: {
    enable = mkEnableOption "the ${door} door as a user service";
    package = mkOption {
      type = types.package;
      default = flakePackages.${door};
      defaultText = "claude-box.packages.\${system}.${door}";
      description = "The ${door} package.";
    };
    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--config"
        "/home/alice/.config/claude-box/${door}.json"
      ];
      description = "Extra arguments to `${door} serve`.";
    };
  };

  argv = door: [
    "${cfg.doors.${door}.package}/bin/${door}"
    "serve"
  ] ++ cfg.doors.${door}.extraArgs;

  systemdService = door: {
    Unit = {
      Description = "claude-box ${door} door";
      Documentation = "https://github.com/bounded-systems/claude-box/blob/main/docs/HOSTING.md";
    };
    Service = {
      ExecStart = lib.escapeShellArgs (argv door);
      Restart = "on-failure";
      RestartSec = "2s";
      UMask = "0077";
      NoNewPrivileges = true;
      LockPersonality = true;
      RestrictRealtime = true;
      RestrictSUIDSGID = true;
      SystemCallArchitectures = "native";
      TimeoutStopSec = "15s";
    };
    Install.WantedBy = [ "default.target" ];
  };

  launchdAgent = door: {
    enable = true;
    config = {
      ProgramArguments = argv door;
      EnvironmentVariables.DOORS_TCP = "1";
      RunAtLoad = true;
      KeepAlive = true;
      StandardErrorPath = "${config.home.homeDirectory}/.claude-box/log/${door}.log";
    };
  };
in
{
  options.programs.claude-box = {
    enable = mkEnableOption "claude-box, Claude Code in a pinned box with doors";
    package = mkOption {
      type = types.package;
      default = flakePackages.claude-box;
      defaultText = "claude-box.packages.\${system}.claude-box";
      description = "The claude-box launcher (built pinned to the flake's image).";
    };
    doors = {
      keeperd = doorOptions "keeperd";
      scoutd = doorOptions "scoutd";
      netd = doorOptions "netd";
    };
  };

  config = mkIf cfg.enable {
    home.packages = [ cfg.package ];
    home.sessionVariables = mkIf isDarwin { DOORS_TCP = "1"; };

    systemd.user.services = mkIf (!isDarwin) (
      lib.listToAttrs (map (d: lib.nameValuePair "claude-box-${d}" (systemdService d)) enabledDoors)
    );

    launchd.agents = mkIf isDarwin (
      lib.listToAttrs (map (d: lib.nameValuePair "claude-box-${d}" (launchdAgent d)) enabledDoors)
    );
  };
}
