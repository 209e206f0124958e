#!/usr/bin/env bash
# vendor-siblings.sh — keep the repository's own modules out of vendorHash.
#
#   vendor-siblings.sh strip   VENDOR   remove the copies of directory-replaced
#                                       modules (`replace x => ../x`) from VENDOR
#   vendor-siblings.sh restore VENDOR   copy them back in from their source dirs
#
# `go mod vendor` copies the packages of every `replace ../sibling` module
# into vendor/, so the vendor hash of netd would change whenever a line of
# guestroom changed. The flake's vendor derivation runs `strip` after
# `go mod vendor` (so vendorHash covers only third-party code and
# vendor/modules.txt), and every build runs `restore` in postConfigure, before
# compiling with -mod=vendor. nix/hashes.sh does the same to compute the
# hashes and checks that the restored tree resolves every import.
#
# Run from the module's directory (modRoot): replacement paths are relative
# to it. Only directory replacements (../x, ./x) are touched.
set -euo pipefail

die() { echo "vendor-siblings: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: vendor-siblings.sh strip|restore VENDOR_DIR"
cmd=$1
vendor=$2
modules_txt="$vendor/modules.txt"
[ -f "$modules_txt" ] || exit 0 # nothing vendored: nothing to do

# "<module path> <dir>" for every directory replacement, once each.
replacements() {
  sed -nE 's,^# ([^ ]+)( v[^ ]+)? => (\.\.?/[^ ]+)$,\1 \3,p' "$modules_txt" | sort -u
}

case "$cmd" in
  strip)
    replacements | while read -r path _; do
      rm -rf "${vendor:?}/$path"
      # drop parents left empty (vendor/github.com/org/…)
      parent=$(dirname "$vendor/$path")
      while [ "$parent" != "$vendor" ] && rmdir "$parent" 2>/dev/null; do
        parent=$(dirname "$parent")
      done
    done
    ;;
  restore)
    chmod -R u+w "$vendor"
    replacements | while read -r path dir; do
      [ -f "$dir/go.mod" ] || die "$path is replaced by $dir, which has no go.mod"
      mkdir -p "$vendor/$path"
      # the module's tree, without nested vendor/ or VCS data
      (cd "$dir" && find . -path ./vendor -prune -o -path ./.git -prune -o -type f -print0 |
        tar --null --no-recursion -T - -cf -) | tar -x -C "$vendor/$path"
      chmod -R u+w "$vendor/$path"
    done
    ;;
  *) die "unknown command $cmd (strip or restore)" ;;
esac
