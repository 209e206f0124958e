# apps.nix — `nix run .#<app>`: the launcher, the three door daemons
# (`nix run .#netd -- serve`), and `setup`, which brings a host up in one
# call (nix/setup.sh).
{ pkgs, packages }:
let
  app = pkg: name: description: {
    type = "app";
    program = "${pkg}/bin/${name}";
    meta = { inherit description; };
  };

  setup = import ./setup-app.nix { inherit pkgs packages; };
in
{
  default = app packages.claude-box "claude-box" "run Claude Code in a pinned box";
  claude-box = app packages.claude-box "claude-box" "run Claude Code in a pinned box";
  keeperd = app packages.keeperd "keeperd" "the keeper door daemon";
  scoutd = app packages.scoutd "scoutd" "the scout door daemon";
  netd = app packages.netd "netd" "the net door daemon";
  setup = app setup "claude-box-setup" "load the pinned image and install the doors as user services";
}
