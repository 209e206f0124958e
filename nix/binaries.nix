# binaries.nix — what each Go binary is built from: its module (the modRoot)
# and its main package. The launcher (`claude-box`) is built in packages.nix
# on its own because it needs the build tags and the image digest.
{
  claude-box = {
    module = "launcher";
    cmd = "cmd/claude-box";
    description = "claude-box: run Claude Code in a pinned, credential-free podman box with doors";
  };
  claude-box-entry = {
    module = "launcher";
    cmd = "cmd/claude-box-entry";
    description = "claude-box's in-box entrypoint: verifies the security floor, starts the netd relay, execs claude";
  };
  keeperd = {
    module = "keeperd";
    cmd = "cmd/keeperd";
    description = "keeper door daemon: signed commits and policed pushes, host side";
  };
  keeper = {
    module = "keeperd";
    cmd = "cmd/keeper";
    description = "in-box client of the keeper door";
  };
  scoutd = {
    module = "scoutd";
    cmd = "cmd/scoutd";
    description = "scout door daemon: policed external reads, returned as content";
  };
  scout = {
    module = "scoutd";
    cmd = "cmd/scout";
    description = "in-box client of the scout door";
  };
  netd = {
    module = "netd";
    cmd = "cmd/netd";
    description = "net door daemon (netd serve) and its in-box relay (netd relay)";
  };
}
