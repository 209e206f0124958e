// Package e2e is the confinement proof: it launches real boxes with the real
// claude-box launcher, real door daemons and an isolated podman service, then
// attacks them from inside and checks from outside. See ../README.md.
package e2e
