# image-digest.nix — the id podman gives an image after `podman load`: the
# sha256 of its config blob, as "sha256:<hex>". The nix-built launcher is
# linked with this value, so it runs exactly the image its flake built (and
# refuses any other under the same tag).
{ pkgs, image }:
pkgs.runCommand "claude-box-image-digest" { nativeBuildInputs = [ pkgs.jq ]; } ''
  tar -xf ${image} manifest.json
  config=$(jq -r '.[0].Config' manifest.json)
  tar -xf ${image} "$config"
  printf 'sha256:%s' "$(sha256sum "$config" | cut -d' ' -f1)" > $out
''
