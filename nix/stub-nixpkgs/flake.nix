# A stand-in for nixpkgs with no inputs, for evaluating the claude-box flake
# offline: `nix flake show --override-input nixpkgs path:./nix/stub-nixpkgs`.
{
  description = "stub nixpkgs for offline evaluation (builds nothing)";
  outputs = _: {
    lib = import ./lib.nix;
  };
}
