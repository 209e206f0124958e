package keeper

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// maxExcludesSize bounds the excludes file keeperd reads.
const maxExcludesSize = 4 << 20

// excludesFile finds the file git would read as core.excludesFile for the
// worktree, and parses it. Its patterns rank below .git/info/exclude and
// every .gitignore, as in git.
//
// git takes the last core.excludesFile set in the system config, the
// user's global config (and what they include) and the repository's
// config; unset, it reads $XDG_CONFIG_HOME/git/ignore (or
// ~/.config/git/ignore). keeperd does the same, with one difference: the
// repository's config (which a box given --repo-rw can write) may name
// only a file inside the worktree or the git dir, or the file the user's
// own config names; a repository config naming any other host file is
// refused rather than read, so the box cannot choose which host file
// keeperd parses. Includes in the repository's config are not followed,
// for the same reason.
func excludesFile(getenv func(string) string, w *worktree, branch string) ([]gitignore.Pattern, error) {
	home := getenv("HOME")
	r := &configReader{home: home, gitDirs: []string{w.gitDir}, branch: branch}
	if real, err := filepath.EvalSymlinks(w.gitDir); err == nil && real != w.gitDir {
		r.gitDirs = append(r.gitDirs, real)
	}
	var global *string
	for _, f := range userConfigFiles(getenv) {
		err := r.read(f, 0, func(v, _ string) { global = &v })
		if err != nil {
			return nil, err
		}
	}
	globalPath := "" // "" reads nothing
	if global != nil {
		if p, ok := expandPath(*global, home); ok && p != "" {
			globalPath = p
		}
	} else if x := getenv("XDG_CONFIG_HOME"); x != "" {
		globalPath = filepath.Join(x, "git", "ignore")
	} else if home != "" {
		globalPath = filepath.Join(home, ".config", "git", "ignore")
	}
	repoValue, err := repoExcludesFile(w)
	if err != nil {
		return nil, err
	}
	var b []byte
	if repoValue == nil {
		b, err = w.readExcludes(globalPath)
	} else if *repoValue != "" {
		b, err = w.readRepoExcludes(*repoValue, home, globalPath)
	}
	if err != nil || b == nil {
		return nil, err
	}
	return parseIgnore(string(b), nil), nil
}

// userConfigFiles lists the config files git reads before the
// repository's, in order: the system file ($GIT_CONFIG_SYSTEM, else
// /etc/gitconfig; none with GIT_CONFIG_NOSYSTEM), then $GIT_CONFIG_GLOBAL,
// or else $XDG_CONFIG_HOME/git/config (~/.config/git/config) and
// ~/.gitconfig.
func userConfigFiles(getenv func(string) string) []string {
	var out []string
	if !envTrue(getenv("GIT_CONFIG_NOSYSTEM")) {
		if s := getenv("GIT_CONFIG_SYSTEM"); s != "" {
			out = append(out, s)
		} else {
			out = append(out, "/etc/gitconfig")
		}
	}
	if g := getenv("GIT_CONFIG_GLOBAL"); g != "" {
		return append(out, g)
	}
	home := getenv("HOME")
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		out = append(out, filepath.Join(x, "git", "config"))
	} else if home != "" {
		out = append(out, filepath.Join(home, ".config", "git", "config"))
	}
	if home != "" {
		out = append(out, filepath.Join(home, ".gitconfig"))
	}
	return out
}

func envTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

// repoExcludesFile returns the core.excludesFile the repository's own
// config sets (its config, then config.worktree when
// extensions.worktreeConfig is on), or nil. Includes are not followed.
func repoExcludesFile(w *worktree) (*string, error) {
	var value *string
	worktreeConfig := false
	for i, p := range []string{filepath.Join(w.commonDir, "config"), filepath.Join(w.gitDir, "config.worktree")} {
		if i == 1 && !worktreeConfig {
			break
		}
		b, ok := readGitFile(p)
		if !ok {
			continue
		}
		entries, err := parseConfig(string(b))
		if err != nil {
			return nil, fmt.Errorf("%w: the repository's git config cannot be parsed (%v); fix it on the host", ErrPrecondition, err)
		}
		for _, e := range entries {
			switch {
			case e.section == "core" && e.sub == "" && e.key == "excludesfile" && !e.noValue:
				v := e.value
				value = &v
			case e.section == "include" || e.section == "includeif":
				return nil, errRepoIncludes
			case i == 0 && e.section == "extensions" && e.sub == "" && e.key == "worktreeconfig":
				worktreeConfig = e.noValue || envTrue(e.value)
			}
		}
	}
	return value, nil
}

