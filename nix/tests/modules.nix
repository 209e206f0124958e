# modules.nix — a small stand-in for nixpkgs' module system, enough to
# evaluate claude-box's NixOS and home-manager modules offline: fill option
# defaults, lay the given config over them, call the module, and resolve
# mkIf markers. Returns the module's `config` with disabled parts removed.
# It checks what our modules define, not how NixOS merges it with others.
{ lib }:
let
  inherit (builtins)
    isAttrs
    isList
    mapAttrs
    attrNames
    filter
    listToAttrs
    ;
  isOption = x: isAttrs x && (x._type or null) == "option";
  defaults =
    opts:
    mapAttrs (
      _: o:
      if isOption o then
        (if o ? default then o.default else null)
      else if isAttrs o then
        defaults o
      else
        o
    ) opts;
  absent = { _absent = true; };
  resolve =
    x:
    if isAttrs x && (x._type or null) == "if" then
      (if x.condition then resolve x.content else absent)
    else if isAttrs x && !(x ? outPath) then
      let
        r = mapAttrs (_: resolve) x;
      in
      listToAttrs (
        map (n: {
          name = n;
          value = r.${n};
        }) (filter (n: r.${n} != absent) (attrNames r))
      )
    else if isList x then
      map resolve x
    else
      x;
in
{
  module,
  pkgs,
  config,
}:
let
  stubArgs = {
    inherit lib pkgs;
    config = final;
  };
  declared = (module stubArgs).options;
  final = lib.recursiveUpdate (defaults declared) config;
  out = resolve (module stubArgs).config;
in
if out == absent then { } else out
