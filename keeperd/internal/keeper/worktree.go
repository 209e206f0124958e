package keeper

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// worktree is one bound repository opened for a single request. Every read
// of worktree content goes through root, which cannot be escaped by a
// symlink; .git is read through go-git, which runs no hooks, filters or
// fsmonitor and never reads the repository's remote configuration for us.
type worktree struct {
	dir    string // host path of the worktree
	gitDir string // the worktree's own git dir (HEAD, index)
	repo   *git.Repository
	root   *os.Root
}

func openWorktree(dir string) (*worktree, error) {
	gitDir, err := findGitDir(dir)
	if err != nil {
		return nil, err
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("%w: open repository: %w", ErrInternal, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: open worktree: %w", ErrInternal, err)
	}
	return &worktree{dir: dir, gitDir: gitDir, repo: repo, root: root}, nil
}

func (w *worktree) Close() error { return w.root.Close() }

// findGitDir resolves dir/.git: a directory, or a file "gitdir: PATH" as
// written for linked worktrees.
func findGitDir(dir string) (string, error) {
	p := filepath.Join(dir, ".git")
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%w: the bound repository is no longer a git worktree (its .git is gone)", ErrPrecondition)
	}
	if fi.IsDir() {
		return p, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("%w: read %s: %w", ErrInternal, p, err)
	}
	line := strings.TrimSpace(string(b))
	if !strings.HasPrefix(line, "gitdir: ") {
		return "", fmt.Errorf("%w: the bound repository's .git is neither a directory nor a gitdir file", ErrPrecondition)
	}
	g := strings.TrimPrefix(line, "gitdir: ")
	if !filepath.IsAbs(g) {
		g = filepath.Join(dir, g)
	}
	return filepath.Clean(g), nil
}

// branch returns the current branch, refusing a detached HEAD.
func (w *worktree) branch() (plumbing.ReferenceName, error) {
	head, err := w.repo.Storer.Reference(plumbing.HEAD)
	if err != nil {
		return "", fmt.Errorf("%w: read HEAD: %w", ErrInternal, err)
	}
	if head.Type() != plumbing.SymbolicReference || !head.Target().IsBranch() {
		return "", fmt.Errorf("%w: HEAD is detached; check out a branch on the host first", ErrPrecondition)
	}
	return head.Target(), nil
}

// tip returns the commit a branch points at, or the zero hash for an unborn branch.
func (w *worktree) tip(ref plumbing.ReferenceName) (plumbing.Hash, error) {
	r, err := w.repo.Storer.Reference(ref)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: read %s: %w", ErrInternal, ref, err)
	}
	return r.Hash(), nil
}

// ErrPath reports a path outside what a request may touch.
var ErrPath = errors.New("path refused")

// cleanPath checks one requested path: relative to the worktree root, with
// no "..", no ".git" component, no NUL. "" and "." mean the whole worktree.
func cleanPath(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: %q contains NUL", ErrPath, p)
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return "", fmt.Errorf("%w: %q is absolute (paths are relative to the worktree root)", ErrPath, p)
	}
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == ".":
			continue
		case c == "..":
			return "", fmt.Errorf("%w: %q contains \"..\"", ErrPath, p)
		case strings.EqualFold(c, ".git"):
			return "", fmt.Errorf("%w: %q is inside .git", ErrPath, p)
		case isDotGit(c):
			return "", fmt.Errorf("%w: %q: %q is a name git treats as .git", ErrPath, p, c)
		}
		parts = append(parts, c)
	}
	return path.Join(parts...), nil
}

// checkNoSymlinkParents refuses a path one of whose parent directories is a
// symlink: following it could leave the worktree.
func (w *worktree) checkNoSymlinkParents(p string) error {
	parts := strings.Split(p, "/")
	for i := 1; i < len(parts); i++ {
		prefix := path.Join(parts[:i]...)
		fi, err := w.root.Lstat(prefix)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %q: %w", ErrPath, p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %q: %q is a symlink", ErrPath, p, prefix)
		}
	}
	return nil
}

// symlinkEscapes reports whether a symlink at rel with target leads outside
// the worktree.
func symlinkEscapes(rel, target string) bool {
	if target == "" || strings.HasPrefix(target, "/") {
		return true
	}
	j := path.Join(path.Dir(rel), target)
	return j == ".." || strings.HasPrefix(j, "../")
}

// isDotGit reports whether git would treat a path component as ".git" on
// some filesystem (git refuses such names in trees on every platform, and
// git fsck calls them errors): case-insensitively, ignoring the code points
// HFS+ ignores, and with NTFS's trailing dots and spaces, alternate data
// streams and its short name GIT~1.
func isDotGit(name string) bool {
	n := ntfsHFSFold(name)
	return n == ".git" || n == "git~1"
}

// isDotGitmodules is isDotGit for ".gitmodules" (NTFS short names
// GITMOD~N, or GI7EBA~N when those are taken).
func isDotGitmodules(name string) bool {
	n := ntfsHFSFold(name)
	if n == ".gitmodules" {
		return true
	}
	for _, short := range []string{"gitmod~", "gi7eba~"} {
		if rest, ok := strings.CutPrefix(n, short); ok && len(rest) == 1 && rest[0] >= '1' && rest[0] <= '9' {
			return true
		}
	}
	return false
}

// ntfsHFSFold lower-cases name, drops the code points HFS+ ignores, and
// cuts what NTFS ignores: an alternate data stream and trailing dots and
// spaces.
func ntfsHFSFold(name string) string {
	n := strings.ToLower(strings.Map(func(r rune) rune {
		switch {
		case r >= 0x200c && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x206a && r <= 0x206f, r == 0xfeff:
			return -1
		}
		return r
	}, name))
	if i := strings.IndexByte(n, ':'); i >= 0 {
		n = n[:i]
	}
	return strings.TrimRight(n, ". ")
}
