// Package plan turns what a user asked for (an account, rooms, doors, a repo)
// into exactly one box: the network posture, the mounts in order, the
// environment, the security floor and the manifest the guest is told. It is
// pure: no podman, no sockets, no clock; internal/podman turns a Box into a
// container and internal/doors mints the sockets a Box mounts.
package plan
