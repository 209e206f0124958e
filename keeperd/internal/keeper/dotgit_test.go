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
		{"backslash separated", func(t *testing.T, r string) { writeFile(t, filepath.Join(r, `.git\hooks\post-checkout`), "x\n") }, nil, `".git\\hooks\\post-checkout"`},
		{"backslash inside", func(t *testing.T, r string) { writeFile(t, filepath.Join(r, "sub", `x\GIT~1\config`), "x\n") }, nil, `"sub/x\\GIT~1\\config"`},
		{"backslash gitmodules symlink", func(t *testing.T, r string) {
			if err := os.Symlink("README", filepath.Join(r, `d\.gitmodules`)); err != nil {
				t.Fatal(err)
			}
		}, nil, `"d\\.gitmodules"`},
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

// A symlink whose target stays inside the worktree only when read as text
// ("s/.." is "." lexically) but leaves it when resolved, because a name in
// it is itself a symlink (s -> .), is refused like any escaping symlink,
// and so is a target with Windows separators that climbs out there. A
// target that climbs first and then descends, as in node_modules/.bin,
// is still committed.
func TestCommitRefusesSymlinksEscapingThroughSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name, link, target string
		refused            bool
	}{
		{"through a symlink to the root", "a", "s/../secret", true},
		{"climbing after a name", "sub/b", "../s/../../x", true},
		{"windows separators", "sub/c", `..\..\x`, true},
		{"windows drive", "f", `C:\Users\me\.ssh\id_ed25519`, true},
		{"climb then descend", "sub/d", "../README", false},
		{"plain", "e", "src/a.go", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if err := os.Symlink(".", filepath.Join(f.repo, "s")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(f.repo, "sub", "keep"), "x\n")
			if err := os.Symlink(tc.target, filepath.Join(f.repo, tc.link)); err != nil {
				t.Fatal(err)
			}
			_, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", Paths: []string{tc.link}})
			if !tc.refused {
				if err != nil {
					t.Fatalf("commit of %s -> %s: %v", tc.link, tc.target, err)
				}
				return
			}
			want := `path refused: "` + tc.link + `" is a symlink leading outside the worktree`
			if !errors.Is(err, ErrPath) || err.Error() != want {
				t.Fatalf("commit of %s -> %s = %v, want %q", tc.link, tc.target, err, want)
			}
		})
	}
}
