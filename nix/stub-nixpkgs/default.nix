# default.nix — a stand-in for `import nixpkgs { system; config; }` that
# builds nothing: every package is a derivation whose builder fails, carrying
# the arguments it was made from (`stubArgs`) so that nix/tests can check what
# the flake asks nixpkgs for. Used only for offline evaluation.
{
  system,
  config ? { },
}:
let
  lib = import ./lib.nix;
  fake =
    name: extra:
    derivation {
      inherit name system;
      builder = "/bin/sh";
      args = [
        "-c"
        "echo 'stub nixpkgs: nothing is built offline' >&2; exit 1"
      ];
    }
    // extra;
  unfree = p: p // { meta.license.free = false; };
  pkg = pname: version: fake "${pname}-${version}" { inherit pname version; };
  isDarwin = lib.hasSuffix "-darwin" system;
in
rec {
  inherit lib;
  stdenv.hostPlatform = {
    inherit system isDarwin;
    isLinux = lib.hasSuffix "-linux" system;
  };

  # What the flake's allowUnfreePredicate says, for the tests.
  stubUnfreeAllowed = name: (config.allowUnfreePredicate or (_: false)) { pname = name; inherit name; };

  claude-code =
    assert stubUnfreeAllowed "claude-code" || throw "stub nixpkgs: claude-code is unfree and not allowed";
    unfree (pkg "claude-code" "2.1.0");
  go = pkg "go" "1.26.3";
  gitMinimal = pkg "git-minimal" "2.50.0";
  git = pkg "git" "2.50.0";
  openssh = pkg "openssh" "10.0p2";
  ripgrep = pkg "ripgrep" "14.1.1";
  fd = pkg "fd" "10.2.0";
  coreutils = pkg "coreutils" "9.7";
  bash = pkg "bash" "5.2";
  bashInteractive = pkg "bash-interactive" "5.2";
  jq = pkg "jq" "1.8.0";
  gopls = pkg "gopls" "0.19.0";
  buf = pkg "buf" "1.55.0";
  protoc-gen-go = pkg "protoc-gen-go" "1.36.12";
  protoc-gen-go-grpc = pkg "protoc-gen-go-grpc" "1.5.1";
  golangci-lint = pkg "golangci-lint" "2.3.0";
  podman = pkg "podman" "5.6.0";
  gnumake = pkg "gnumake" "4.4.1";
  nix = pkg "nix" "2.30.0";
  nixfmt = pkg "nixfmt" "1.0.0";

  buildGoModule =
    args:
    assert args ? vendorHash || throw "stub buildGoModule: vendorHash is missing";
    fake "${args.pname}-${args.version}" {
      inherit (args) pname version;
      stubArgs = args;
    };

  runCommand = name: env: script: fake name { stubArgs = { inherit env script; }; };
  writeShellScriptBin = name: text: fake name { stubArgs = { inherit text; }; };
  mkShell = args: fake "nix-shell" { stubArgs = args; };

  dockerTools = {
    buildLayeredImage = args: fake "docker-image-${args.name}.tar.gz" { stubArgs = args; };
    caCertificates = pkg "ca-certificates" "1";
    usrBinEnv = pkg "usr-bin-env" "1";
    binSh = pkg "bin-sh" "1";
  };
}
