package keeper

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The box must not get keeperd to commit a tree git itself treats as
// hostile: a name that is .git on NTFS or HFS+ (git checks both on every
// platform: "GIT~1", ".git.", ".git " and .git with ignorable code points),
// or a symlinked .gitmodules. git fsck calls these errors, hosts that
// check pushes refuse them, and a checkout on such a filesystem would
// write into .git.
func TestCommitRefusesNamesGitTreatsAsDotGit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		plant   func(t *testing.T, repo string)
		paths   []string
		wantSub string
	}{
		{"ntfs short name", func(t *testing.T, r string) { writeFile(t, filepath.Join(r, "GIT~1", "config"), "x\n") }, nil, `"GIT~1"`},
		{"ntfs trailing dot", func(t *testing.T, r string) { writeFile(t, filepath.Join(r, "sub", ".git.", "config"), "x\n") }, nil, `"sub/.git."`},
		{"ntfs trailing space", func(t *testing.T, r string) { writeFile(t, filepath.Join(r, ".git ", "hooks", "x"), "x\n") }, nil, `".git "`},
		{"hfs ignorable", func(t *testing.T, r string) { writeFile(t, filepath.Join(r, ".g\u200cit", "config"), "x\n") }, nil, `".g\u200cit"`},
		{"explicit path", func(t *testing.T, r string) { writeFile(t, filepath.Join(r, "GIT~1", "config"), "x\n") }, []string{"GIT~1/config"}, `"GIT~1/config"`},
		{"symlinked gitmodules", func(t *testing.T, r string) {
			if err := os.Symlink("README", filepath.Join(r, ".gitmodules")); err != nil {
				t.Fatal(err)
			}
		}, nil, `".gitmodules"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tc.plant(t, f.repo)
			head := strings.TrimSpace(run(t, f.repo, "git", "rev-parse", "HEAD"))
			req := CommitRequest{Message: "m", All: tc.paths == nil, Paths: tc.paths}
			_, err := f.k.Commit(context.Background(), f.launch, req)
			if !errors.Is(err, ErrPath) || !strings.Contains(err.Error(), tc.wantSub) {
				t.Fatalf("commit = %v, want ErrPath naming %s", err, tc.wantSub)
			}
			if got := strings.TrimSpace(run(t, f.repo, "git", "rev-parse", "HEAD")); got != head {
				t.Fatalf("HEAD moved to %s", got)
			}
		})
	}
}
