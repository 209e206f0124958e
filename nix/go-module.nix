# go-module.nix — how every Go derivation of the flake is made: buildGoModule
# over the whole Go tree (the modules `replace ../sibling` each other) with
# modRoot = the module, GOWORK=off, no cgo, and the committed vendorHash.
#
# vendorHash covers third-party code only: the vendor derivation strips the
# copies `go mod vendor` makes of the repository's own modules, and every
# build copies them back from the source tree before compiling
# (nix/vendor-siblings.sh; nix/hashes.sh computes the hashes the same way).
{
  pkgs,
  source,
  version,
}:
{
  module,
  postConfigure ? "",
  ...
}@args:
let
  vendorHash = source.vendorHashes.${module};
  siblings = ./vendor-siblings.sh;
in
pkgs.buildGoModule (
  builtins.removeAttrs args [ "module" ]
  // {
    inherit version vendorHash;
    src = source.srcFor module;
    modRoot = module;
    env = {
      CGO_ENABLED = "0";
    }
    // (args.env or { });
    # go.work is not in src, so no build can fall into workspace mode; say
    # it anyway. preBuild also runs in the vendor derivation, before
    # `go mod vendor` (a shell export cannot clash with an attribute
    # nixpkgs' builder might set itself).
    preBuild = ''
      export GOWORK=off
    '' + (args.preBuild or "");
    overrideModAttrs = _: {
      postBuild = ''
        bash ${siblings} strip vendor
      '';
    };
    postConfigure =
      (if vendorHash != null then "bash ${siblings} restore vendor\n" else "") + postConfigure;
  }
)
