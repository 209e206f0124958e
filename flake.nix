{
  description = "claude-box: Claude Code in a pinned, credential-free podman box; every capability beyond thinking and editing goes through a door";

  # One nixpkgs revision, locked in flake.lock to the pin in the steering
  # repository (nixpkgs-unstable, 2026-06-22). Bump both together.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/89570f24e97e614aa34aa9ab1c927b6578a43775";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      linuxSystems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      darwinSystems = [
        "aarch64-darwin"
        "x86_64-darwin"
      ];
      forSystems = systems: f: lib.genAttrs systems f;

      # The box image is a Linux image: a Mac runs the image of the Linux
      # system with the same CPU (a podman machine, or a nix linux-builder to
      # build it).
      linuxOf = system: if system == "x86_64-darwin" then "x86_64-linux" else "aarch64-linux";

      # claude-code is unfree: allow it and nothing else.
      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          config.allowUnfreePredicate = import ./nix/unfree.nix { inherit lib; };
        };

      # The Go part of the tree and the facts the packages are built from.
      source = import ./nix/source.nix { root = ./.; };
      version = "0.1.0";

      packagesFor =
        system:
        import ./nix/packages.nix {
          pkgs = pkgsFor system;
          inherit source version;
          # Linux builds its own image; darwin runs (and pins) the image of
          # its Linux twin.
          linuxPackages = if lib.hasSuffix "-linux" system then null else self.packages.${linuxOf system};
        };
    in
    {
      packages = forSystems (linuxSystems ++ darwinSystems) packagesFor;

      apps = forSystems (linuxSystems ++ darwinSystems) (
        system:
        import ./nix/apps.nix {
          pkgs = pkgsFor system;
          packages = self.packages.${system};
        }
      );

      # System services for the three doors on NixOS (hardened).
      nixosModules.doors = import ./nix/nixos-doors.nix { inherit self; };
      nixosModules.default = self.nixosModules.doors;

      # The CLI plus the doors as user services (Linux: systemd; macOS: launchd, TCP).
      homeManagerModules.default = import ./nix/home-manager.nix { inherit self; };

      devShells = forSystems (linuxSystems ++ darwinSystems) (system: {
        default = import ./nix/devshell.nix { pkgs = pkgsFor system; };
      });

      # The unit tests of every module (each module built and tested with
      # GOWORK=off from its own modRoot), plus the offline checks.
      checks = forSystems linuxSystems (
        system:
        import ./nix/checks.nix {
          pkgs = pkgsFor system;
          inherit source version;
          packages = self.packages.${system};
        }
      );

      formatter = forSystems (linuxSystems ++ darwinSystems) (system: (pkgsFor system).nixfmt);
    };
}
