package keeper

import (
	"errors"
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
	w, err := openWorktree(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := newStager(w, &gitIndex{Index: &index.Index{Version: 2}}, time.Now(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.stageAll("sub")
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
	w, err := openWorktree(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := newStager(w, &gitIndex{Index: &index.Index{Version: 2}}, time.Now(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
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
