package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestLaunchExitCodeAndCleanup: the launcher returns the box's exit code,
// passes arguments through in order, and leaves no container behind.
func TestLaunchExitCodeAndCleanup(t *testing.T) {
	w := newWorld(t)
	r := w.claudeBox(t, "e2e-exit", "--", "sh", "-c", `printf '%s|' "$@"; exit 7`, "sh", "a b", "--resume", "-x")
	if r.code != 7 {
		t.Errorf("exit code = %d, want 7\n%s", r.code, r)
	}
	if !strings.Contains(r.stdout, "a b|--resume|-x|") {
		t.Errorf("arguments did not pass through in order\n%s", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps, err := w.s.podman.CLI(ctx, "ps", "--all", "--filter", "label=io.claude-box.account=e2e-exit", "--format", "{{.ID}} {{.Status}}")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(ps)) != "" {
		t.Errorf("containers left behind:\n%s", ps)
	}
}
