package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// TestLinkedWorktreeGitIsReadOnly: for a linked worktree (whose .git is a
// file pointing into the main repository's common dir), the box can edit the
// worktree but neither its .git file nor anything in the common dir — the
// config, the hooks, the worktree's own admin dir — and the main worktree's
// files are not in the box at all.
func TestLinkedWorktreeGitIsReadOnly(t *testing.T) {
	w := newWorld(t)
	main := harness.NewRepo(t, map[string]string{"README.md": "main\n"})
	wt := filepath.Join(t.TempDir(), "wt")
	harness.Git(t, main, "worktree", "add", "-q", "-b", "feature/x", wt)
	harness.ChownTree(t, main, 1000, 1000)
	harness.ChownTree(t, wt, 1000, 1000)
	common := filepath.Join(main, ".git")
	admin := filepath.Join(common, "worktrees", filepath.Base(wt))
	if _, err := os.Stat(admin); err != nil {
		t.Fatalf("worktree admin dir: %v", err)
	}

	paths := []string{
		"/work/README.md",
		"/work/.git",
		filepath.Join(common, "config"),
		filepath.Join(common, "hooks", "post-checkout"),
		filepath.Join(admin, "HEAD"),
		filepath.Join(main, "README.md"),
	}
	args := []string{"e2e-worktree", "--repo", wt, "--", "probe", "write"}
	for _, p := range paths {
		args = append(args, "-path", p)
	}
	r := w.ok(t, args...).probe(t)

	if got := r.Write["/work/README.md"]; got != "ok" {
		t.Errorf("write /work/README.md = %q, want ok", got)
	}
	for _, p := range paths[1:5] {
		if got := r.Write[p]; !strings.Contains(got, "read-only file system") {
			t.Errorf("write %s = %q, want read-only file system", p, got)
		}
	}
	if got := r.Write[filepath.Join(main, "README.md")]; got == "ok" {
		t.Errorf("the box wrote the main worktree's README.md")
	}
	if b, _ := os.ReadFile(filepath.Join(main, "README.md")); string(b) != "main\n" {
		t.Errorf("main worktree README.md = %q, changed by the box", b)
	}
}

// TestWritableSubtrees: with --writable SUB the worktree is read-only except
// the named subtree, and .git stays read-only.
func TestWritableSubtrees(t *testing.T) {
	w := newWorld(t)
	repo := harness.NewRepo(t, map[string]string{"README.md": "top\n", "src/main.go": "package main\n"})
	harness.ChownTree(t, repo, 1000, 1000)
	r := w.ok(t, "e2e-writable", "--repo", repo, "--writable", "src", "--", "probe", "write",
		"-path", "/work/src/main.go", "-path", "/work/src/new.txt", "-path", "/work/README.md", "-path", "/work/new.txt", "-path", "/work/.git/config").probe(t)
	for _, p := range []string{"/work/src/main.go", "/work/src/new.txt"} {
		if got := r.Write[p]; got != "ok" {
			t.Errorf("write %s = %q, want ok (inside --writable src)", p, got)
		}
	}
	for _, p := range []string{"/work/README.md", "/work/new.txt", "/work/.git/config"} {
		if got := r.Write[p]; !strings.Contains(got, "read-only file system") {
			t.Errorf("write %s = %q, want read-only file system (outside --writable)", p, got)
		}
	}
}

// repoRWWarning is what the launcher prints for --repo-rw
// (launcher/internal/plan.RepoRWWarning).
const repoRWWarning = "claude-box: WARNING: --repo-rw mounts .git read-write: the box can rewrite hooks, " +
	"config and history that run on this host. Use --keeper to commit instead."

// TestRepoRW: --repo-rw, the unsafe escape, says so loudly on stderr, and in
// the box .git is writable: a file created in /work/.git lands in the
// host's .git.
func TestRepoRW(t *testing.T) {
	w := newWorld(t)
	repo := harness.NewRepo(t, map[string]string{"README.md": "top\n"})
	harness.ChownTree(t, repo, 1000, 1000)
	res := w.ok(t, "e2e-repo-rw", "--repo", repo, "--repo-rw", "--", "probe", "write",
		"-path", "/work/.git/e2e-repo-rw", "-path", "/work/README.md")
	if !slices.Contains(strings.Split(res.stderr, "\n"), repoRWWarning) {
		t.Errorf("stderr lacks the --repo-rw warning line %q\n%s", repoRWWarning, res)
	}
	r := res.probe(t)
	for _, p := range []string{"/work/.git/e2e-repo-rw", "/work/README.md"} {
		if got := r.Write[p]; got != "ok" {
			t.Errorf("write %s = %q, want ok (--repo-rw)", p, got)
		}
	}
	if b, err := os.ReadFile(filepath.Join(repo, ".git", "e2e-repo-rw")); err != nil || string(b) != "probe\n" {
		t.Errorf("host .git/e2e-repo-rw = %q, %v; want the box's write", b, err)
	}
}
