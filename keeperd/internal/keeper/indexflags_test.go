package keeper

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `git update-index --assume-unchanged` and `--skip-worktree` set on the
// host survive a keeper commit of other files, and keeperd leaves a marked
// file alone exactly as `git add` does (its change is not staged).
func TestCommitKeepsIndexFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  CommitRequest
	}{
		{"all", CommitRequest{Message: "m", All: true}},
		{"paths", CommitRequest{Message: "m", Paths: []string{"new.txt", "src/a.go", "README", "skip"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			writeFile(t, filepath.Join(f.repo, "skip"), "s\n")
			run(t, f.repo, "git", "add", "skip")
			run(t, f.repo, "git", "commit", "-q", "-m", "skip")
			run(t, f.repo, "git", "update-index", "--assume-unchanged", "README")
			run(t, f.repo, "git", "update-index", "--skip-worktree", "skip")
			twin := twinRepo(t, f.repo)
			for _, dir := range []string{f.repo, twin} {
				if err := os.Remove(filepath.Join(dir, "skip")); err != nil { // not checked out: sparse
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "README"), "changed under assume-unchanged\n")
				writeFile(t, filepath.Join(dir, "src", "a.go"), "package a // changed\n")
				writeFile(t, filepath.Join(dir, "new.txt"), "new\n")
			}
			res, err := f.k.Commit(context.Background(), f.launch, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(changedPaths(res.Files), ","); got != "a new.txt,m src/a.go" {
				t.Fatalf("files = %q, want the assume-unchanged README left out", got)
			}
			want := "h README\nS skip\nH src/a.go\n"
			if got := run(t, f.repo, "git", "ls-files", "-v", "README", "skip", "src/a.go"); got != want {
				t.Fatalf("git ls-files -v after keeper commit:\n%s\nwant:\n%s", got, want)
			}
			// git add on the twin stages the same: README is not looked at.
			if tc.req.All {
				run(t, twin, "git", "add", "-A")
			} else {
				run(t, twin, "git", "add", "--", "new.txt", "src/a.go", "README")
			}
			if got, want := run(t, f.repo, "git", "ls-files", "-s"), run(t, twin, "git", "ls-files", "-s"); got != want {
				t.Fatalf("index after keeper commit:\n%s\nafter git add:\n%s", got, want)
			}
			if st := run(t, f.repo, "git", "status", "--porcelain"); st != "" {
				t.Fatalf("git status after commit:\n%s", st)
			}
			run(t, f.repo, "git", "fsck", "--strict", "--no-progress")
		})
	}
}

// A path that would be both a file and a directory in the commit — a file
// the index keeps (assume-unchanged, skip-worktree, or simply not named)
// that the box replaced with a directory, or the reverse — refuses the
// commit instead of writing a tree with duplicate entries, which git fsck
// and hosting services reject.
func TestCommitRefusesFileDirectoryConflict(t *testing.T) {
	const want = `failed precondition: "README" would be both a file and a directory in the commit: name the path that changed from one to the other, or clear its assume-unchanged or skip-worktree bit on the host`
	for _, tc := range []struct {
		name string
		flag string
		req  CommitRequest
	}{
		{"assume-unchanged file now a directory", "--assume-unchanged", CommitRequest{Message: "m", All: true}},
		{"skip-worktree file now a directory", "--skip-worktree", CommitRequest{Message: "m", All: true}},
		{"tracked file now a directory, only the new file named", "", CommitRequest{Message: "m", Paths: []string{"README/x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			if tc.flag != "" {
				run(t, f.repo, "git", "update-index", tc.flag, "README")
			}
			head := run(t, f.repo, "git", "rev-parse", "HEAD")
			before := run(t, f.repo, "git", "ls-files", "-s")
			if err := os.Remove(filepath.Join(f.repo, "README")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(f.repo, "README", "x"), "a directory now\n")
			_, err := f.k.Commit(context.Background(), f.launch, tc.req)
			if !errors.Is(err, ErrPrecondition) || err.Error() != want {
				t.Fatalf("commit: %v\nwant: %s", err, want)
			}
			if got := run(t, f.repo, "git", "rev-parse", "HEAD"); got != head {
				t.Fatal("HEAD moved")
			}
			if got := run(t, f.repo, "git", "ls-files", "-s"); got != before {
				t.Fatalf("index changed:\n%s\nwas:\n%s", got, before)
			}
			run(t, f.repo, "git", "fsck", "--strict", "--no-progress")
		})
	}
}
