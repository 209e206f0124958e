package keeper

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// A directory the box swaps for a symlink to a host directory after
// keeperd checked it (the state stageAll sees when it loses that race)
// is never walked: nothing of the host directory, not even a file name,
// reaches the index or the error.
func TestStageAllNeverWalksASwappedInSymlink(t *testing.T) {
	f := newFixture(t, nil)
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "host-secret-name"), "PRIVATE KEY\n")
	writeFile(t, filepath.Join(outside, "deeper", "host-deeper-name"), "x\n")
	if err := os.Symlink(outside, filepath.Join(f.repo, "sub")); err != nil {
		t.Fatal(err)
	}
	s := emptyIndexStager(t, f.repo)
	err := s.stageAll("sub")
	if !errors.Is(err, ErrPath) {
		t.Fatalf("stageAll through a symlink: %v, want ErrPath", err)
	}
	if strings.Contains(err.Error(), "host-") || strings.Contains(err.Error(), outside) {
		t.Fatalf("error names what is outside the worktree: %v", err)
	}
	for _, e := range s.entries() {
		t.Errorf("staged %q", e.Name)
	}
}

// A file the box swaps for a FIFO after keeperd stat'ed it never blocks the
// request (and the repository lock) on open: the swap is refused at once.
func TestBlobOfAFileSwappedForAFIFO(t *testing.T) {
	f := newFixture(t, nil)
	p := filepath.Join(f.repo, "swapped")
	writeFile(t, p, "regular\n")
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	s := emptyIndexStager(t, f.repo)
	done := make(chan error, 1)
	go func() {
		_, err := s.blob("swapped", fi)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrPrecondition) && !errors.Is(err, ErrPath) {
			t.Fatalf("blob of a swapped-in FIFO: %v", err)
		}
	case <-time.After(20 * time.Second):
		// Unblock the open so the test can end, then fail.
		if wf, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			wf.Close()
		}
		<-done
		t.Fatal("blob blocked opening a FIFO")
	}
}

// A directory the box swaps for a symlink to a host directory after
// keeperd listed it, but before it lstat'ed the names it found there, never
// makes keeperd stat a host file: the outcome is the same whether the host
// file exists or not, so the box cannot probe which host paths exist (nor
// their size or type).
func TestStageAllNeverStatsThroughASwappedInSymlink(t *testing.T) {
	outcome := func(t *testing.T, hostFileExists bool) string {
		f := newFixture(t, nil)
		outside := t.TempDir()
		if hostFileExists {
			// Larger than keeperd stages: a stat that reached it would say so.
			big, err := os.Create(filepath.Join(outside, "id_ed25519"))
			if err != nil {
				t.Fatal(err)
			}
			if err := big.Truncate(MaxFileSize + 1); err != nil {
				t.Fatal(err)
			}
			big.Close()
		}
		sub := filepath.Join(f.repo, "sub")
		writeFile(t, filepath.Join(sub, "id_ed25519"), "box file\n")
		s := emptyIndexStager(t, f.repo)
		s.afterCollect = func() {
			if err := os.RemoveAll(sub); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, sub); err != nil {
				t.Fatal(err)
			}
		}
		err := s.stageAll("")
		if err != nil && strings.Contains(err.Error(), outside) {
			t.Fatalf("error names a host path: %v", err)
		}
		for _, e := range s.entries() {
			if strings.HasPrefix(e.Name, "sub/") {
				t.Errorf("staged %q", e.Name)
			}
		}
		return fmt.Sprint(err)
	}
	with, without := outcome(t, true), outcome(t, false)
	if with != without {
		t.Fatalf("the outcome tells whether a host file exists:\n with:    %s\n without: %s", with, without)
	}
}

// One request naming the same directory (or the whole worktree, as "",
// "." or "./") many times walks it once: a box cannot make one commit hold
// the repository lock and the index lock for a walk per copy.
func TestStagePathsWalksEachDirectoryOnce(t *testing.T) {
	f := newFixture(t, nil)
	w, err := openWorktree(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := newStager(w, &gitIndex{Index: &index.Index{Version: 2}}, time.Now(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	walks := 0
	s.afterCollect = func() { walks++ }
	var paths []string
	for i := 0; i < 1000; i++ {
		paths = append(paths, ".", "src", "./src/", "", "./", "src/a.go")
	}
	if err := s.stagePaths(paths); err != nil {
		t.Fatal(err)
	}
	if walks != 1 {
		t.Fatalf("%d walks for %d paths naming the worktree and one directory, want 1", walks, len(paths))
	}
}

// emptyIndexStager stages repo's worktree against an empty index, its
// worktree closed when the test ends.
func emptyIndexStager(t *testing.T, repo string) *stager {
	t.Helper()
	w, err := openWorktree(repo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	s, err := newStager(w, &gitIndex{Index: &index.Index{Version: 2}}, time.Now(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
