# offline.nix — evaluates the flake's outputs against the stub nixpkgs
# (nix/stub-nixpkgs: builds nothing) and checks what can be checked without
# fetching: which packages exist for which system, that every Go package is
# built from its own module with GOWORK=off and the committed vendorHash, that
# the launcher is linked with the image digest of the right system, what goes
# into the image, the unfree allowance, the managed Claude settings, the
# NixOS and home-manager modules' services, apps, checks and dev shell.
#
#   nix-instantiate --eval --strict --json -E "import ./nix/tests/offline.nix { }"
#
# evaluates to { failed = [ names… ]; passed = N; }; nix/ci-check.sh fails
# when `failed` is not empty. `--arg inspect true -A <name>` shows a value the
# tests look at (nixos, hm, outputs, …) when one fails.
{
  inspect ? false,
}:
let
  root = ../..;
  lib = import ../stub-nixpkgs/lib.nix;
  stubNixpkgs = {
    outPath = ../stub-nixpkgs;
    lib = import ../stub-nixpkgs/lib.nix;
  };
  flake = import (root + "/flake.nix");
  self =
    outputs
    // {
      outPath = root;
      shortRev = "0000000";
    };
  outputs = flake.outputs {
    inherit self;
    nixpkgs = stubNixpkgs;
  };

  source = import ../source.nix { inherit root; };
  box = import (root + "/images/box.nix");
  binaries = import ../binaries.nix;
  stubPkgs = system: import ../stub-nixpkgs { inherit system; };
  evalModules = import ./modules.nix { inherit lib; };

  linux = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  darwin = [
    "aarch64-darwin"
    "x86_64-darwin"
  ];
  systems = linux ++ darwin;

  inherit (builtins)
    all
    any
    attrNames
    elem
    filter
    length
    map
    sort
    ;
  sorted = sort (a: b: a < b);
  has = lib.hasInfix;

  goNames = attrNames binaries;
  goPkgs = system: map (n: outputs.packages.${system}.${n}) goNames;

  settings = builtins.fromJSON (
    builtins.readFile (root + "/images/rootfs/etc/claude-code/managed-settings.json")
  );
  mcp = builtins.fromJSON (builtins.readFile (root + "/images/rootfs/etc/claude-code/managed-mcp.json"));

  image = system: outputs.packages.${system}.claude-image.stubArgs;
  contentNames = system: map (p: p.pname or p.name) (image system).contents;

  # --- the NixOS module --------------------------------------------------
  nixos =
    system: user:
    evalModules {
      module = outputs.nixosModules.doors;
      pkgs = stubPkgs system;
      config = {
        services.claude-box-doors = user;
      };
    };
  doorsOn = {
    user = "alice";
    keeperd.enable = true;
    keeperd.repositories = [ "/home/alice/src" ];
    scoutd.enable = true;
    netd.enable = true;
  };
  routed = doorsOn // {
    scoutd = {
      enable = true;
      egressDoor = "/run/claude-box/netd-scout.sock";
      tokenFile = "/run/secrets/gh";
    };
  };
  svc = cfg: name: (nixos "x86_64-linux" cfg).systemd.services.${name}.serviceConfig;
  hardened =
    sc:
    sc.CapabilityBoundingSet == ""
    && sc.AmbientCapabilities == ""
    && sc.NoNewPrivileges
    && sc.ProtectSystem == "strict"
    && sc.PrivateTmp
    && sc.PrivateDevices
    && sc.RestrictNamespaces
    && sc.RuntimeDirectory == "claude-box"
    && sc.RuntimeDirectoryMode == "0700"
    && sc.UMask == "0077"
    && sc.SystemCallErrorNumber == "EPERM"
    # RemoveIPC would delete the user's own IPC objects when a door stops.
    && !(sc ? RemoveIPC)
    && sc.User == "alice";

  # --- the home-manager module ---------------------------------------------
  hm =
    system:
    evalModules {
      module = outputs.homeManagerModules.default;
      pkgs = stubPkgs system;
      config = {
        home.homeDirectory = "/home/alice";
        programs.claude-box = {
          enable = true;
          doors.netd.enable = true;
          doors.keeperd.enable = true;
        };
      };
    };

  tests = {
    packagesPerSystem = all (
      s:
      all (n: outputs.packages.${s} ? ${n}) (
        goNames
        ++ [
          "default"
          "claude-image"
          "claude-image-digest"
        ]
      )
    ) linux;
    darwinGetsCliAndDoors = all (
      s:
      all (n: outputs.packages.${s} ? ${n}) [
        "claude-box"
        "keeperd"
        "scoutd"
        "netd"
        "claude-image"
        "claude-image-digest"
      ]
      && !(outputs.packages.${s} ? claude-box-entry)
      && !(outputs.packages.${s} ? keeper)
    ) darwin;
    doorImagesOnLinux = all (
      s: all (n: outputs.packages.${s} ? ${n}) [ "keeperd-image" "scoutd-image" "netd-image" ]
    ) linux;
    noDoorImagesOnDarwin = all (s: !(outputs.packages.${s} ? netd-image)) darwin;

    goFromOwnModule = all (
      s:
      all (
        n:
        !(outputs.packages.${s} ? ${n})
        || (
          let
            a = outputs.packages.${s}.${n}.stubArgs;
          in
          a.modRoot == binaries.${n}.module
        && a.subPackages == [ binaries.${n}.cmd ]
        && a.vendorHash == source.vendorHashes.${a.modRoot}
        && has "export GOWORK=off" a.preBuild
        && a.env.CGO_ENABLED == "0"
          && elem "-X main.version=0.1.0" a.ldflags
        )
      ) goNames
    ) systems;
    siblingsStrippedAndRestored = all (
      s:
      all (
        n:
        !(outputs.packages.${s} ? ${n})
        || (
          let
            a = outputs.packages.${s}.${n}.stubArgs;
          in
          has "vendor-siblings.sh strip vendor" (a.overrideModAttrs { }).postBuild
          && (
            # nothing vendored (no requirements at all): nothing to restore
            if a.vendorHash == null then
              !(has "vendor-siblings.sh restore" a.postConfigure)
            else
              lib.hasPrefix "bash " a.postConfigure && has "vendor-siblings.sh restore vendor" a.postConfigure
          )
        )
      ) goNames
    ) systems;
    launcherRestoresBeforeLinking =
      let
        pc = outputs.packages.x86_64-linux.claude-box.stubArgs.postConfigure;
        parts = builtins.split "restore vendor" pc;
      in
      source.vendorHashes.launcher == null
      || (builtins.length parts == 3 && has "plan.PinnedDigest" (builtins.elemAt parts 2));
    launcherTags = all (s: outputs.packages.${s}.claude-box.stubArgs.tags == source.launcherTags) systems;
    launcherTagsComplete =
      sorted source.launcherTags == sorted [
        "containers_image_openpgp"
        "exclude_graphdriver_btrfs"
        "exclude_graphdriver_devicemapper"
        "remote"
      ];
    launcherPinnedToOwnImage = all (
      s:
      let
        pc = outputs.packages.${s}.claude-box.stubArgs.postConfigure;
        linuxTwin = if s == "x86_64-darwin" then "x86_64-linux" else if s == "aarch64-darwin" then "aarch64-linux" else s;
      in
      has "launcher/internal/plan.PinnedDigest=$imageDigest" pc
      && has (builtins.unsafeDiscardStringContext outputs.packages.${linuxTwin}.claude-image-digest.outPath) pc
    ) systems;
    digestReadsTheImage = all (
      s:
      has (builtins.unsafeDiscardStringContext outputs.packages.${s}.claude-image.outPath) outputs.packages.${s}.claude-image-digest.stubArgs.script
    ) linux;
    onlyClientsAndEntryInImage = all (
      s:
      let
        names = contentNames s;
      in
      all (n: elem n names) [
        "claude-code"
        "git-minimal"
        "ripgrep"
        "fd"
        "coreutils"
        "bash-interactive"
        "ca-certificates"
        "claude-box-entry"
        "netd"
        "keeper"
        "scout"
      ]
      && !(any (n: elem n names) (box.forbidden ++ [ "openssh" "claude-box" ]))
    ) linux;
    imageUserAndLayout = all (
      s:
      let
        i = image s;
      in
      i.config.User == "1000:1000"
      && i.config.WorkingDir == "/work"
      && i.config.Entrypoint == [ "/bin/claude-box-entry" ]
      && elem "CLAUDE_CONFIG_DIR=/home/claude/.config/claude" i.config.Env
      && elem "HOME=/home/claude" i.config.Env
      && has "mkdir -p ./home/claude/.config/claude" i.fakeRootCommands
      && has "chmod 0700 ./home/claude/.config/claude" i.fakeRootCommands
      && i.name == "claude-box"
      && i.tag == "latest"
    ) linux;
    doorImagesNonRoot = all (
      d:
      let
        i = outputs.packages.x86_64-linux."${d}-image".stubArgs;
      in
      i.config.User != "0" && i.config.User != "root" && i.config.User != "0:0" && i.config.Entrypoint == [ "/bin/${d}" "serve" ]
    ) [ "keeperd" "scoutd" "netd" ];

    unfreeOnlyClaudeCode =
      let
        allowed = import ../unfree.nix { inherit lib; };
      in
      allowed { pname = "claude-code"; }
      && allowed { name = "claude-code-2.1.0"; }
      && !(allowed { pname = "vscode"; })
      && !(allowed { name = "gh-2.0"; });

    settingsDenyCredentials =
      elem "Read(//home/claude/.config/claude/.credentials.json)" settings.permissions.deny
      && elem "Edit(//home/claude/.config/claude/.credentials.json)" settings.permissions.deny
      && box.configDir == "/home/claude/.config/claude";
    settingsNoMcp =
      settings.allowManagedMcpServersOnly
      && settings.allowedMcpServers == [ ]
      && !settings.enableAllProjectMcpServers
      && mcp.mcpServers == { };

    nixosServices =
      sorted (attrNames (nixos "x86_64-linux" doorsOn).systemd.services) == [
        "claude-box-keeperd"
        "claude-box-netd"
        "claude-box-scoutd"
      ];
    nixosNothingWhenDisabled = (nixos "x86_64-linux" { user = "alice"; }) == { };
    nixosHardened = all (n: hardened (svc doorsOn n)) [
      "claude-box-keeperd"
      "claude-box-scoutd"
      "claude-box-netd"
    ];
    nixosSockets =
      has "'serve' '--socket' '/run/claude-box/netd.sock'" (svc doorsOn "claude-box-netd").ExecStart
      && (nixos "x86_64-linux" doorsOn).environment.sessionVariables.KEEPERD_SOCK == "/run/claude-box/keeperd.sock";
    nixosKeeperWritesOnlyRepos =
      (svc doorsOn "claude-box-keeperd").ReadWritePaths == [
        "-/home/alice/.claude-box"
        "/home/alice/src"
      ];
    nixosScoutHasNetworkAlone = !((svc doorsOn "claude-box-scoutd") ? PrivateNetwork);
    nixosScoutRoutedHasNoNetwork =
      let
        sc = svc routed "claude-box-scoutd";
      in
      sc.PrivateNetwork
      && sc.RestrictAddressFamilies == [ "AF_UNIX" ]
      && has "'--egress-door' '/run/claude-box/netd-scout.sock'" sc.ExecStart
      && has "'--token-file' '%d/token'" sc.ExecStart
      && sc.LoadCredential == [ "token:/run/secrets/gh" ]
      && hardened sc;

    hmLinuxUserServices =
      let
        c = hm "x86_64-linux";
      in
      sorted (attrNames c.systemd.user.services) == [
        "claude-box-keeperd"
        "claude-box-netd"
      ]
      && (c.launchd.agents or { }) == { }
      && has "bin/netd' 'serve'" c.systemd.user.services.claude-box-netd.Service.ExecStart
      && c.systemd.user.services.claude-box-netd.Service.NoNewPrivileges;
    hmDarwinAgentsTcp =
      let
        c = hm "aarch64-darwin";
      in
      sorted (attrNames c.launchd.agents) == [
        "claude-box-keeperd"
        "claude-box-netd"
      ]
      && c.launchd.agents.claude-box-netd.config.EnvironmentVariables.DOORS_TCP == "1"
      && c.home.sessionVariables.DOORS_TCP == "1"
      && (c.systemd.user.services or { }) == { };
    hmInstallsCli = builtins.length (hm "x86_64-linux").home.packages == 1;

    apps = all (
      s:
      all (n: outputs.apps.${s} ? ${n}) [
        "claude-box"
        "keeperd"
        "scoutd"
        "netd"
        "setup"
      ]
      && lib.hasSuffix "/bin/netd" outputs.apps.${s}.netd.program
    ) systems;
    setupGetsPinnedImage = all (
      s:
      let
        packages = outputs.packages.${s};
        text = (import ../setup-app.nix { pkgs = stubPkgs s; inherit packages; }).stubArgs.text;
        path = p: builtins.unsafeDiscardStringContext p.outPath;
      in
      has "CLAUDE_BOX_IMAGE_TAR=${path packages.claude-image}" text
      && has "cat ${path packages.claude-image-digest}" text
      && has "NETD_BIN=${path packages.netd}/bin/netd" text
      && has "setup.sh" text
    ) systems;

    checksEveryModule = all (
      s: all (m: outputs.checks.${s} ? ${m}) (source.modules ++ [ "image-policy" ])
    ) linux;
    checksRunTests = all (
      m:
      let
        a = outputs.checks.x86_64-linux.${m}.stubArgs;
      in
      a.doCheck && a.modRoot == m && has "export GOWORK=off" a.preBuild && a.vendorHash == source.vendorHashes.${m}
    ) source.modules;

    devShellTools =
      let
        names = map (p: p.pname) outputs.devShells.x86_64-linux.default.stubArgs.packages;
      in
      all (n: elem n names) [
        "go"
        "buf"
        "protoc-gen-go"
        "protoc-gen-go-grpc"
        "golangci-lint"
        "podman"
      ];

    sourceOnlyWhatAModuleNeeds =
      source.needs "proto" == [ "proto" ]
      && builtins.elem "guestroom" (source.needs "netd")
      && builtins.elem "proto" (source.needs "netd")
      && !(builtins.any (m: builtins.elem m (source.needs "netd")) [ "scoutd" "keeperd" "launcher" "test" ])
      && !(builtins.elem "test" (source.needs "launcher"));
    sourceHasNoWorkspace =
      !(source.keep (root + "/go.work") "regular")
      && !(source.keep (root + "/docs") "directory")
      && source.keep (root + "/netd") "directory"
      && !(source.keep (root + "/netd/vendor") "directory");
  };

  failed = filter (n: tests.${n} != true) (attrNames tests);
in
if inspect then
  {
    inherit outputs source tests;
    nixosOn = nixos "x86_64-linux" doorsOn;
    nixosRouted = nixos "x86_64-linux" routed;
    hmLinux = hm "x86_64-linux";
    hmDarwin = hm "aarch64-darwin";
  }
else
  {
    inherit failed;
    passed = length (attrNames tests) - length failed;
  }
