package keeper

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// With a writable .git (--repo-rw) the box could point keeperd at another
// host repository: a symlinked ref, or objects borrowed through an
// alternates file. keeperd reads the git dir through a filesystem bound to
// it, so neither leads out, and a push never carries the other repository.
func TestGitDirSymlinksNeverLeadOut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, f *fixture, other string)
	}{
		{"symlinked branch ref", func(t *testing.T, f *fixture, other string) {
			ref := filepath.Join(f.repo, ".git", "refs", "heads", "main")
			os.Remove(ref)
			if err := os.Symlink(filepath.Join(other, ".git", "refs", "heads", "main"), ref); err != nil {
				t.Fatal(err)
			}
		}},
		{"commondir pointing at another repository", func(t *testing.T, f *fixture, other string) {
			writeFile(t, filepath.Join(f.repo, ".git", "commondir"), filepath.Join(other, ".git")+"\n")
		}},
		{"symlinked objects directory", func(t *testing.T, f *fixture, other string) {
			objs := filepath.Join(f.repo, ".git", "objects")
			if err := os.Rename(objs, objs+".orig"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(other, ".git", "objects"), objs); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(f.repo, ".git", "refs", "heads", "main"), strings.TrimSpace(run(t, other, "git", "rev-parse", "HEAD"))+"\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			other := testRepo(t, t.TempDir(), "secret")
			writeFile(t, filepath.Join(other, "SECRET"), "host secret\n")
			run(t, other, "git", "add", "-A")
			run(t, other, "git", "commit", "-q", "-m", "secret")
			secret := strings.TrimSpace(run(t, other, "git", "rev-parse", "HEAD"))
			tc.plant(t, f, other)
			st, err := f.k.Status(context.Background(), f.launch)
			if err == nil && st.Head == secret {
				t.Fatalf("status read the other repository's head %s", secret)
			}
			writeFile(t, filepath.Join(f.repo, "README"), "changed\n")
			res, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
			if err == nil {
				if parent := strings.TrimSpace(run(t, other, "git", "rev-parse", "HEAD")); strings.Contains(run(t, f.repo, "git", "--git-dir", filepath.Join(f.repo, ".git"), "cat-file", "-p", res.Commit), parent) {
					t.Fatalf("commit %s has the other repository's commit as its parent", res.Commit)
				}
			}
		})
	}
}

// A linked worktree's .git file (writable with --repo-rw) pointing at
// another repository's git dir, or at another worktree's, is refused: the
// git dir must be COMMON/worktrees/ID and link back to this worktree.
func TestLinkedWorktreeGitFileCannotBeRedirected(t *testing.T) {
	f := newFixture(t, nil)
	other := testRepo(t, t.TempDir(), "secret")
	wt := filepath.Join(f.root, "wt-a")
	run(t, f.repo, "git", "worktree", "add", "-q", "-b", "claude/a", wt)
	wtB := filepath.Join(f.root, "wt-b")
	run(t, f.repo, "git", "worktree", "add", "-q", "-b", "claude/b", wtB)
	l := f.launchAt(t, wt)
	if _, err := f.k.Status(context.Background(), l); err != nil {
		t.Fatalf("status of an intact linked worktree: %v", err)
	}
	for name, target := range map[string]string{
		"another repository":        filepath.Join(other, ".git"),
		"another worktree's gitdir": filepath.Join(f.repo, ".git", "worktrees", "wt-b"),
	} {
		t.Run(name, func(t *testing.T) {
			writeFile(t, filepath.Join(wt, ".git"), "gitdir: "+target+"\n")
			_, err := f.k.Status(context.Background(), l)
			if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "the door was bound to") {
				t.Fatalf("status = %v, want the redirect refused", err)
			}
			if strings.Contains(err.Error(), other) || strings.Contains(err.Error(), f.root) {
				t.Fatalf("refusal names a host path: %v", err)
			}
		})
	}
}

// A FIFO where the index is (a writable .git) never hangs a request.
func TestIndexFIFONeverBlocks(t *testing.T) {
	f := newFixture(t, nil)
	idx := filepath.Join(f.repo, ".git", "index")
	os.Remove(idx)
	if err := syscall.Mkfifo(idx, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.k.Status(context.Background(), f.launch)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrPrecondition) {
			t.Fatalf("status with a FIFO index: %v", err)
		}
	case <-time.After(20 * time.Second):
		if wf, err := os.OpenFile(idx, os.O_WRONLY, 0); err == nil {
			wf.Close()
		}
		<-done
		t.Fatal("status blocked opening a FIFO index")
	}
}

// With a writable .git, .git/info swapped for a symlink to a host
// directory never makes keeperd parse that directory's exclude or
// attributes file: it is read inside the git dir or not at all.
func TestInfoDirSymlinkNeverLeadsOut(t *testing.T) {
	f := newFixture(t, nil)
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "exclude"), "host-pattern\n")
	writeFile(t, filepath.Join(outside, "attributes"), "filtered filter=lfs\n")
	info := filepath.Join(f.repo, ".git", "info")
	if err := os.RemoveAll(info); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, info); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.repo, "host-pattern"), "x\n")
	writeFile(t, filepath.Join(f.repo, "filtered"), "x\n")
	res, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if got := strings.Join(changedPaths(res.Files), ","); got != "a filtered,a host-pattern" {
		t.Fatalf("files = %q: a host file was read as .git/info/exclude or attributes", got)
	}
}
