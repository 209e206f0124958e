// Package harness runs the pieces of the claude-box end-to-end suite: an
// isolated podman API service configured the way the host needs, a small
// local test image built without nix or a registry, the repo's binaries built
// once per run, the door daemons with temporary state, and loopback upstreams
// (HTTPS, smart-HTTP git, a fake GitHub API) that count every connection they
// get. Everything it starts is stopped by the cleanup it registers.
//
// A missing prerequisite is a named skip locally and a failure when CI=true
// (see Need).
package harness
