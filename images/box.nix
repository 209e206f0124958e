# box.nix — the layout of the box image, as data (no pkgs): who the box user
# is, where its home and config volume are, what the entrypoint is, the
# environment every box starts with, and what must never be in the image.
#
# The nix image (claude-image.nix) is built from it; images/Containerfile
# writes the same layout by hand, and nix/ci-check.sh checks the two agree.
{
  name = "claude-box";
  tag = "latest";

  user = "claude";
  uid = 1000;
  gid = 1000;
  home = "/home/claude";
  # Mount point of the account volume claude-<acct>-config (the only state
  # that persists). A plain directory, not a declared VOLUME: a declared one
  # would leave an anonymous volume behind every `podman run` without it.
  configDir = "/home/claude/.config/claude";
  workdir = "/work";

  # The launcher's in-box half: verifies the security floor it was promised,
  # starts `netd relay` when /run/doors/netd.sock is mounted, execs claude.
  entrypoint = [ "/bin/claude-box-entry" ];

  env = {
    HOME = "/home/claude";
    USER = "claude";
    PATH = "/bin:/usr/bin";
    LANG = "C.UTF-8";
    # Claude Code keeps its config and credentials in the account volume.
    CLAUDE_CONFIG_DIR = "/home/claude/.config/claude";
    # The image is pinned and read-only: never self-update.
    DISABLE_AUTOUPDATER = "1";
    # Only the Anthropic API is reachable by default; skip the rest quietly
    # instead of having netd deny it.
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1";
    SSL_CERT_FILE = "/etc/ssl/certs/ca-certificates.crt";
    GIT_SSL_CAINFO = "/etc/ssl/certs/ca-certificates.crt";
  };

  # Must be on PATH in the box.
  tools = [
    "claude"
    "git"
    "rg"
    "fd"
    "ssh"
    "bash"
    "ls"
    "netd"
    "keeper"
    "scout"
    "claude-box-entry"
  ];

  # Must not be in the image at all: authority lives outside the box.
  forbidden = [
    "gh"
    "sudo"
    "su"
    "podman"
    "docker"
    "ssh-agent"
    "sshd"
    "keeperd"
    "scoutd"
  ];
}
