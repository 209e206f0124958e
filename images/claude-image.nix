# claude-image.nix — the box: Claude Code and a few tools on a pinned nixpkgs,
# as a layered image (dockerTools.buildLayeredImage). Nothing in it holds
# authority: no keys, no tokens, no gh, sudo, podman or docker. Every
# capability beyond thinking and editing /work arrives as a door socket the
# launcher mounts at run time; the in-box clients of those doors ship here.
{
  pkgs,
  # claude-box-entry, the launcher's in-box half (the entrypoint)
  entry,
  # the in-box door clients: netd (relay), keeper, scout
  clients,
  box ? import ./box.nix,
}:
let
  inherit (pkgs) lib dockerTools;
  uid = toString box.uid;
  gid = toString box.gid;

  # The ssh client only: ssh and scp on PATH, no ssh-agent, no sshd, and a
  # system config that never offers an agent or a key (etc/ssh/ssh_config).
  sshClient = pkgs.runCommand "openssh-client-only" { } ''
    mkdir -p $out/bin
    for b in ssh scp; do ln -s ${pkgs.openssh}/bin/$b $out/bin/$b; done
  '';

  # /etc: the files shared with the Containerfile (managed Claude settings,
  # ssh and git config), plus the users of this image.
  etc = pkgs.runCommand "claude-box-etc" { } ''
    mkdir -p $out/etc
    cp -r ${./rootfs}/etc/. $out/etc/
    chmod -R u+w $out/etc
    cat > $out/etc/passwd <<PASSWD
    root:x:0:0:root:/root:/bin/false
    ${box.user}:x:${uid}:${gid}:${box.user}:${box.home}:/bin/bash
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false
    PASSWD
    cat > $out/etc/group <<GROUP
    root:x:0:
    ${box.user}:x:${gid}:
    nogroup:x:65534:
    GROUP
    cat > $out/etc/nsswitch.conf <<NSS
    passwd: files
    group: files
    hosts: files dns
    NSS
  '';
in
dockerTools.buildLayeredImage {
  inherit (box) name tag;

  contents = [
    pkgs.claude-code
    pkgs.gitMinimal
    pkgs.ripgrep
    pkgs.fd
    sshClient
    pkgs.coreutils
    pkgs.bashInteractive
    dockerTools.caCertificates
    dockerTools.usrBinEnv
    dockerTools.binSh
    entry
    etc
  ]
  ++ clients;

  # Runs under fakeroot in the image root: the box user's home, the config
  # volume's mount point (0700, owned by the box user, so a fresh volume
  # takes that ownership), the worktree mount point and /tmp.
  fakeRootCommands = ''
    mkdir -p .${box.configDir} .${box.workdir} ./tmp ./run/doors
    chown -R ${uid}:${gid} .${box.home} .${box.workdir}
    chmod 0700 .${box.configDir}
    chmod 1777 ./tmp
  '';

  config = {
    User = "${uid}:${gid}";
    WorkingDir = box.workdir;
    Entrypoint = box.entrypoint;
    Env = lib.mapAttrsToList (k: v: "${k}=${v}") box.env;
    Labels = {
      "org.opencontainers.image.title" = "claude-box";
      "org.opencontainers.image.description" = "Claude Code in a pinned, credential-free box; capabilities arrive as door sockets";
      "org.opencontainers.image.source" = "https://github.com/bounded-systems/claude-box";
    };
  };
}
