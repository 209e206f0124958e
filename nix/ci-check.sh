#!/usr/bin/env bash
# ci-check.sh — everything about the nix side that can be checked on a machine
# where nix cannot fetch (CI here; .ci/run calls it, `make check-nix` too).
# Installs nothing: it needs nix-bin (nix, nix-instantiate), go, git.
#
# Checks, each reported pass/fail, then "nix: N passed, M failed":
#   parse         every .nix file parses (nix-instantiate --parse)
#   go-directive  every go.mod says `go 1.25.0` and names no toolchain
#   pin           flake.nix and flake.lock name the pinned nixpkgs revision
#                 (and match ../shared/nix/nixpkgs-pin.json when it is there)
#   lock          flake.lock is current for flake.nix (nix flake metadata, offline)
#   eval          nix/tests/offline.nix: the flake evaluated against a stub
#                 nixpkgs (packages, image contents, modules, apps, checks…)
#   flake-check   `nix flake check --no-build` against the stub nixpkgs
#   cmds          every binary the flake builds has its main package
#   setup         nix/setup.sh --dry-run writes the units it should
#   setup-run     setup against stand-in podman/systemctl: units, modes, calls,
#                 refusal of an image that is not the pinned one; macOS, dry
#   containerfile images/Containerfile matches images/box.nix and is pinned
#   shell         shellcheck on the scripts in nix/ (when it is installed)
#   hashes        every vendorHash matches `go mod vendor` (nix/hashes.sh --check)
#
# What cannot be checked here (building anything, the real nixpkgs) is listed
# in docs/BUILD.md.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

# Every binary the flake builds must have its main package; set this to 0 to
# only warn (e.g. while a new binary is landing).
: "${NIX_CHECK_STRICT_CMDS:=1}"

passed=0
failed=0
failures=()
log=$(mktemp -d "${TMPDIR:-/tmp}/nix-ci-check.XXXXXX")
trap 'chmod -R u+w "$log" 2>/dev/null; rm -rf "$log"' EXIT

nixx() { nix --extra-experimental-features 'nix-command flakes' "$@"; }
# The flake commands copy the source and write .drv files: they get a store of
# their own under the temp dir, so the checks need no set-up /nix and leave
# nothing behind.
flake_store="$log/store"

check() {
  local name=$1
  shift
  if "$@" >"$log/$name" 2>&1; then
    passed=$((passed + 1))
    echo "PASS  $name"
    # a passing check may still have something to say
    grep -E '^(note|warn):' "$log/$name" | sed 's/^/      /' || true
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "FAIL  $name"
    sed 's/^/      /' "$log/$name" | tail -n 60
  fi
}

need() {
  local missing=0
  for t in nix nix-instantiate go git; do
    command -v "$t" >/dev/null || {
      echo "nix ci-check: $t not found on PATH (hint: apt-get install -y nix-bin golang git)" >&2
      missing=1
    }
  done
  return $missing
}
need || exit 1

nix_files() {
  if git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- '*.nix'
  else
    find . -name '*.nix' -not -path './.git/*'
  fi
}

check_parse() {
  local f status=0 n=0
  while IFS= read -r f; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    if ! nix-instantiate --parse "$f" >/dev/null; then
      echo "does not parse: $f"
      status=1
    fi
  done < <(nix_files)
  [ "$n" -gt 0 ] || {
    echo "no .nix files found"
    return 1
  }
  echo "note: $n .nix files parse"
  return $status
}

check_go_directive() {
  local m status=0
  for m in */go.mod; do
    if ! grep -qx 'go 1.25.0' "$m"; then
      echo "$m: the go directive must be exactly 'go 1.25.0' (nixpkgs' Go at the pin builds it): $(grep -m1 '^go ' "$m")"
      status=1
    fi
    if grep -q '^toolchain' "$m"; then
      echo "$m: names a toolchain; remove it (nix builds with GOTOOLCHAIN=local)"
      status=1
    fi
  done
  return $status
}

