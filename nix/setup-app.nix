# setup-app.nix — the `setup` app: nix/setup.sh with the store paths of this
# system's image, its digest and the door daemons.
{ pkgs, packages }:
pkgs.writeShellScriptBin "claude-box-setup" ''
  export CLAUDE_BOX_IMAGE_TAR=${packages.claude-image}
  CLAUDE_BOX_IMAGE_DIGEST=$(cat ${packages.claude-image-digest})
  export CLAUDE_BOX_IMAGE_DIGEST
  export KEEPERD_BIN=${packages.keeperd}/bin/keeperd
  export SCOUTD_BIN=${packages.scoutd}/bin/scoutd
  export NETD_BIN=${packages.netd}/bin/netd
  export CLAUDE_BOX_BIN=${packages.claude-box}/bin/claude-box
  exec ${pkgs.bash}/bin/bash ${./setup.sh} "$@"
''
