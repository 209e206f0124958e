# nix.mk — the nix side of the build, included by the root Makefile.
# Nothing here fetches through nix (it cannot, on this machine): `hashes` runs
# `go mod vendor` with the Go module proxy and hashes the result with nix-bin.

NIX_DIR := $(dir $(lastword $(MAKEFILE_LIST)))nix

.PHONY: hashes check-nix nix-eval

hashes: ## recompute every module's vendorHash into nix/vendor-hashes.json
	bash $(NIX_DIR)/hashes.sh

check-nix: ## offline nix checks: parse, pin, lock, flake eval on a stub nixpkgs, setup, vendorHash drift
	bash $(NIX_DIR)/ci-check.sh

nix-eval: ## evaluate the flake against the stub nixpkgs and print the test summary
	nix-instantiate --eval --strict --json -E 'import $(abspath $(NIX_DIR))/tests/offline.nix { }'
