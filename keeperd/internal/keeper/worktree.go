package keeper

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"
)

// worktree is one bound repository opened for a single request. Every read
// of worktree content goes through root, which cannot be escaped by a
// symlink; .git is read through go-git, which runs no hooks, filters or
// fsmonitor and never reads the repository's remote configuration for us.
type worktree struct {
	dir    string // host path of the worktree
	gitDir string // the worktree's own git dir (HEAD, index)
	// commonDir is the repository's git dir (config, refs, objects): gitDir,
	// or for a linked worktree the main one's.
	commonDir string
	repo      *git.Repository
	root      *os.Root
}

func openWorktree(dir string) (*worktree, error) {
	gitDir, commonDir, err := gitDirs(dir)
	if err != nil {
		return nil, err
	}
	// The storage is built from the checked directories, never from what
	// .git or commondir say at read time. billy's chroot resolves symlinks
	// inside its directory itself, so none leads out (a symlinked ref, an
	// objects directory or an alternates entry pointing elsewhere).
	gitFS := osfs.New(gitDir)
	repoFS := gitFS
	if commonDir != gitDir {
		repoFS = dotgit.NewRepositoryFilesystem(gitFS, osfs.New(commonDir))
	}
	sto := filesystem.NewStorage(repoFS, cache.NewObjectLRUDefault())
	repo, err := git.Open(sto, osfs.New(dir))
	if err != nil {
		return nil, fmt.Errorf("%w: open repository: %w", ErrInternal, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: open worktree: %w", ErrInternal, err)
	}
	return &worktree{dir: dir, gitDir: gitDir, commonDir: commonDir, repo: repo, root: root}, nil
}

func (w *worktree) Close() error { return w.root.Close() }

// CheckWorktree checks, at mint time, that dir's git dir is its own as
// git lays it out (see gitDirs); every request checks again.
func CheckWorktree(dir string) error {
	_, _, err := gitDirs(dir)
	return err
}

// gitDirs finds the git dir of the worktree at dir and its common dir
// (refs and objects), symlinks resolved, and checks that they are the
// worktree's own as git lays them out, so that a box able to write .git
// (--repo-rw) cannot point keeperd at another repository on the host:
//   - dir/.git a directory: it is both, and it has no commondir file (git
//     writes one only for linked worktrees);
//   - dir/.git a file "gitdir: PATH": PATH is COMMON/worktrees/ID, its
//     commondir names COMMON, and its gitdir file links back to dir/.git.
func gitDirs(dir string) (gitDir, commonDir string, err error) {
	dotGit := filepath.Join(dir, ".git")
	fi, err := os.Lstat(dotGit)
	if err != nil {
		return "", "", fmt.Errorf("%w: the bound repository is no longer a git worktree (its .git is gone)", ErrPrecondition)
	}
	refused := func(why string) error {
		return fmt.Errorf("%w: the bound repository's .git %s; keeperd works only on the repository the door was bound to", ErrPrecondition, why)
	}
	if fi.IsDir() {
		if _, err := os.Lstat(filepath.Join(dotGit, "commondir")); err == nil {
			return "", "", refused("has a commondir file, which points elsewhere")
		}
		return dotGit, dotGit, nil
	}
	if !fi.Mode().IsRegular() {
		return "", "", refused("is neither a directory nor a gitdir file")
	}
	g, err := readLine(dotGit, "gitdir: ")
	if err != nil {
		return "", "", refused("is neither a directory nor a gitdir file")
	}
	if !filepath.IsAbs(g) {
		g = filepath.Join(dir, g)
	}
	if gitDir, err = filepath.EvalSymlinks(g); err != nil {
		return "", "", refused("names a git dir that does not exist")
	}
	if filepath.Base(filepath.Dir(gitDir)) != "worktrees" {
		return "", "", refused("names a git dir that is not a linked worktree's")
	}
	c, err := readLine(filepath.Join(gitDir, "commondir"), "")
	if err != nil {
		return "", "", refused("names a git dir without a commondir")
	}
	if !filepath.IsAbs(c) {
		c = filepath.Join(gitDir, c)
	}
	commonDir, err = filepath.EvalSymlinks(c)
	if err != nil || commonDir != filepath.Dir(filepath.Dir(gitDir)) {
		return "", "", refused("names a git dir whose commondir is not the repository it lives in")
	}
	back, err := readLine(filepath.Join(gitDir, "gitdir"), "")
	if err == nil {
		if !filepath.IsAbs(back) {
			back = filepath.Join(gitDir, back)
		}
		want, err1 := filepath.EvalSymlinks(dotGit)
		got, err2 := filepath.EvalSymlinks(back)
		if err1 == nil && err2 == nil && got == want {
			return gitDir, commonDir, nil
		}
	}
	return "", "", refused("names a linked worktree's git dir that does not link back to this worktree")
}

// readLine reads a small file holding one line that starts with prefix and
// returns the rest of the line.
func readLine(path, prefix string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(b))
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok || rest == "" || strings.ContainsAny(rest, "\n\x00") {
		return "", errors.New("malformed")
	}
	return rest, nil
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
// the worktree. Cleaning the target as text is right only for the ".."
// that lead it: a ".." after a name climbs out of what that name resolves
// to, which is somewhere else when the name is itself a symlink ("s/.." is
// the worktree's parent when s -> .), so such a target is refused outright.
// A backslash counts as a separator and a drive letter as absolute, as
// they do where the tree may be checked out on Windows.
func symlinkEscapes(rel, target string) bool {
	target = strings.ReplaceAll(target, "\\", "/")
	if target == "" || strings.HasPrefix(target, "/") || len(target) >= 2 && target[1] == ':' && isAlpha(target[0]) {
		return true
	}
	named := false
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if named {
				return true
			}
		default:
			named = true
		}
	}
	j := path.Join(path.Dir(rel), target)
	return j == ".." || strings.HasPrefix(j, "../")
}

// isDotGit reports whether git would treat a path component as ".git" on
// some filesystem (git refuses such names in trees on every platform, and
// git fsck calls them errors): case-insensitively, ignoring the code points
// HFS+ ignores, and with NTFS's trailing dots and spaces, alternate data
// streams and its short name GIT~1.
// Every part of the name between backslashes counts too: NTFS separates
// directories with them, and git fsck checks each part.
func isDotGit(name string) bool {
	for _, part := range strings.Split(name, "\\") {
		if n := ntfsHFSFold(part); n == ".git" || n == "git~1" {
			return true
		}
	}
	return false
}

// isDotGitmodules is isDotGit for ".gitmodules" (NTFS short names
// GITMOD~N, or GI7EBA~N when those are taken).
func isDotGitmodules(name string) bool {
	for _, part := range strings.Split(name, "\\") {
		n := ntfsHFSFold(part)
		if n == ".gitmodules" {
			return true
		}
		for _, short := range []string{"gitmod~", "gi7eba~"} {
			if rest, ok := strings.CutPrefix(n, short); ok && len(rest) == 1 && rest[0] >= '1' && rest[0] <= '9' {
				return true
			}
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
