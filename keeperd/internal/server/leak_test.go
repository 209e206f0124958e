package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/status"

	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
)

// A refusal the box reads names no host path: not the worktree's, not its
// git dir's. The audit record keeps the full text for the operator.
func TestBoxFacingErrorsNameNoHostPath(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, map[string]string{"repo": f.repo})
	ctx := ctx5(t)
	os.WriteFile(filepath.Join(f.repo, "README"), []byte("changed\n"), 0o644)
	lock := filepath.Join(f.repo, ".git", "index.lock")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := c.Commit(ctx, &keeperv1.CommitRequest{Message: "m", All: true})
	os.Remove(lock)
	if err == nil {
		t.Fatal("commit with a locked index succeeded")
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, f.repo) || !strings.Contains(msg, "index is locked") {
		t.Fatalf("box-facing message %q names a host path (or lost its reason)", msg)
	}
	// The bound worktree stops being one (the host moved its .git away).
	if err := os.Rename(filepath.Join(f.repo, ".git"), filepath.Join(f.repo, "git.moved")); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetStatus(ctx, &keeperv1.GetStatusRequest{})
	if err == nil {
		t.Fatal("status of a worktree without .git succeeded")
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, f.repo) || strings.Contains(msg, filepath.Dir(f.repo)) {
		t.Fatalf("box-facing message %q names a host path", msg)
	}
	if !strings.Contains(f.logs.String(), f.repo) {
		t.Fatal("the audit record lost the host path")
	}
}