check_pin() {
  # shellcheck disable=SC2016 # a nix expression, not shell
  nix-instantiate --eval --strict --json -E '
    let
      lock = builtins.fromJSON (builtins.readFile ./flake.lock);
      node = lock.nodes.nixpkgs;
      flakeText = builtins.readFile ./flake.nix;
      rev = node.locked.rev;
      pinFile = ../shared/nix/nixpkgs-pin.json;
      pin = if builtins.pathExists pinFile then builtins.fromJSON (builtins.readFile pinFile) else null;
      urlOk = builtins.length (builtins.split "github:NixOS/nixpkgs/${rev}\"" flakeText) > 1;
      pinOk = pin == null || (pin.locked == node.locked);
    in
      if !urlOk then throw "flake.nix does not name github:NixOS/nixpkgs/${rev}"
      else if !pinOk then throw "flake.lock nixpkgs node differs from shared/nix/nixpkgs-pin.json"
      else if node.original.rev != rev then throw "flake.lock original.rev differs from locked.rev"
      else { inherit rev; pinChecked = pin != null; }
  ' || return 1
  [ -f ../shared/nix/nixpkgs-pin.json ] || echo "note: ../shared/nix/nixpkgs-pin.json not present; checked flake.nix against flake.lock only"
}

check_lock() {
  git rev-parse --git-dir >/dev/null 2>&1 || {
    echo "note: not a git checkout; skipped"
    return 0
  }
  nixx --store "$flake_store" flake metadata --offline --no-update-lock-file "$root"
}

check_eval() {
  local out
  out=$(nix-instantiate --eval --strict --json -E "import $root/nix/tests/offline.nix { }") || return 1
  echo "$out"
  case "$out" in
    *'"failed":[]'*) return 0 ;;
    *)
      echo "inspect with: nix-instantiate --eval --strict --json -E 'import ./nix/tests/offline.nix { inspect = true; }' -A <name>"
      return 1
      ;;
  esac
}

check_flake() {
  git rev-parse --git-dir >/dev/null 2>&1 || {
    echo "note: not a git checkout; skipped"
    return 0
  }
  # Untracked files are invisible to a flake: the stub must be committed.
  nixx --store "$flake_store" flake check --no-build --offline --no-write-lock-file \
    --override-input nixpkgs "path:$root/nix/stub-nixpkgs" "$root"
}

