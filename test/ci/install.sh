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
	git openssh-client \
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

podman version --format '{{.Client.Version}}' | sed 's/^/install.sh: podman /'
