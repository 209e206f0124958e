#!/usr/bin/env bash
# hashes.sh — compute every Go module's vendorHash exactly as the flake's
# buildGoModule derivations do, and write (or check) nix/vendor-hashes.json.
#
# What the flake does (nix/go-module.nix over nixpkgs'
# pkgs/build-support/go/module.nix): the fixed-output "goModules" derivation
# unpacks `src` (the whole Go tree, so that `replace ../sibling` directives
# resolve), cd's into modRoot, runs `go mod vendor`, then — our
# overrideModAttrs — strips the copies of the repository's own modules
# (nix/vendor-siblings.sh strip), and copies vendor/ to $out; vendorHash is
# the sha256 NAR hash of that directory, in SRI form. So the hash covers the
# third-party code and vendor/modules.txt: it moves when a go.mod/go.sum
# changes or when the set of sibling packages a module imports changes, not
# on every edit of a sibling. A module with nothing to vendor must say
# `vendorHash = null` (nixpkgs refuses an empty vendor/): we write null.
#
# We reproduce it: copy the files a flake would see (git-tracked files with
# their working-tree contents; go.work removed, GOWORK=off), run
# `go mod vendor` in each module with the Go module proxy, strip, and hash
# vendor/ with nix-bin's `nix hash path`. Then we restore the siblings as every
# nix build does and check that the tree resolves every import, tests
# included, with -mod=vendor. Assumption, documented in docs/BUILD.md:
# nixpkgs' Go at the pinned revision writes the same vendor/ tree as the local
# Go (the vendor format has been stable since Go 1.21 for a `go 1.25.0` module).
#
# Usage: nix/hashes.sh [--check] [--source worktree|HEAD] [--out FILE]
#   --check          compare with the committed file; exit 1 and print the drift
#   --source HEAD    hash the committed tree (git archive HEAD) instead of the
#                    tracked files of the working tree
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode='write'
source=worktree
out="$root/nix/vendor-hashes.json"

die() { echo "hashes: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --check) mode=check ;;
    --source) shift; source=${1:-}; [ "$source" = worktree ] || [ "$source" = HEAD ] || die "--source takes worktree or HEAD" ;;
    --out) shift; out=${1:-} ;;
    -h|--help) sed -n '2,35p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument $1 (try --help)" ;;
  esac
  shift
done

command -v go >/dev/null || die "go not found on PATH"
command -v nix >/dev/null || die "nix not found on PATH (hint: apt-get install -y nix-bin)"
command -v git >/dev/null || die "git not found on PATH"

nixcmd() { nix --extra-experimental-features nix-command "$@"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/claude-box-hashes.XXXXXX")
cleanup() { chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

# The source tree a flake sees: tracked files only.
src="$tmp/src"
mkdir -p "$src"
if [ "$source" = HEAD ]; then
  git -C "$root" archive --format=tar HEAD | tar -x -C "$src"
else
  (cd "$root" && git ls-files -z --cached | while IFS= read -r -d '' f; do
      [ -e "$f" ] || [ -L "$f" ] || continue # deleted in the work tree
      printf '%s\0' "$f"
    done | tar --null --no-recursion -T - -cf -) | tar -x -C "$src"
fi
rm -f "$src/go.work" "$src/go.work.sum"

# Modules: every top-level directory with a go.mod, in a stable order.
modules=()
for gomod in "$src"/*/go.mod; do
  [ -e "$gomod" ] || continue
  modules+=("$(basename "$(dirname "$gomod")")")
done
[ ${#modules[@]} -gt 0 ] || die "no modules found under $src"

export GOWORK=off GOFLAGS='' GOTOOLCHAIN=local GO111MODULE=on
siblings="$root/nix/vendor-siblings.sh"
launcher_tags=$(tr -s ' \n' ' ' <"$src/launcher/build.tags" 2>/dev/null || true)
hash_module() {
  local m=$1 dir="$src/$1" tags=""
  if [ -d "$dir/vendor" ]; then
    die "$m: a committed vendor/ directory exists; buildGoModule would refuse it"
  fi
  if ! (cd "$dir" && go mod vendor) >"$tmp/$m.log" 2>&1; then
    cat "$tmp/$m.log" >&2
    die "$m: go mod vendor failed (is go.sum complete? run 'cd $m && GOWORK=off go mod tidy')"
  fi
  if [ ! -d "$dir/vendor" ] || [ -z "$(ls -A "$dir/vendor")" ]; then
    echo null
    return
  fi
  (cd "$dir" && bash "$siblings" strip vendor) || die "$m: stripping the sibling modules failed"
  nixcmd hash path --type sha256 "$dir/vendor"
  # What every nix build does next: put the siblings back, build -mod=vendor.
  case "$m" in launcher | test) tags=$launcher_tags ;; esac
  if ! (cd "$dir" && bash "$siblings" restore vendor &&
    GOFLAGS=-mod=vendor go list -tags "$tags" -deps -test ./... >/dev/null) 2>"$tmp/$m.list"; then
    cat "$tmp/$m.list" >&2
    die "$m: the vendor tree nix would assemble does not resolve every import"
  fi
}

json="{"
sep=""
for m in "${modules[@]}"; do
  h=$(hash_module "$m")
  case "$h" in
    null) v=null ;;
    sha256-*) v="\"$h\"" ;;
    *) die "$m: unexpected hash output: $h" ;;
  esac
  json+="$sep"$'\n'"  \"$m\": $v"
  sep=","
done
json+=$'\n'"}"

if [ "$mode" = write ]; then
  printf '%s\n' "$json" >"$out.tmp"
  mv "$out.tmp" "$out"
  echo "hashes: wrote $out (${#modules[@]} modules, source: $source)"
  exit 0
fi

[ -f "$out" ] || die "$out is missing (hint: make hashes)"
if ! diff -u "$out" <(printf '%s\n' "$json") >"$tmp/diff"; then
  echo "hashes: vendorHash drift — nix/vendor-hashes.json does not match what 'go mod vendor' produces:" >&2
  cat "$tmp/diff" >&2
  echo "hint: run 'make hashes' and commit nix/vendor-hashes.json" >&2
  exit 1
fi
echo "hashes: vendorHash of ${#modules[@]} modules matches (source: $source)"
