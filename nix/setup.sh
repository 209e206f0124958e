#!/usr/bin/env bash
# setup.sh — bring a host up for claude-box in one call (`nix run .#setup`):
# load the pinned box image into podman and check its id, then install and
# start the three doors (keeperd, scoutd, netd) as user services.
#
#   Linux: systemd user units in ~/.config/systemd/user, control sockets in
#          ~/.claude-box/run (the daemons' default), started now and at login.
#   macOS: podman runs in a podman machine (initialised and started when
#          missing); the doors run on the Mac as launchd agents with
#          DOORS_TCP=1 (a podman machine cannot share unix sockets).
#
# The flake's `setup` app runs this with the store paths below set; it also
# runs by hand with them exported. --dry-run prints every action and changes
# nothing (nix/ci-check.sh runs it that way).
#
# Environment (set by the flake):
#   CLAUDE_BOX_IMAGE_TAR     the image tarball (packages.claude-image)
#   CLAUDE_BOX_IMAGE_DIGEST  the image id it must load as ("sha256:<hex>")
#   KEEPERD_BIN SCOUTD_BIN NETD_BIN   the door daemons
#   CLAUDE_BOX_BIN           the launcher (for the closing hint only)
set -euo pipefail

dry=0
skip_image=0
skip_doors=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    --no-image) skip_image=1 ;;
    --no-doors) skip_doors=1 ;;
    -h | --help)
      sed -n '2,22p' "${BASH_SOURCE[0]}"
      echo "flags: --dry-run  --no-image  --no-doors"
      exit 0
      ;;
    *)
      echo "setup: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

die() {
  echo "setup: $1" >&2
  [ -n "${2:-}" ] && echo "hint: $2" >&2
  exit 1
}
say() { echo "setup: $*"; }
run() {
  if [ "$dry" = 1 ]; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}
# write_file PATH MODE < content
write_file() {
  local path=$1 mode=$2 content
  content=$(cat)
  if [ "$dry" = 1 ]; then
    echo "would write $path (mode $mode):"
    printf '%s\n' "$content" | sed 's/^/  | /'
    return
  fi
  mkdir -p "$(dirname "$path")"
  local tmp="$path.tmp.$$"
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  mv "$tmp" "$path"
}

# CLAUDE_BOX_SETUP_OS lets the tests walk the macOS path on Linux.
os=${CLAUDE_BOX_SETUP_OS:-$(uname -s)}
: "${HOME:?HOME must be set}"
rundir="$HOME/.claude-box/run"
doors=(keeperd scoutd netd)

door_bin() {
  case "$1" in
    keeperd) echo "${KEEPERD_BIN:-}" ;;
    scoutd) echo "${SCOUTD_BIN:-}" ;;
    netd) echo "${NETD_BIN:-}" ;;
  esac
}

# --- the image --------------------------------------------------------------
load_image() {
  [ -n "${CLAUDE_BOX_IMAGE_TAR:-}" ] || die "CLAUDE_BOX_IMAGE_TAR is not set" "run this through 'nix run .#setup'"
  [ -n "${CLAUDE_BOX_IMAGE_DIGEST:-}" ] || die "CLAUDE_BOX_IMAGE_DIGEST is not set" "run this through 'nix run .#setup'"
  case "$CLAUDE_BOX_IMAGE_DIGEST" in
    sha256:*) ;;
    *) die "CLAUDE_BOX_IMAGE_DIGEST '$CLAUDE_BOX_IMAGE_DIGEST' is not sha256:<hex>" ;;
  esac
  if [ "$dry" = 0 ]; then
    command -v podman >/dev/null || die "podman not found" "install podman (Linux: your distribution's package; macOS: 'brew install podman')"
  fi
  say "loading the box image (pinned to $CLAUDE_BOX_IMAGE_DIGEST)"
  run podman load --input "$CLAUDE_BOX_IMAGE_TAR"
  if [ "$dry" = 0 ]; then
    local id
    id=$(podman image inspect --format '{{.Id}}' localhost/claude-box:latest) ||
      die "the image did not load as localhost/claude-box:latest"
    case "$id" in sha256:*) ;; *) id="sha256:$id" ;; esac
    [ "$id" = "$CLAUDE_BOX_IMAGE_DIGEST" ] ||
      die "loaded image id $id does not match the pin $CLAUDE_BOX_IMAGE_DIGEST" "rebuild with 'nix build .#claude-image' and run setup again"
    say "image localhost/claude-box:latest = $id"
  fi
}

