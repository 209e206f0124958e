# lib.nix — the few nixpkgs lib functions claude-box's nix files use, written
# out so that the flake can be evaluated where nixpkgs cannot be fetched
# (nix/ci-check.sh). Same names and meanings as nixpkgs' lib; mkIf and the
# option functions return markers that nix/tests/modules.nix resolves.
let
  inherit (builtins)
    attrNames
    concatMap
    elem
    filter
    foldl'
    head
    isAttrs
    listToAttrs
    map
    stringLength
    substring
    ;
  nameValuePair = name: value: { inherit name value; };
  genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
  optionalAttrs = c: a: if c then a else { };
  optionals = c: l: if c then l else [ ];
  optional = c: x: if c then [ x ] else [ ];
  hasSuffix =
    suffix: s:
    let
      ls = stringLength s;
      lx = stringLength suffix;
    in
    lx <= ls && substring (ls - lx) lx s == suffix;
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  getName = x: if x ? pname then x.pname else (builtins.parseDrvName x.name).name;
  mapAttrsToList = f: a: map (n: f n a.${n}) (attrNames a);
  escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
  escapeShellArgs = l: builtins.concatStringsSep " " (map escapeShellArg l);
  versionAtLeast = v: min: builtins.compareVersions v min >= 0;
  recursiveUpdate =
    a: b:
    a
    // builtins.mapAttrs (
      n: v: if isAttrs v && a ? ${n} && isAttrs a.${n} && !(v ? _type) then recursiveUpdate a.${n} v else v
    ) b;
  mkOption = attrs: attrs // { _type = "option"; };
  regexChars = [ "\\" "[" "]" "(" ")" "{" "}" "." "*" "+" "?" "^" "$" "|" ];
  escapeRegex = builtins.replaceStrings regexChars (map (c: "\\" + c) regexChars);
  hasInfix = infix: s: builtins.length (builtins.split (escapeRegex infix) s) > 1;
  type = name: { inherit name; };
in
{
  inherit
    nameValuePair
    genAttrs
    optionalAttrs
    optionals
    optional
    hasSuffix
    hasPrefix
    getName
    mapAttrsToList
    escapeShellArg
    escapeShellArgs
    versionAtLeast
    recursiveUpdate
    mkOption
    escapeRegex
    hasInfix
    ;
  inherit (builtins) mapAttrs listToAttrs;
  mkEnableOption =
    what:
    mkOption {
      default = false;
      description = "Whether to enable ${what}.";
      type = type "bool";
    };
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  types = {
    str = type "str";
    bool = type "bool";
    path = type "path";
    package = type "package";
    nullOr = t: type "nullOr ${t.name}";
    listOf = t: type "listOf ${t.name}";
  };
}