check_cmds() {
  local spec status=0 missing=()
  spec=$(nix-instantiate --eval --strict --json -E "
    let b = import $root/nix/binaries.nix; in
    map (n: \"\${n} \${b.\${n}.module}/\${b.\${n}.cmd}\") (builtins.attrNames b)
  ") || return 1
  spec=${spec//[\[\]\"]/}
  local IFS=,
  for entry in $spec; do
    local name=${entry%% *} dir=${entry#* }
    if ! ls "$dir"/*.go >/dev/null 2>&1; then
      missing+=("$name ($dir)")
    fi
  done
  unset IFS
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$NIX_CHECK_STRICT_CMDS" = 1 ]; then
      printf 'no main package for: %s\n' "${missing[@]}"
      status=1
    else
      printf 'warn: no main package yet for: %s\n' "${missing[@]}"
    fi
  fi
  return $status
}

check_setup() {
  local home="$log/home" out
  mkdir -p "$home"
  out=$(env -i PATH="$PATH" HOME="$home" USER=test \
    CLAUDE_BOX_IMAGE_TAR=/nix/store/x-docker-image-claude-box.tar.gz \
    CLAUDE_BOX_IMAGE_DIGEST=sha256:0123 \
    KEEPERD_BIN=/nix/store/k/bin/keeperd SCOUTD_BIN=/nix/store/s/bin/scoutd NETD_BIN=/nix/store/n/bin/netd \
    bash "$root/nix/setup.sh" --dry-run 2>&1) || {
    echo "$out"
    return 1
  }
  local want
  for want in \
    "would run: podman load --input /nix/store/x-docker-image-claude-box.tar.gz" \
    "claude-box-netd.service (mode 0644)" \
    "ExecStart=/nix/store/n/bin/netd serve --socket $home/.claude-box/run/netd.sock" \
    "ExecStart=/nix/store/k/bin/keeperd serve --socket $home/.claude-box/run/keeperd.sock" \
    "NoNewPrivileges=yes" \
    "UMask=0077" \
    "would run: systemctl --user enable --now claude-box-scoutd.service"; do
    if ! grep -qF -- "$want" <<<"$out"; then
      echo "setup --dry-run did not print: $want"
      echo "$out"
      return 1
    fi
  done
  [ ! -e "$home/.claude-box" ] || {
    echo "--dry-run changed the file system"
    return 1
  }
  # Without the store paths it refuses, naming what is missing.
  out=$(env -i PATH="$PATH" HOME="$home" bash "$root/nix/setup.sh" --dry-run 2>&1) && {
    echo "setup without CLAUDE_BOX_IMAGE_TAR should fail"
    return 1
  }
  grep -q "CLAUDE_BOX_IMAGE_TAR is not set" <<<"$out" || {
    echo "unexpected refusal: $out"
    return 1
  }
}

# setup for real, against stand-ins for podman and systemctl that record
# what they were asked; then a podman that reports another image id, which
# setup must refuse; then the macOS path, dry.
check_setup_run() {
  local home="$log/home-run" bin="$log/bin" calls="$log/calls" out
  mkdir -p "$home" "$bin"
  cat >"$bin/podman" <<'STUB'
#!/usr/bin/env bash
echo "podman $*" >>"$CALLS"
case "$1 $2" in
  "image inspect") echo "${STUB_IMAGE_ID:-sha256:0123}" ;;
esac
STUB
  cat >"$bin/systemctl" <<'STUB'
#!/usr/bin/env bash
echo "systemctl $*" >>"$CALLS"
STUB
  chmod +x "$bin/podman" "$bin/systemctl"
  local envs=(PATH="$bin:$PATH" HOME="$home" USER=test CALLS="$calls"
    CLAUDE_BOX_IMAGE_TAR=/nix/store/x-image.tar.gz CLAUDE_BOX_IMAGE_DIGEST=sha256:0123
    KEEPERD_BIN=/nix/store/k/bin/keeperd SCOUTD_BIN=/nix/store/s/bin/scoutd NETD_BIN=/nix/store/n/bin/netd)
  out=$(env -i "${envs[@]}" bash "$root/nix/setup.sh" 2>&1) || {
    echo "setup failed: $out"
    return 1
  }
  local unit="$home/.config/systemd/user/claude-box-netd.service"
  [ -f "$unit" ] || { echo "no unit written at $unit"; return 1; }
  [ "$(stat -c %a "$unit")" = 644 ] || { echo "unit mode $(stat -c %a "$unit")"; return 1; }
  [ "$(stat -c %a "$home/.claude-box/run")" = 700 ] || { echo "run dir mode $(stat -c %a "$home/.claude-box/run")"; return 1; }
  grep -qx "ExecStart=/nix/store/n/bin/netd serve --socket $home/.claude-box/run/netd.sock" "$unit" || { cat "$unit"; return 1; }
  local want
  for want in "podman load --input /nix/store/x-image.tar.gz" \
    "podman image inspect --format {{.Id}} localhost/claude-box:latest" \
    "systemctl --user daemon-reload" \
    "systemctl --user enable --now claude-box-keeperd.service" \
    "systemctl --user enable --now claude-box-scoutd.service" \
    "systemctl --user enable --now claude-box-netd.service"; do
    grep -qxF -- "$want" "$calls" || { echo "not called: $want"; cat "$calls"; return 1; }
  done
  # An image that is not the pinned one is refused, before any door is touched.
  : >"$calls"
  out=$(env -i "${envs[@]}" STUB_IMAGE_ID=sha256:fff bash "$root/nix/setup.sh" 2>&1) && {
    echo "setup accepted an image that does not match its pin"
    return 1
  }
  grep -q "loaded image id sha256:fff does not match the pin sha256:0123" <<<"$out" || { echo "$out"; return 1; }
  if grep -q systemctl "$calls"; then echo "doors touched after a pin mismatch"; return 1; fi
  # macOS, dry: a podman machine, launchd agents with DOORS_TCP=1.
  out=$(env -i "${envs[@]}" CLAUDE_BOX_SETUP_OS=Darwin bash "$root/nix/setup.sh" --dry-run 2>&1) || { echo "$out"; return 1; }
  for want in "would run: podman machine init" "would run: podman machine start" \
    "dev.claude-box.netd.plist (mode 0644)" "<key>DOORS_TCP</key><string>1</string>" \
    "would run: launchctl bootstrap gui/"; do
    grep -qF -- "$want" <<<"$out" || { echo "macOS dry run did not print: $want"; echo "$out"; return 1; }
  done
}

check_containerfile() {
  local cf=images/Containerfile status=0
  [ -f "$cf" ] || {
    echo "$cf is missing"
    return 1
  }
  local facts
  facts=$(nix-instantiate --eval --strict --json -E "
    let b = import $root/images/box.nix; in
    [ b.user (toString b.uid) b.home b.configDir b.workdir (builtins.head b.entrypoint) b.env.CLAUDE_CONFIG_DIR ]
  ") || return 1
  facts=${facts//[\[\]\"]/}
  local IFS=,
  for f in $facts; do
    grep -qF -- "$f" "$cf" || {
      echo "$cf does not mention $f (from images/box.nix)"
      status=1
    }
  done
  unset IFS
  # Every base image is pinned by digest.
  if grep -E '^FROM ' "$cf" | grep -v '@sha256:[0-9a-f]\{64\}' | grep -q .; then
    echo "$cf: a FROM line is not pinned by digest:"
    grep -E '^FROM ' "$cf" | grep -v '@sha256:'
    status=1
  fi
  # claude-code is pinned by version and integrity.
  grep -qE '^ARG CLAUDE_CODE_VERSION=[0-9]+\.[0-9]+\.[0-9]+$' "$cf" || {
    echo "$cf: CLAUDE_CODE_VERSION is not pinned to an exact version"
    status=1
  }
  grep -qE '^ARG CLAUDE_CODE_INTEGRITY_(X64|ARM64)=sha512-' "$cf" || {
    echo "$cf: claude-code integrity hashes missing"
    status=1
  }
  # Nothing that holds authority is installed.
  local bad
  for bad in gh sudo podman docker docker.io openssh-server; do
    if grep -E 'apt-get install' "$cf" | grep -qw -- "$bad"; then
      echo "$cf installs $bad"
      status=1
    fi
  done
  grep -q 'images/rootfs/etc/claude-code/ /etc/claude-code/' "$cf" || {
    echo "$cf: managed settings not installed"
    status=1
  }
  return $status
}

check_shellcheck() {
  if ! command -v shellcheck >/dev/null; then
    echo "note: shellcheck not installed; skipped (apt-get install -y shellcheck)"
    return 0
  fi
  shellcheck "$root"/nix/*.sh
}

check_hashes() {
  bash "$root/nix/hashes.sh" --check
}

check parse check_parse
check go-directive check_go_directive
check pin check_pin
check lock check_lock
check eval check_eval
check flake-check check_flake
check cmds check_cmds
check setup check_setup
check setup-run check_setup_run
check containerfile check_containerfile
check shell check_shellcheck
check hashes check_hashes

echo
if [ "$failed" -gt 0 ]; then
  echo "nix checks FAILED: ${failures[*]}"
fi
echo "nix: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
