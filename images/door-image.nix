# door-image.nix — a door daemon (keeperd, scoutd or netd) as an image, for
# hosts that would rather run the doors in containers than as services.
#
# Non-root by default (uid 65532); meant to run with a read-only root
# (`--read-only`), no capabilities and no new privileges. A door's control
# socket only admits its own uid, so run it as the user who launches boxes
# and mount the socket directory at the same path inside and out (the paths
# a door hands back must mean the same thing on the host):
#
#   podman run -d --read-only --cap-drop=all --security-opt=no-new-privileges \
#     --userns=keep-id --user "$(id -u):$(id -g)" \
#     -v "$HOME/.claude-box/run:$HOME/.claude-box/run" \
#     localhost/claude-box-netd:latest --socket "$HOME/.claude-box/run/netd.sock"
#
# (docs/HOSTING.md has the full commands for the three doors.)
{
  pkgs,
  door,
  package,
}:
let
  inherit (pkgs) dockerTools;
  uid = "65532";
  etc = pkgs.runCommand "claude-box-${door}-etc" { } ''
    mkdir -p $out/etc
    echo 'door:x:${uid}:${uid}:${door}:/var/empty:/bin/false' > $out/etc/passwd
    echo 'door:x:${uid}:' > $out/etc/group
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' > $out/etc/nsswitch.conf
  '';
in
dockerTools.buildLayeredImage {
  name = "claude-box-${door}";
  tag = "latest";
  contents = [
    package
    dockerTools.caCertificates
    etc
  ];
  fakeRootCommands = ''
    mkdir -p ./run/claude-box ./tmp ./var/empty
    chown ${uid}:${uid} ./run/claude-box
    chmod 0700 ./run/claude-box
    chmod 1777 ./tmp
  '';
  config = {
    User = "${uid}:${uid}";
    Entrypoint = [
      "/bin/${door}"
      "serve"
    ];
    Cmd = [
      "--socket"
      "/run/claude-box/${door}.sock"
    ];
    Env = [
      "HOME=/var/empty"
      "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
    ];
    Labels = {
      "org.opencontainers.image.title" = "claude-box-${door}";
      "org.opencontainers.image.source" = "https://github.com/bounded-systems/claude-box";
      "io.github.bounded-systems.claude-box.run" =
        "--read-only --cap-drop=all --security-opt=no-new-privileges --userns=keep-id";
    };
  };
}