# --- macOS: the podman machine ----------------------------------------------
podman_machine() {
  if [ "$dry" = 0 ] && podman machine inspect >/dev/null 2>&1; then
    say "podman machine exists"
  else
    run podman machine init
  fi
  if [ "$dry" = 1 ] || ! podman machine inspect --format '{{.State}}' 2>/dev/null | grep -qi running; then
    run podman machine start
  fi
}

# --- the doors --------------------------------------------------------------
systemd_unit() {
  local door=$1 bin=$2
  cat <<UNIT
# Installed by claude-box setup (nix run .#setup). The $door door: its control
# socket is $rundir/$door.sock (dir 0700, socket 0600), never mounted into a box.
[Unit]
Description=claude-box $door door
Documentation=https://github.com/bounded-systems/claude-box/blob/main/docs/HOSTING.md

[Service]
Type=simple
ExecStart=$bin serve --socket $rundir/$door.sock
Restart=on-failure
RestartSec=2s
UMask=0077
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
SystemCallArchitectures=native
KillSignal=SIGTERM
TimeoutStopSec=15s

[Install]
WantedBy=default.target
UNIT
}

launchd_plist() {
  local door=$1 bin=$2 label="dev.claude-box.$1"
  cat <<PLIST
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Installed by claude-box setup (nix run .#setup): the $door door, TCP mode. -->
<plist version="1.0">
<dict>
  <key>Label</key><string>$label</string>
  <key>ProgramArguments</key>
  <array><string>$bin</string><string>serve</string><string>--socket</string><string>$rundir/$door.sock</string></array>
  <key>EnvironmentVariables</key>
  <dict><key>DOORS_TCP</key><string>1</string></dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><true/>
  <key>StandardErrorPath</key><string>$HOME/.claude-box/log/$door.log</string>
</dict>
</plist>
PLIST
}

install_doors() {
  local door bin
  for door in "${doors[@]}"; do
    bin=$(door_bin "$door")
    [ -n "$bin" ] || die "no binary for $door (set ${door^^}_BIN)" "run this through 'nix run .#setup'"
  done
  run mkdir -p "$rundir"
  run chmod 0700 "$HOME/.claude-box" "$rundir"
  case "$os" in
    Linux)
      if [ "$dry" = 0 ]; then
        command -v systemctl >/dev/null || die "systemctl not found: no systemd user session" "start the doors by hand: 'claude-box doors start' (detached, with pid files)"
      fi
      local unitdir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
      for door in "${doors[@]}"; do
        systemd_unit "$door" "$(door_bin "$door")" | write_file "$unitdir/claude-box-$door.service" 0644
      done
      run systemctl --user daemon-reload
      for door in "${doors[@]}"; do
        run systemctl --user enable --now "claude-box-$door.service"
      done
      say "doors installed as systemd user services (claude-box-{keeperd,scoutd,netd}.service)"
      say "headless host: 'loginctl enable-linger $USER' keeps them running without a login session"
      ;;
    Darwin)
      local agents="$HOME/Library/LaunchAgents"
      run mkdir -p "$HOME/.claude-box/log"
      for door in "${doors[@]}"; do
        launchd_plist "$door" "$(door_bin "$door")" | write_file "$agents/dev.claude-box.$door.plist" 0644
        run launchctl bootout "gui/$(id -u)/dev.claude-box.$door" || true
        run launchctl bootstrap "gui/$(id -u)" "$agents/dev.claude-box.$door.plist"
      done
      say "doors installed as launchd agents (dev.claude-box.{keeperd,scoutd,netd}), DOORS_TCP=1"
      say "NOT YET SUPPORTED on macOS: see docs/HOSTING.md (TCP doors reach the box through the podman machine's host gateway)"
      ;;
    *) die "unsupported host $os" "claude-box runs on Linux and macOS" ;;
  esac
}

[ "$os" = Darwin ] && podman_machine
[ "$skip_image" = 1 ] || load_image
[ "$skip_doors" = 1 ] || install_doors

say "done. Put the launcher on PATH once: nix profile install .#claude-box (or the home-manager module)"
say "then: claude-box login   (first /login of an account), claude-box --room dev --repo ."
[ -n "${CLAUDE_BOX_BIN:-}" ] && say "this setup's launcher, pinned to the image just loaded: $CLAUDE_BOX_BIN"
exit 0
