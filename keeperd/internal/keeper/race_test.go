package keeper

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	s, err := newStager(w, &index.Index{Version: 2}, time.Now(), true)
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
