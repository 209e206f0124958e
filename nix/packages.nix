# packages.nix — every package of one system: the Go binaries (one
# buildGoModule per binary, each from its own module with GOWORK=off), the box
# image, its digest, and the door images.
#
# On Linux the image is built here and the launcher is built knowing its
# digest. On darwin there is no image of its own: `linuxPackages` is the
# package set of the Linux system with the same CPU, whose image the Mac runs
# in a podman machine (building it needs a Linux builder, see docs/BUILD.md).
{
  pkgs,
  source,
  version,
  linuxPackages ? null,
}:
let
  inherit (pkgs) lib;
  isLinux = pkgs.stdenv.hostPlatform.isLinux;

  # Where the launcher keeps the image pin it was built with
  # (launcher/internal/plan.PinnedDigest). The launcher resolves the image to
  # its id and refuses to run it unless it matches (CLAUDE_BOX_IMAGE_DIGEST
  # overrides it at run time).
  digestVar = "github.com/bounded-systems/claude-box/launcher/internal/plan.PinnedDigest";

  goModule = import ./go-module.nix { inherit pkgs source version; };

  # One binary = one buildGoModule from its own module (nix/go-module.nix).
  goBinary =
    {
      pname,
      module,
      cmd,
      tags ? [ ],
      postConfigure ? "",
      description,
    }:
    goModule {
      inherit
        pname
        module
        tags
        postConfigure
        ;
      subPackages = [ cmd ];
      ldflags = [
        "-s"
        "-w"
        # The version only, never the commit: a docs-only commit must not
        # change the in-box binaries and with them the image digest.
        "-X main.version=${version}"
      ];
      # The unit tests run once per module in `checks`, not once per binary.
      doCheck = false;
      meta = {
        inherit description;
        mainProgram = pname;
        homepage = "https://github.com/bounded-systems/claude-box";
      };
    };

  # What each binary is built from (nix/ci-check.sh checks that every `cmd`
  # exists in its module).
  binaries = import ./binaries.nix;

  go = lib.mapAttrs (pname: b: goBinary (b // { inherit pname; })) (
    builtins.removeAttrs binaries [ "claude-box" ]
  );
  # A Mac gets the launcher and the door daemons; the in-box binaries only
  # ever run in the (Linux) box.
  inBox = [
    "claude-box-entry"
    "keeper"
    "scout"
  ];

  # --- the box image (Linux only) -------------------------------------------
  images = lib.optionalAttrs isLinux rec {
    claude-image = import ../images/claude-image.nix {
      inherit pkgs;
      entry = go.claude-box-entry;
      clients = [
        go.netd
        go.keeper
        go.scout
      ];
    };

    # The image id podman reports after `podman load` (sha256 of the image
    # config blob), as "sha256:<hex>": the pin the launcher runs.
    claude-image-digest = import ../images/image-digest.nix {
      inherit pkgs;
      image = claude-image;
    };

    keeperd-image = import ../images/door-image.nix {
      inherit pkgs;
      door = "keeperd";
      package = go.keeperd;
    };
    scoutd-image = import ../images/door-image.nix {
      inherit pkgs;
      door = "scoutd";
      package = go.scoutd;
    };
    netd-image = import ../images/door-image.nix {
      inherit pkgs;
      door = "netd";
      package = go.netd;
    };
  };

  imageSet = if isLinux then images else linuxPackages;

  claude-box = goBinary {
    pname = "claude-box";
    inherit (binaries.claude-box) module cmd description;
    tags = source.launcherTags;
    # The digest is known only once the image is built, so it joins the
    # linker flags in the build (postConfigure runs in the package, never in
    # the vendor derivation, whose hash must not depend on the image).
    postConfigure = ''
      imageDigest=$(cat ${imageSet.claude-image-digest})
      case "$imageDigest" in
        sha256:*) ;;
        *) echo "claude-box: bad image digest '$imageDigest'" >&2; exit 1 ;;
      esac
      if declare -p ldflags 2>/dev/null | grep -q '^declare -a'; then
        ldflags+=("-X" "${digestVar}=$imageDigest")
      else
        ldflags="$ldflags -X ${digestVar}=$imageDigest"
      fi
    '';
  };
in
(if isLinux then go else builtins.removeAttrs go inBox)
// {
  inherit claude-box;
  default = claude-box;
}
// lib.optionalAttrs isLinux images
// lib.optionalAttrs (!isLinux && linuxPackages != null) {
  # On a Mac: the Linux image the launcher is pinned to (built by a Linux
  # builder), so `nix build .#claude-image` works there too.
  inherit (linuxPackages) claude-image claude-image-digest;
}
