#!/bin/sh
# Installs what the claude-box end-to-end suite (test/) needs on a fresh
# Debian 12 machine. Run as root. Idempotent.
#
# The suite starts its own isolated podman API service with its own
# containers.conf (runc, cgroupfs, file events, no default ulimits), so no
# host-wide podman configuration is changed here; this script only makes
# sure the host can run it.
set -eu

if [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: run as root" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	podman runc conmon catatonit uidmap \
	netavark aardvark-dns iptables \
	busybox-static \
	git openssh-client openssh-server \
	curl ca-certificates \
	iproute2 procps

# podman 4.3 (Debian 12) defaults to crun when present; crun fails on hosts
# with hybrid cgroups, and the suite pins runc in its own containers.conf.
# Check the pieces the harness execs are really there.
# netavark and iptables are only recommended by podman; --net-open boxes
# (TestSurfaceIsHonest/open) need them for podman's default bridge network.
for b in podman runc conmon busybox git ssh-keygen iptables /usr/lib/podman/netavark; do
	command -v "$b" >/dev/null 2>&1 || { echo "install.sh: $b missing after install" >&2; exit 1; }
done

# busybox must be the static one: it is copied into the test image as is.
if busybox sh -c 'true' 2>/dev/null && ldd "$(command -v busybox)" >/dev/null 2>&1; then
	echo "install.sh: busybox is dynamically linked; install busybox-static" >&2
	exit 1
fi

# The isolated service keeps state in temp dirs; it needs unprivileged
# user namespaces for nothing (rootful), but runc needs the pids cgroup
# controller for --pids-limit.
if [ ! -e /sys/fs/cgroup/pids ] && ! grep -qw pids /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
	echo "install.sh: warning: no pids cgroup controller; the fork-bomb test will fail" >&2
fi

# The rootless tests (e2e/rootless_test.go) run podman, the launcher and the
# door daemons as this unprivileged user. Its uid is not 1000 on purpose:
# rootless podman maps it to the box user 1000 (keep-id), and a test must
# see the difference between the host uid and the box uid.
E2E_USER=claudebox-e2e
E2E_UID=4321
if ! id -u "$E2E_USER" >/dev/null 2>&1; then
	if getent passwd "$E2E_UID" >/dev/null 2>&1 || getent group "$E2E_UID" >/dev/null 2>&1; then
		# Taken: let useradd choose, but never 1000 (the box uid).
		useradd --create-home --user-group --shell /bin/sh -K UID_MIN=2000 -K GID_MIN=2000 "$E2E_USER"
	else
		useradd --create-home --user-group --shell /bin/sh --uid "$E2E_UID" "$E2E_USER"
	fi
fi
# useradd gives a new user subordinate ids when login.defs allows it; make
# sure of it, without overlapping another user's range.
for kind in uid gid; do
	f=/etc/sub$kind
	touch "$f"
	if ! grep -q "^$E2E_USER:" "$f"; then
		start=$(awk -F: 'BEGIN { m = 100000 } { e = $2 + $3; if (e > m) m = e } END { print m }' "$f")
		usermod "--add-sub${kind}s" "$start-$((start + 65535))" "$E2E_USER"
	fi
done
for b in newuidmap newgidmap; do
	command -v "$b" >/dev/null 2>&1 || { echo "install.sh: $b missing (uidmap)" >&2; exit 1; }
done
if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" != 1 ]; then
	echo "install.sh: warning: kernel.unprivileged_userns_clone=0; rootless podman (TestRootless*) cannot run" >&2
fi
echo "install.sh: rootless user $E2E_USER uid $(id -u "$E2E_USER"), subuid $(grep "^$E2E_USER:" /etc/subuid | cut -d: -f2-)"

podman version --format '{{.Client.Version}}' | sed 's/^/install.sh: podman /'
