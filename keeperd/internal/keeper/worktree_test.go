package keeper

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// A linked worktree (git worktree add), as the launcher creates: HEAD and
// the index live in .git/worktrees/NAME, objects and refs in the main repo.
func TestCommitInLinkedWorktree(t *testing.T) {
	f := newFixture(t, nil)
	wt := filepath.Join(f.root, "wt-feature")
	run(t, f.repo, "git", "worktree", "add", "-q", "-b", "claude/feature", wt)
	writeFile(t, filepath.Join(wt, "README"), "from the worktree\n")
	l := f.launchAt(t, wt)
	st, err := f.k.Status(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	if st.Branch != "claude/feature" || len(st.Files) != 1 {
		t.Fatalf("status = %+v", st)
	}
	res, err := f.k.Commit(context.Background(), l, CommitRequest{Message: "in worktree", All: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Branch != "claude/feature" {
		t.Fatalf("branch = %q", res.Branch)
	}
	if got := strings.TrimSpace(run(t, f.repo, "git", "rev-parse", "claude/feature")); got != res.Commit {
		t.Fatalf("branch in main repo = %s, want %s", got, res.Commit)
	}
	if got := strings.TrimSpace(run(t, f.repo, "git", "rev-parse", "main")); got == res.Commit {
		t.Fatal("main moved")
	}
	if st := run(t, wt, "git", "status", "--porcelain"); st != "" {
		t.Fatalf("worktree status:\n%s", st)
	}
	if st := run(t, f.repo, "git", "status", "--porcelain"); st != "" {
		t.Fatalf("main worktree status:\n%s", st)
	}
	run(t, f.repo, "git", "config", "gpg.ssh.allowedSignersFile", f.allowedSigners(t))
	run(t, wt, "git", "verify-commit", res.Commit)
	run(t, f.repo, "git", "fsck", "--strict", "--no-progress")
	if _, err := VerifyCommit(wt, "HEAD", f.key.PublicKey(), true); err != nil {
		t.Fatal(err)
	}
}

// In a linked worktree, .git/info/exclude (which lives in the common git
// dir, as git reads it) and the global excludes apply as in the main one.
func TestLinkedWorktreeExcludes(t *testing.T) {
	f := newFixture(t, nil)
	wt := filepath.Join(f.root, "wt-feature")
	run(t, f.repo, "git", "worktree", "add", "-q", "-b", "claude/feature", wt)
	writeFile(t, filepath.Join(f.repo, ".git", "info", "exclude"), "*.pem\n")
	writeFile(t, filepath.Join(f.env["HOME"], ".config", "git", "ignore"), ".env\n")
	plantSecrets(t, wt)
	l := f.launchAt(t, wt)
	res, err := f.k.Commit(context.Background(), l, CommitRequest{Message: "m", All: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(changedPaths(res.Files), ","), "a notes.txt,a special.pem,a sub/notes.txt,m .gitignore"; got != want {
		t.Fatalf("committed %q, want %q", got, want)
	}
	if got, want := gitAs(t, wt, f.env, "ls-files", "-o", "-i", "--exclude-standard"), ".env\nkey.pem\nsub/.env\nsub/deep/cert.pem\n"; got != want {
		t.Fatalf("ignored, untracked after commit: %q, want %q", got, want)
	}
	if st := gitAs(t, wt, f.env, "status", "--porcelain"); st != "" {
		t.Fatalf("git status after commit:\n%s", st)
	}
}
