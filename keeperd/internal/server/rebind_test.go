package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom/door"
	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A door works on the repository it was minted for, even when a directory
// on the bound path is writable by some box (a worktree nested in another
// launch's worktree, as .claude/worktrees/NAME is): replacing the bound
// directory with a symlink to another repository under the policy root
// refuses every later request instead of moving the door there.
func TestDoorStaysOnTheRepositoryItWasMintedFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		swap func(t *testing.T, repo, other string)
	}{
		{"symlink to another repository", func(t *testing.T, repo, other string) {
			if err := os.Symlink(other, repo); err != nil {
				t.Fatal(err)
			}
		}},
		{"another repository at the same path", func(t *testing.T, repo, other string) {
			if err := os.Rename(other, repo); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := f.client(t, map[string]string{"repo": f.repo})
			other := filepath.Join(filepath.Dir(f.repo), "other")
			os.MkdirAll(other, 0o755)
			git(t, other, "init", "-q", "-b", "main")
			os.WriteFile(filepath.Join(other, "HOST-WORK"), []byte("uncommitted host work\n"), 0o644)
			git(t, other, "commit", "-q", "--allow-empty", "-m", "init")
			head := strings.TrimSpace(git(t, other, "rev-parse", "HEAD"))
			if err := os.Rename(f.repo, f.repo+".moved"); err != nil {
				t.Fatal(err)
			}
			tc.swap(t, f.repo, other)
			_, err := c.Commit(ctx5(t), &keeperv1.CommitRequest{Message: "m", All: true})
			if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "the door was bound to") {
				t.Fatalf("commit after the bound directory was replaced = %v, want FailedPrecondition", err)
			}
			if strings.Contains(err.Error(), filepath.Dir(f.repo)) {
				t.Fatalf("refusal names a host path: %v", err)
			}
			if _, err := c.GetStatus(ctx5(t), &keeperv1.GetStatusRequest{}); status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("status after the bound directory was replaced = %v, want FailedPrecondition", err)
			}
			if _, err := c.Push(ctx5(t), &keeperv1.PushRequest{Branch: "main"}); status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("push after the bound directory was replaced = %v, want FailedPrecondition", err)
			}
			if got := strings.TrimSpace(git(t, f.repo, "rev-parse", "HEAD")); got != head {
				t.Fatalf("the other repository's HEAD moved to %s", got)
			}
		})
	}
}

// A door whose binding keeperd never validated (a minter wired without
// Server.Validate) has no pin, and gets nothing: the check fails closed
// instead of being skipped.
func TestUnpinnedDoorIsRefused(t *testing.T) {
	f := newFixture(t)
	m, err := door.NewMinter(door.MinterConfig{
		Door: DoorName, Version: "test", Dir: filepath.Join(filepath.Dir(filepath.Dir(f.repo)), "unpinned"),
		Register: f.srv.Register, Validate: func(door.Binding) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(ctx5(t)) })
	c := mintClient(t, m, "L2", map[string]string{"repo": f.repo})
	head := strings.TrimSpace(git(t, f.repo, "rev-parse", "HEAD"))
	os.WriteFile(filepath.Join(f.repo, "README"), []byte("changed\n"), 0o644)
	_, err = c.Commit(ctx5(t), &keeperv1.CommitRequest{Message: "m", All: true})
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "denied: this socket is not a keeper door" {
		t.Fatalf("commit on an unpinned door = %v, want PermissionDenied", err)
	}
	if got := strings.TrimSpace(git(t, f.repo, "rev-parse", "HEAD")); got != head {
		t.Fatalf("HEAD moved to %s", got)
	}
}
