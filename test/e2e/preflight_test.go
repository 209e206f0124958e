package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPreflightFailsClosed: a launch whose prerequisites are missing does
// not start a box, leaves no door minted, exits 125 and says what is missing
// with a hint.
func TestPreflightFailsClosed(t *testing.T) {
	w := newWorld(t)
	w.startNetd(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	noBox := func(t *testing.T, account string) {
		t.Helper()
		ps, err := w.s.podman.CLI(ctx, "ps", "--all", "--filter", "label=io.claude-box.account="+account, "--format", "{{.ID}}")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(ps)) != "" {
			t.Errorf("a container was created: %s", ps)
		}
		if live := w.liveLaunches(t); len(live) != 0 {
			t.Errorf("doors left minted: %v", live)
		}
	}

	t.Run("door daemon not running", func(t *testing.T) {
		// netd runs, scoutd does not: nothing may be granted at all.
		missing := filepath.Join(w.home, "no-scoutd.sock")
		w.extraEnv = []string{"SCOUTD_SOCK=" + missing}
		defer func() { w.extraEnv = nil }()
		r := w.claudeBox(t, "e2e-preflight", "--net", "--scout", "--", "true")
		if r.code != 125 {
			t.Errorf("exit %d, want 125\n%s", r.code, r)
		}
		for _, want := range []string{"scoutd", missing, "hint:"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q\n%s", want, r)
			}
		}
		noBox(t, "e2e-preflight")
	})

	t.Run("podman unreachable", func(t *testing.T) {
		missing := filepath.Join(w.home, "no-podman.sock")
		w.extraEnv = []string{"CONTAINER_HOST=unix://" + missing}
		defer func() { w.extraEnv = nil }()
		r := w.claudeBox(t, "e2e-preflight", "--", "true")
		if r.code != 125 {
			t.Errorf("exit %d, want 125\n%s", r.code, r)
		}
		for _, want := range []string{missing, "hint:"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q\n%s", want, r)
			}
		}
		noBox(t, "e2e-preflight")
	})

	t.Run("image missing", func(t *testing.T) {
		r := w.claudeBox(t, "e2e-preflight", "--image", "localhost/claude-box-test:absent", "--", "true")
		if r.code != 125 {
			t.Errorf("exit %d, want 125\n%s", r.code, r)
		}
		for _, want := range []string{"localhost/claude-box-test:absent", "hint:"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q\n%s", want, r)
			}
		}
		noBox(t, "e2e-preflight")
	})

	t.Run("image pin mismatch", func(t *testing.T) {
		w.extraEnv = []string{"CLAUDE_BOX_IMAGE_DIGEST=sha256:" + strings.Repeat("0", 64)}
		defer func() { w.extraEnv = nil }()
		r := w.claudeBox(t, "e2e-preflight", "--", "true")
		if r.code != 125 {
			t.Errorf("exit %d, want 125\n%s", r.code, r)
		}
		if !strings.Contains(r.stderr, "hint:") {
			t.Errorf("stderr lacks a hint\n%s", r)
		}
		noBox(t, "e2e-preflight")
	})
}
