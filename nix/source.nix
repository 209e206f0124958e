# source.nix — the Go part of the repository as the flake builds it, and the
# facts the packages are built from.
#
# `srcFor module` is the module plus every sibling it reaches through
# `replace ../sibling` directives (transitively), as one tree, so that each
# package builds with `modRoot = "<module>"` and its replacements resolve.
# Nothing else is in it: not go.work (no build can fall into workspace mode;
# GOWORK=off is set as well), not the docs, images or nix files, and not the
# modules it does not need. Editing a doc rebuilds nothing; editing the e2e
# suite does not move the image digest.
{ root }:
let
  inherit (builtins)
    attrNames
    concatMap
    elem
    filter
    foldl'
    fromJSON
    head
    isList
    isString
    pathExists
    readFile
    split
    stringLength
    substring
    ;

  # vendorHash per module, written by `make hashes` (nix/hashes.sh) and checked
  # for drift in CI. null: the module has nothing to vendor.
  vendorHashes = fromJSON (readFile ./vendor-hashes.json);
  modules = attrNames vendorHashes;

  # The sibling directories a module's go.mod replaces it with (../x).
  directReplaces =
    m:
    let
      gomod = root + "/${m}/go.mod";
      captures = filter isList (split "=>[[:space:]]*\\.\\./([A-Za-z0-9._-]+)" (readFile gomod));
    in
    if pathExists gomod then map head captures else [ ];
  # ...and the ones those replace, to a fixed point.
  closure =
    seen:
    let
      next = foldl' (acc: d: if elem d acc then acc else acc ++ [ d ]) seen (concatMap directReplaces seen);
    in
    if next == seen then seen else closure next;
  needs = m: closure [ m ];

  rootStr = toString root;
  relative = path: substring (stringLength rootStr + 1) (-1) (toString path);
  topDir = rel: head (split "/" rel);

  keepFor =
    wanted: path: type:
    let
      base = baseNameOf path;
    in
    elem (topDir (relative path)) wanted
    # never a vendor/ tree or a build result that happens to lie around
    && !(type == "directory" && base == "vendor")
    && !(type == "symlink" && substring 0 6 base == "result");

  # The launcher's build tags live beside its code (launcher/build.tags), so
  # `go build`, the Makefile and nix use the same ones.
  tagsFile = root + "/launcher/build.tags";
  words = s: filter (w: isString w && w != "") (split "[[:space:]]+" s);
  launcherTags =
    if pathExists tagsFile then
      words (readFile tagsFile)
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
    needs
    ;
  keep = keepFor modules;
  srcFor =
    module:
    builtins.path {
      name = "claude-box-${module}-src";
      path = root;
      filter = keepFor (needs module);
    };
}