// errRepoIncludes refuses a repository config with include or includeIf:
// keeperd does not follow them (the file they name is the box's choice
// under --repo-rw), so it cannot know whether one sets core.excludesFile,
// and falling back to the global excludes could commit what git skips.
var errRepoIncludes = fmt.Errorf("%w: the repository's git config uses include or includeIf, which keeperd does not follow, so it cannot tell which excludes git applies: move those settings into your global git config, or commit on the host", ErrPrecondition)

// errRepoExcludesOutside refuses a repository core.excludesFile naming a
// host file outside the repository.
var errRepoExcludesOutside = fmt.Errorf("%w: the repository's git config sets core.excludesFile to a file outside the repository; keeperd reads no host file that repository config names: set it in your global git config (git config --global core.excludesFile …) or move the file into the repository", ErrPrecondition)

// readExcludes reads the excludes file at p, a path the user's own config
// chose (relative: to the worktree root, where git runs). A file inside
// the worktree is read through the worktree's root and one inside the git
// dir through its own, so no symlink the box plants there leads elsewhere.
// A missing file reads as nil, as git skips it.
func (w *worktree) readExcludes(p string) ([]byte, error) {
	if p == "" {
		return nil, nil
	}
	p = w.absPath(p)
	b, done, err := w.readInRepo(p)
	if !done {
		var real string
		real, err = filepath.EvalSymlinks(p)
		if err == nil {
			b, done, err = w.readInRepo(real)
		}
		if err == nil && !done {
			b, err = readHostFile(real, maxExcludesSize)
		}
	}
	return excludesResult(b, err)
}

// readRepoExcludes reads the excludes file the repository's config names
// (value, not empty), which a box given --repo-rw chooses. It may name a
// file inside the worktree or the git dir, or the very file the user's
// own config names (trusted, "" when none); any other host path is refused
// with one error whether or not it exists, and whatever the user's config
// says, so the box can neither read a host file as patterns nor learn
// which host paths (or users) exist.
func (w *worktree) readRepoExcludes(value, home, trusted string) ([]byte, error) {
	p, ok := expandPath(value, home)
	if !ok || p == "" {
		return nil, errRepoExcludesOutside // git dies on a ~user it cannot expand
	}
	p = w.absPath(p)
	if trusted != "" && p == w.absPath(trusted) {
		return w.readExcludes(p)
	}
	b, done, err := w.readInRepo(p)
	if done {
		return excludesResult(b, err)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, errRepoExcludesOutside
	}
	if b, done, err := w.readInRepo(real); done {
		return excludesResult(b, err)
	}
	if trusted == "" || !sameFile(real, w.absPath(trusted)) {
		return nil, errRepoExcludesOutside
	}
	return excludesResult(readHostFile(real, maxExcludesSize))
}

// absPath makes p absolute (relative to the worktree root) and clean.
func (w *worktree) absPath(p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(w.dir, p)
	}
	return filepath.Clean(p)
}

// excludesResult maps a read of an excludes file: missing is nil, as git
// skips it; any other failure refuses without naming the path.
func excludesResult(b []byte, err error) ([]byte, error) {
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, hostFileError("excludes file (core.excludesFile)", err)
	}
	return b, nil
}

// readInRepo reads p through the worktree's root when it lies inside the
// worktree, or through the common git dir's root when inside that; done
// is false when it lies in neither.
func (w *worktree) readInRepo(p string) ([]byte, bool, error) {
	if rel := within(w.dir, p); rel != "" {
		b, err := readInRoot(w.root, rel)
		return b, true, err
	}
	rel := within(w.commonDir, p)
	if rel == "" {
		return nil, false, nil
	}
	root, err := os.OpenRoot(w.commonDir)
	if err != nil {
		return nil, true, err
	}
	defer root.Close()
	b, err := readInRoot(root, rel)
	return b, true, err
}

// within returns p relative to dir when p is strictly inside dir, else "".
func within(dir, p string) string {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return ""
	}
	return filepath.ToSlash(rel)
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// readInRoot reads name inside root (symlinks may not leave it) without
// blocking on a FIFO.
func readInRoot(root *os.Root, name string) ([]byte, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readRegular(f, maxExcludesSize)
}
