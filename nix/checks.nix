# checks.nix — `nix flake check` on Linux: the unit tests of every Go module
# (each built from its own modRoot with GOWORK=off, like the packages), that
# nixpkgs' Go can build the go directive, and the image policy (nothing that
# holds authority is in the box).
{
  pkgs,
  source,
  version,
  packages,
}:
let
  inherit (pkgs) lib;
  box = import ../images/box.nix;
  goModule = import ./go-module.nix { inherit pkgs source version; };

  # The go directive of every module is go 1.25.0.
  goVersionOk =
    lib.versionAtLeast pkgs.go.version "1.25"
    || throw "nixpkgs' Go is ${pkgs.go.version}: the modules say go 1.25.0";

  unitTests =
    module:
    assert goVersionOk;
    goModule {
      pname = "claude-box-${module}-tests";
      inherit module;
      # podman's bindings build without cgo only with these tags.
      tags = lib.optionals (builtins.elem module [ "launcher" "test" ]) source.launcherTags;
      # keeperd's tests verify signatures with real git and ssh-keygen.
      nativeCheckInputs = [
        pkgs.gitMinimal
        pkgs.openssh
      ];
      # No podman in the build sandbox: tests that need it skip (by name),
      # and -short keeps the end-to-end suite to what runs without it.
      checkFlags = [ "-short" ];
      preCheck = ''
        export HOME=$TMPDIR
      '';
      doCheck = true;
      installPhase = ''
        mkdir -p $out
        echo ${module} > $out/tested
      '';
    };

  # Unpacks the image and fails if anything holding authority is in it:
  # none of box.forbidden on PATH, and no gh/sudo/podman/docker anywhere in
  # the store paths it carries.
  imagePolicy = pkgs.runCommand "claude-box-image-policy" { } ''
    mkdir image && cd image
    tar -xf ${packages.claude-image}
    : > ../files
    for layer in */layer.tar; do tar -tf "$layer" >> ../files; done
    cd ..
    status=0
    for name in ${lib.escapeShellArgs box.forbidden}; do
      if grep -Eq "^(\./)?(usr/)?bin/$name\$" files; then
        echo "forbidden on PATH in the box image: $name" >&2; status=1
      fi
    done
    for pkg in gh sudo podman docker; do
      if grep -Eq "^(\./)?nix/store/[a-z0-9]{32}-$pkg-[0-9]" files; then
        echo "forbidden package in the box image: $pkg" >&2; status=1
      fi
    done
    for name in ${lib.escapeShellArgs box.tools}; do
      if ! grep -Eq "^(\./)?(usr/)?bin/$name\$" files; then
        echo "missing from PATH in the box image: $name" >&2; status=1
      fi
    done
    grep -q 'etc/claude-code/managed-settings.json' files || { echo "managed settings missing" >&2; status=1; }
    [ $status = 0 ] && touch $out
    exit $status
  '';
in
lib.genAttrs source.modules unitTests
// {
  image-policy = imagePolicy;
  launcher-pinned = packages.claude-box;
}
