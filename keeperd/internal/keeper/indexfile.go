package keeper

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// indexLock holds git's index.lock for the duration of a request, so keeperd
// and a git on the host never write the index at the same time.
type indexLock struct {
	path string
	f    *os.File
}

func lockIndex(gitDir string) (*indexLock, error) {
	p := filepath.Join(gitDir, "index")
	f, err := os.OpenFile(p+".lock", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: the index is locked (index.lock exists: is a git command running on the host?)", ErrPrecondition)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: lock index: %w", ErrInternal, err)
	}
	return &indexLock{path: p, f: f}, nil
}

// read decodes the current index; a missing index is empty.
func (l *indexLock) read() (*gitIndex, time.Time, error) {
	// Never block on a FIFO or follow a symlink planted where the index is
	// (a box with --repo-rw can write .git).
	f, err := os.OpenFile(l.path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return &gitIndex{Index: &index.Index{Version: 2}}, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: open index: %w", ErrInternal, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: stat index: %w", ErrInternal, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("%w: the index is not a regular file", ErrPrecondition)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: read index: %w", ErrInternal, err)
	}
	idx, err := decodeIndex(b)
	if err != nil {
		if errors.Is(err, ErrPrecondition) {
			return nil, time.Time{}, err
		}
		return nil, time.Time{}, fmt.Errorf("%w: decode index: %w", ErrInternal, err)
	}
	return idx, fi.ModTime(), nil
}

// commit writes idx to the lock file and renames it over the index.
// Extensions (cache tree, untracked cache) are dropped: git rebuilds them.
// The entries must be sorted by name; those in idx.valid keep their
// assume-unchanged bit, and skip-worktree is kept on every entry that has it.
func (l *indexLock) commit(idx *gitIndex) (err error) {
	defer func() {
		if err != nil {
			l.release()
			os.Remove(l.path + ".lock")
		}
	}()
	if err := encodeIndex(l.f, idx.Entries, idx.valid); err != nil {
		return fmt.Errorf("%w: write index: %w", ErrInternal, err)
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("%w: write index: %w", ErrInternal, err)
	}
	l.f = nil
	if err := os.Rename(l.path+".lock", l.path); err != nil {
		return fmt.Errorf("%w: replace index: %w", ErrInternal, err)
	}
	return nil
}

// release drops the lock without writing (a no-op after commit).
func (l *indexLock) release() {
	if l.f == nil {
		return
	}
	l.f.Close()
	l.f = nil
	os.Remove(l.path + ".lock")
}
