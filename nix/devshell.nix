# devshell.nix — `nix develop`: what `make gen`, `make lint`, `make test` and
# `make e2e` need.
{ pkgs }:
pkgs.mkShell {
  packages = [
    pkgs.go
    pkgs.gopls
    pkgs.buf
    pkgs.protoc-gen-go
    pkgs.protoc-gen-go-grpc
    pkgs.golangci-lint
    pkgs.podman
    pkgs.gnumake
    pkgs.git
    pkgs.openssh
    pkgs.jq
    pkgs.nix
  ];
  # The go directive is go 1.25.0: build with this Go, never download one.
  env.GOTOOLCHAIN = "local";
}
