# unfree.nix — the one unfree package the flake allows: claude-code.
{ lib }: pkg: builtins.elem (lib.getName pkg) [ "claude-code" ]
