# source.nix — the Go part of the repository as the flake builds it, and the
# facts the packages are built from.
#
# `src` is the whole set of Go modules (not one module): the modules point at
# each other with `replace ../sibling` directives, so each package is built
# from this tree with `modRoot = "<module>"`. go.work is left out, so no build
# can fall into workspace mode (GOWORK=off is set as well), and so is
# everything that is not Go (docs, images, nix): editing a doc rebuilds
# nothing.
{ root }:
let
  # vendorHash per module, written by `make hashes` (nix/hashes.sh) and checked
  # for drift in CI. null: the module has nothing to vendor.
  vendorHashes = builtins.fromJSON (builtins.readFile ./vendor-hashes.json);
  modules = builtins.attrNames vendorHashes;

  rootStr = toString root;
  relative = path: builtins.substring (builtins.stringLength rootStr + 1) (-1) (toString path);
  topDir = rel: builtins.head (builtins.split "/" rel);

  keep =
    path: type:
    let
      rel = relative path;
      base = baseNameOf path;
    in
    builtins.elem (topDir rel) modules
    # never a vendor/ tree or a build result that happens to lie around
    && !(type == "directory" && base == "vendor")
    && !(type == "symlink" && builtins.substring 0 6 base == "result");

  # The launcher's build tags live beside its code (launcher/build.tags), so
  # `go build`, the Makefile and nix use the same ones.
  tagsFile = root + "/launcher/build.tags";
  words = s: builtins.filter (w: builtins.isString w && w != "") (builtins.split "[[:space:]]+" s);
  launcherTags =
    if builtins.pathExists tagsFile then
      words (builtins.readFile tagsFile)
    else
      [
        "remote"
        "containers_image_openpgp"
        "exclude_graphdriver_btrfs"
        "exclude_graphdriver_devicemapper"
      ];
in
{
  inherit
    vendorHashes
    modules
    launcherTags
    keep
    ;
  src = builtins.path {
    name = "claude-box-src";
    path = root;
    filter = keep;
  };
}
