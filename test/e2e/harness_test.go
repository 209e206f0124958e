package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/probe"
)

// TestHarnessRunsContainer proves the harness itself: the isolated podman
// service runs the test image, as the claude user, with no network.
func TestHarnessRunsContainer(t *testing.T) {
	s := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := s.podman.CLI(ctx, "run", "--rm", "--network=none", "--entrypoint", "/usr/local/bin/probe", s.image.Ref, "net")
	if err != nil {
		t.Fatalf("podman run: %v", err)
	}
	r, err := probe.Parse(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.UID != 1000 || r.GID != 1000 {
		t.Errorf("uid:gid = %d:%d, want 1000:1000", r.UID, r.GID)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0] != "lo" {
		t.Errorf("interfaces = %v, want [lo]", r.Interfaces)
	}
}
