package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Workdir is where the repo's worktree is mounted in the box.
const Workdir = "/work"

// Mount is one bind mount, host Source at box Dest.
type Mount struct {
	Source   string `json:"source"`
	Dest     string `json:"dest"`
	ReadOnly bool   `json:"readonly"`
}

// RepoRequest is what the user asked for with --repo, --writable, --repo-rw.
type RepoRequest struct {
	// Path is the worktree's host path, as given.
	Path string
	// Writable subtrees (relative to the worktree, or absolute inside it);
	// when any is named, the rest of /work is read-only.
	Writable []string
	// RW also makes .git writable: the loud, unsafe escape.
	RW bool
}

// RepoPlan is the planned repo: its resolved host path and its mounts, in
// mount order (/work, writable subtrees, .git read-only).
type RepoPlan struct {
	// Root is the worktree's resolved absolute host path.
	Root string
	// GitCommon is the repository's common .git directory on the host.
	GitCommon string
	// Mounts in the order they must be mounted.
	Mounts []Mount
	// Warning is printed loudly when RW is set.
	Warning string
}

// ErrBadRepo reports a --repo, --writable or --repo-rw that is refused.
var ErrBadRepo = errors.New("bad repo")

// RepoRWWarning is what --repo-rw prints.
const RepoRWWarning = "WARNING: --repo-rw mounts .git read-write: the box can rewrite hooks, config and history " +
	"that run on this host. Use --keeper to commit instead."

// PlanRepo resolves a repo request against the host filesystem.
func PlanRepo(req RepoRequest) (RepoPlan, error) {
	if req.Path == "" {
		return RepoPlan{}, fmt.Errorf("%w: empty --repo path", ErrBadRepo)
	}
	if req.RW && len(req.Writable) > 0 {
		return RepoPlan{}, fmt.Errorf("%w: --repo-rw and --writable contradict each other", ErrBadRepo)
	}
	abs, err := filepath.Abs(req.Path)
	if err != nil {
		return RepoPlan{}, fmt.Errorf("%w %s: %w", ErrBadRepo, req.Path, err)
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return RepoPlan{}, fmt.Errorf("%w %s: %w", ErrBadRepo, req.Path, err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return RepoPlan{}, fmt.Errorf("%w %s: not a directory", ErrBadRepo, req.Path)
	}
	gitPath := filepath.Join(root, ".git")
	gfi, err := os.Lstat(gitPath)
	if err != nil {
		return RepoPlan{}, fmt.Errorf("%w %s: not the top of a git worktree (no .git)", ErrBadRepo, req.Path)
	}
	p := RepoPlan{Root: root}
	var gitMounts []Mount
	switch {
	case gfi.IsDir():
		p.GitCommon = gitPath
		gitMounts = []Mount{{Source: gitPath, Dest: Workdir + "/.git", ReadOnly: !req.RW}}
	case gfi.Mode().IsRegular():
		gitdir, common, err := linkedGitDirs(root, gitPath)
		if err != nil {
			return RepoPlan{}, fmt.Errorf("%w %s: %w", ErrBadRepo, req.Path, err)
		}
		p.GitCommon = common
		gitMounts = []Mount{
			{Source: gitPath, Dest: Workdir + "/.git", ReadOnly: !req.RW},
			{Source: common, Dest: common, ReadOnly: !req.RW},
		}
		if !within(common, gitdir) {
			gitMounts = append(gitMounts, Mount{Source: gitdir, Dest: gitdir, ReadOnly: !req.RW})
		}
	default:
		return RepoPlan{}, fmt.Errorf("%w %s: .git is neither a directory nor a gitdir file", ErrBadRepo, req.Path)
	}
	p.Mounts = append(p.Mounts, Mount{Source: root, Dest: Workdir, ReadOnly: len(req.Writable) > 0})
	seen := map[string]bool{}
	for _, w := range req.Writable {
		rel, err := writableSubtree(root, w)
		if err != nil {
			return RepoPlan{}, err
		}
		if seen[rel] {
			continue
		}
		seen[rel] = true
		p.Mounts = append(p.Mounts, Mount{Source: filepath.Join(root, rel), Dest: Workdir + "/" + filepath.ToSlash(rel)})
	}
	p.Mounts = append(p.Mounts, gitMounts...)
	if req.RW {
		p.Warning = RepoRWWarning
	}
	return p, nil
}

// linkedGitDirs reads a linked worktree's .git file: the worktree's own
// gitdir and the repository's common dir.
func linkedGitDirs(root, gitFile string) (gitdir, common string, err error) {
	b, err := os.ReadFile(gitFile)
	if err != nil {
		return "", "", fmt.Errorf("read .git file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "gitdir:")
	if !ok {
		return "", "", errors.New(`.git file does not start with "gitdir:"`)
	}
	gitdir = strings.TrimSpace(v)
	if !filepath.IsAbs(gitdir) {
		gitdir = filepath.Join(root, gitdir)
	}
	if gitdir, err = filepath.EvalSymlinks(gitdir); err != nil {
		return "", "", fmt.Errorf("gitdir: %w", err)
	}
	common = gitdir
	if c, err := os.ReadFile(filepath.Join(gitdir, "commondir")); err == nil {
		common = strings.TrimSpace(string(c))
		if !filepath.IsAbs(common) {
			common = filepath.Join(gitdir, common)
		}
		if common, err = filepath.EvalSymlinks(common); err != nil {
			return "", "", fmt.Errorf("commondir: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("read commondir: %w", err)
	}
	if within(root, common) || within(common, root) {
		return "", "", fmt.Errorf("git common dir %s overlaps the worktree", common)
	}
	return gitdir, common, nil
}

// writableSubtree validates one --writable and returns it relative to root.
func writableSubtree(root, w string) (string, error) {
	bad := func(why string) error { return fmt.Errorf("%w: --writable %s: %s", ErrBadRepo, w, why) }
	if w == "" {
		return "", bad("empty")
	}
	p := w
	if !filepath.IsAbs(p) {
		p = filepath.Join(root, p)
	}
	p = filepath.Clean(p)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", bad("does not exist")
		}
		return "", bad(err.Error())
	}
	if !within(root, real) {
		return "", bad("is outside the repo")
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || rel == "." {
		return "", bad("is the repo root; drop --writable to make the whole worktree writable")
	}
	if first, _, _ := strings.Cut(filepath.ToSlash(rel), "/"); first == ".git" {
		return "", bad("is inside .git; commit through --keeper")
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.IsDir() {
		return "", bad("is not a directory")
	}
	return rel, nil
}

// within reports whether p is base or below it.
func within(base, p string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
