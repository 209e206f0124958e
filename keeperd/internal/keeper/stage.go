package keeper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitattributes"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// MaxFileSize is the largest file keeperd stages.
const MaxFileSize = 256 << 20

// stager updates an in-memory index from the worktree the way `git add`
// does, but cheaply: a file whose stat data matches its index entry (and is
// older than the index, git's racy-git rule) is not read. Only changed files
// are hashed. go-git's Worktree.Status hashes far more on big trees.
type stager struct {
	w          *worktree
	idx        *index.Index
	valid      map[*index.Entry]bool // assume-unchanged entries: never looked at, as in git
	byName     map[string]*index.Entry
	trackedDir map[string]bool
	indexMtime time.Time
	ignore     []gitignore.Pattern
	loaded     map[string]bool
	attrs      []gitattributes.MatchAttribute // .gitattributes, root first
	infoAttrs  []gitattributes.MatchAttribute // .git/info/attributes (highest priority)
	attrLoaded map[string]bool
	seen       map[string]bool
	// ctx, when set, ends a walk whose request has ended.
	ctx context.Context
	// afterCollect, when set (tests), runs between listing the worktree
	// and lstat'ing what was listed: where a box's swap lands.
	afterCollect func()
	store        bool // write blobs to the object store (false: status only)
	changed      int
	// limits are the ceilings of this request's walk; listed and read
	// count against them, across every directory the request walks.
	limits Limits
	listed int   // worktree entries listed (.git entries aside)
	read   int64 // bytes of file content read
}

// newStager stages against idx. excludes are the patterns of the host's
// core.excludesFile (see excludesFile): they rank below .git/info/exclude,
// which ranks below every .gitignore, as in git.
func newStager(w *worktree, idx *gitIndex, indexMtime time.Time, store bool, excludes []gitignore.Pattern) (*stager, error) {
	s := &stager{
		w: w, idx: idx.Index, valid: idx.valid, indexMtime: indexMtime, store: store,
		byName:     make(map[string]*index.Entry, len(idx.Entries)),
		trackedDir: map[string]bool{},
		loaded:     map[string]bool{},
		attrLoaded: map[string]bool{},
		seen:       map[string]bool{},
		limits:     Limits{}.withDefaults(),
	}
	for _, e := range idx.Entries {
		if e.Stage != 0 {
			return nil, fmt.Errorf("%w: %q is unmerged; resolve the conflict on the host", ErrPrecondition, e.Name)
		}
		s.byName[e.Name] = e
		for d := path.Dir(e.Name); d != "."; d = path.Dir(d) {
			if s.trackedDir[d] {
				break
			}
			s.trackedDir[d] = true
		}
	}
	// The matcher tries the last pattern first: the global excludes go
	// first, then info/exclude; both apply to the whole worktree. info/ is
	// the common git dir's, shared by linked worktrees, as git reads it.
	s.ignore = append(s.ignore, excludes...)
	// Read beneath the git dir: an info directory swapped for a symlink (a
	// writable .git) does not lead to a host file.
	if root, err := os.OpenRoot(w.commonDir); err == nil {
		if b, ok := readRootFile(root, "info/exclude"); ok {
			s.ignore = append(s.ignore, parseIgnore(string(b), nil)...)
		}
		if b, ok := readRootFile(root, "info/attributes"); ok {
			s.infoAttrs = parseAttrs(string(b), nil)
		}
		root.Close()
	}
	return s, nil
}

func parseAttrs(text string, domain []string) []gitattributes.MatchAttribute {
	var out []gitattributes.MatchAttribute
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[attr]") {
			continue
		}
		if m, err := gitattributes.ParseAttributesLine(line, domain, false); err == nil && m.Pattern != nil {
			out = append(out, m)
		}
	}
	return out
}

// loadAttrs reads dir/.gitattributes once.
func (s *stager) loadAttrs(dir string) {
	if s.attrLoaded[dir] {
		return
	}
	s.attrLoaded[dir] = true
	name := ".gitattributes"
	if dir != "" {
		name = dir + "/.gitattributes"
	}
	b, ok := s.readSmall(name)
	if !ok {
		return
	}
	s.attrs = append(s.attrs, parseAttrs(string(b), splitPath(dir))...)
}

// readGitFile reads a small regular file of the git dir, never blocking on
// a FIFO or following a symlink.
func readGitFile(p string) ([]byte, bool) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	return b, err == nil
}

// readSmall reads a worktree file of at most 1 MiB (.gitignore,
// .gitattributes) that is a regular file when opened: never blocking on a
// FIFO, never following a symlink.
func (s *stager) readSmall(name string) ([]byte, bool) {
	return readRootFile(s.w.root, name)
}

// readRootFile reads a file of at most 1 MiB beneath root that is a
// regular file when opened: never blocking on a FIFO, never following a
// symlink in its place, and no symlinked parent leading out of root.
func readRootFile(root *os.Root, name string) ([]byte, bool) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	return b, err == nil
}

// loadAncestors loads the ignore and attribute files of dir and its parents.
func (s *stager) loadAncestors(dir string) {
	parts := splitPath(dir)
	for i := 0; i <= len(parts); i++ {
		s.loadIgnore(path.Join(parts[:i]...))
		s.loadAttrs(path.Join(parts[:i]...))
	}
}

// filterOf returns the filter driver .gitattributes assigns to rel, or "".
// The most specific file wins, and .git/info/attributes over all of them.
func (s *stager) filterOf(rel string) string {
	p := splitPath(rel)
	for _, stack := range [][]gitattributes.MatchAttribute{s.infoAttrs, s.attrs} {
		for i := len(stack) - 1; i >= 0; i-- {
			if !stack[i].Pattern.Match(p) {
				continue
			}
			for _, a := range stack[i].Attributes {
				if a.Name() != "filter" {
					continue
				}
				if a.IsValueSet() {
					return a.Value()
				}
				return ""
			}
		}
	}
	return ""
}

func parseIgnore(text string, domain []string) []gitignore.Pattern {
	var ps []gitignore.Pattern
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.HasSuffix(line, "\\ ") {
			line = strings.TrimRight(line, " ")
		}
		ps = append(ps, gitignore.ParsePattern(line, domain))
	}
	return ps
}

func splitPath(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// loadIgnore reads dir/.gitignore once.
func (s *stager) loadIgnore(dir string) {
	if s.loaded[dir] {
		return
	}
	s.loaded[dir] = true
	name := ".gitignore"
	if dir != "" {
		name = dir + "/.gitignore"
	}
	b, ok := s.readSmall(name)
	if !ok {
		return
	}
	s.ignore = append(s.ignore, parseIgnore(string(b), splitPath(dir))...)
}

func (s *stager) ignored(rel string, isDir bool) bool {
	if len(s.ignore) == 0 {
		return false
	}
	return gitignore.NewMatcher(s.ignore).Match(splitPath(rel), isDir)
}

// stageAll stages every change under dir ("" is the whole worktree).
func (s *stager) stageAll(dir string) error {
	if err := s.checkDepth(dir); err != nil {
		return err
	}
	s.loadAncestors(dir)
	var dirs []*dirBatch
	if err := s.collect(dir, true, &dirs); err != nil {
		return err
	}
	if s.afterCollect != nil {
		s.afterCollect()
	}
	// lstat is most of the cost on a big tree: spread it over a few threads,
	// as git's preload-index does. Each directory is opened once beneath
	// the worktree's root and its names are lstat'ed relative to it, so a
	// directory the box swaps for a symlink after it was listed never
	// leads a stat out of the worktree.
	const workers = 4
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(dirs) {
					return
				}
				s.lstatDir(dirs[i])
			}
		}()
	}
	wg.Wait()
	for _, d := range dirs {
		if d.err != nil {
			if errors.Is(d.err, fs.ErrNotExist) {
				continue // gone since it was listed: its files are deleted
			}
			return fmt.Errorf("%w: read directory %q: %w", ErrPath, d.rel, d.err)
		}
		for _, c := range d.cands {
			if c.err != nil {
				if errors.Is(c.err, fs.ErrNotExist) {
					continue
				}
				return fmt.Errorf("%w: stat %s: %w", ErrInternal, c.rel, c.err)
			}
			if err := s.consider(c.rel, c.fi, false); err != nil {
				return err
			}
		}
	}
	for _, e := range s.idx.Entries { // what was tracked before this request
		name := e.Name
		if s.seen[name] || e.SkipWorktree || s.valid[e] {
			continue
		}
		if dir == "" || name == dir || strings.HasPrefix(name, dir+"/") {
			if _, ok := s.byName[name]; ok {
				delete(s.byName, name)
				s.changed++
			}
		}
	}
	return nil
}

// dirBatch is the files and symlinks collect found in one directory.
type dirBatch struct {
	rel   string // the directory, relative to the worktree root ("" is the root)
	cands []candidate
	err   error // opening the directory to lstat its names
}

// candidate is a file or symlink found by collect.
type candidate struct {
	rel  string
	name string // the last element of rel
	fi   fs.FileInfo
	err  error
}

// lstatDir lstats d's names relative to d, opened beneath the worktree's
// root: a symlink in d's place may not lead out of the worktree.
func (s *stager) lstatDir(d *dirBatch) {
	root := s.w.root
	if d.rel != "" {
		r, err := s.w.root.OpenRoot(d.rel)
		if err != nil {
			d.err = err
			return
		}
		defer r.Close()
		root = r
	}
	for i := range d.cands {
		d.cands[i].fi, d.cands[i].err = root.Lstat(d.cands[i].name)
	}
}

// readDirBatch is how many names readDir lists at a time.
const readDirBatch = 1024

// checkDepth refuses a worktree directory (rel, "" is the root) nested
// deeper than the walk's ceiling.
func (s *stager) checkDepth(rel string) error {
	if rel == "" {
		return nil
	}
	if d := strings.Count(rel, "/") + 1; d > s.limits.MaxDepth {
		return fmt.Errorf("%w: directory %q is nested %d deep, over keeperd's ceiling of %d (policy limits.max_depth): flatten it, or commit it on the host", ErrTooLarge, rel, d, s.limits.MaxDepth)
	}
	return nil
}

// readDir lists the worktree directory rel through the root, refusing a
// symlink in its place: a directory the box swapped for a symlink after it
// was checked is never listed, so no name from outside the worktree is
// ever staged or quoted in an error. It lists a batch at a time and stops
// (ErrTooLarge) once the request has listed more entries than its
// ceiling, so a directory of millions of names is never held in memory.
func (s *stager) readDir(rel string) ([]fs.DirEntry, error) {
	name := rel
	if name == "" {
		name = "."
	}
	f, err := s.w.root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ents []fs.DirEntry
	for {
		batch, err := f.ReadDir(readDirBatch)
		for _, e := range batch {
			if !strings.EqualFold(e.Name(), ".git") {
				s.listed++
			}
		}
		if s.listed > s.limits.MaxEntries {
			return nil, fmt.Errorf("%w: more than %d files, directories and symlinks to walk, over keeperd's ceiling (policy limits.max_entries): ignore generated trees in .gitignore, name fewer paths, or commit on the host", ErrTooLarge, s.limits.MaxEntries)
		}
		ents = append(ents, batch...)
		if errors.Is(err, io.EOF) {
			return ents, nil
		}
		if err != nil {
			return nil, err
		}
		if err := s.checkCtx(); err != nil {
			return nil, err
		}
	}
}

// collect walks the worktree directory rel without following symlinks,
// loading .gitignore files, skipping .git, nested repositories, submodules
// and ignored untracked directories, and appends, directory by directory,
// every other non-directory entry to out.
func (s *stager) collect(rel string, top bool, out *[]*dirBatch) error {
	if err := s.checkCtx(); err != nil {
		return err
	}
	ents, err := s.readDir(rel)
	if err != nil {
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnavailable) {
			return err
		}
		if !top && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		// A symlink or file in its place (a swap after the check), a link
		// out of the worktree, or a directory the box made unreadable.
		return fmt.Errorf("%w: read directory %q: %w", ErrPath, rel, err)
	}
	for _, e := range ents {
		switch {
		case e.Name() == ".git" && rel != "":
			return nil // a nested repository is not ours to add
		case e.Name() == ".gitignore" && e.Type().IsRegular():
			s.loadIgnore(rel)
		case e.Name() == ".gitattributes" && e.Type().IsRegular():
			s.loadAttrs(rel)
		}
	}
	batch := &dirBatch{rel: rel}
	*out = append(*out, batch)
	var subdirs []string
	for _, e := range ents {
		name := e.Name()
		if strings.EqualFold(name, ".git") {
			continue
		}
		crel := name
		if rel != "" {
			crel = rel + "/" + name
		}
		if isDotGit(name) {
			return fmt.Errorf("%w: %q is a name git treats as .git", ErrPath, crel)
		}
		if e.IsDir() {
			if se, ok := s.byName[crel]; ok && se.Mode == filemode.Submodule {
				s.seen[crel] = true
				continue
			}
			if !s.trackedDir[crel] && s.ignored(crel, true) {
				continue
			}
			if err := s.checkDepth(crel); err != nil {
				return err
			}
			subdirs = append(subdirs, crel)
			continue
		}
		batch.cands = append(batch.cands, candidate{rel: crel, name: name})
	}
	for _, d := range subdirs {
		if err := s.collect(d, false, out); err != nil {
			return err
		}
	}
	return nil
}

// stagePaths stages exactly the listed paths (files, directories or
// deleted files), each confined to the worktree.
// A path named twice is staged once, and a directory inside one already
// walked is not walked again, so one request cannot repeat a walk per copy.
func (s *stager) stagePaths(paths []string) error {
	done := map[string]bool{}
	walked := map[string]bool{}
	for _, raw := range paths {
		p, err := cleanPath(raw)
		if err != nil {
			return err
		}
		if done[p] {
			continue
		}
		done[p] = true
		if err := s.checkCtx(); err != nil {
			return err
		}
		if err := s.w.checkNoSymlinkParents(p); err != nil {
			return err
		}
		if p == "" {
			if err := s.stageAll(""); err != nil {
				return err
			}
			walked[""] = true
			continue
		}
		fi, err := s.w.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			n, matched := 0, 0
			for name, e := range s.byName {
				if name == p || strings.HasPrefix(name, p+"/") {
					matched++
					if s.valid[e] || e.SkipWorktree { // git add leaves these too
						continue
					}
					delete(s.byName, name)
					n++
				}
			}
			if matched == 0 {
				return fmt.Errorf("%w: %q matches no file", ErrInvalid, raw)
			}
			s.changed += n
		case err != nil:
			return fmt.Errorf("%w: %q: %w", ErrPath, raw, err)
		case fi.IsDir():
			if insideWalked(walked, p) {
				continue
			}
			if err := s.stageAll(p); err != nil {
				return err
			}
			walked[p] = true
		default:
			if d := path.Dir(p); d != "." {
				if err := s.checkDepth(d); err != nil {
					return err
				}
				s.loadAncestors(d)
			} else {
				s.loadAncestors("")
			}
			if err := s.consider(p, fi, true); err != nil {
				return err
			}
			s.seen[p] = true
		}
	}
	return nil
}

// insideWalked reports whether dir or one of its parents (or the whole
// worktree, "") is in walked.
func insideWalked(walked map[string]bool, dir string) bool {
	for d := dir; ; d = path.Dir(d) {
		if walked[d] || walked[""] {
			return true
		}
		if d == "." || !strings.Contains(d, "/") {
			return false
		}
	}
}

// checkCtx ends the staging of a request that was cancelled or ran out of
// time, so it gives back the repository and index locks.
func (s *stager) checkCtx() error {
	if s.ctx == nil {
		return nil
	}
	return checkCtx(s.ctx)
}

func fileMode(fi fs.FileInfo) (filemode.FileMode, bool) {
	m := fi.Mode()
	switch {
	case m&fs.ModeSymlink != 0:
		return filemode.Symlink, true
	case m.IsRegular() && m.Perm()&0o111 != 0:
		return filemode.Executable, true
	case m.IsRegular():
		return filemode.Regular, true
	}
	return 0, false
}

// consider stages one file or symlink if it changed.
func (s *stager) consider(rel string, fi fs.FileInfo, explicit bool) error {
	mode, ok := fileMode(fi)
	if !ok {
		if explicit {
			return fmt.Errorf("%w: %q is not a regular file or symlink", ErrInvalid, rel)
		}
		return nil
	}
	if mode == filemode.Symlink && isDotGitmodules(path.Base(rel)) {
		return fmt.Errorf("%w: %q is a symlink, and git refuses a symlinked .gitmodules", ErrPath, rel)
	}
	st := sysStat(fi)
	e := s.byName[rel]
	if e != nil {
		s.seen[rel] = true
		if e.SkipWorktree || e.Mode == filemode.Submodule || s.valid[e] {
			return nil
		}
		if e.Mode == mode && e.Size == uint32(fi.Size()) && e.ModifiedAt.Equal(fi.ModTime()) &&
			(e.Inode == 0 || e.Inode == st.inode) && fi.ModTime().Before(s.indexMtime) {
			return nil
		}
	} else if !explicit && s.ignored(rel, false) {
		return nil
	}
	if s.store && mode != filemode.Symlink {
		if f := s.filterOf(rel); f != "" {
			return fmt.Errorf("%w: %q is routed through filter %q by .gitattributes; keeperd runs no filters: commit it on the host", ErrPrecondition, rel, f)
		}
	}
	h, err := s.blob(rel, fi)
	if err != nil {
		return err
	}
	ne := &index.Entry{
		Name: rel, Hash: h, Mode: mode, Size: uint32(fi.Size()),
		ModifiedAt: fi.ModTime(), CreatedAt: st.ctime,
		Dev: st.dev, Inode: st.inode, UID: st.uid, GID: st.gid,
	}
	if e == nil || e.Hash != h || e.Mode != mode {
		s.changed++
	}
	s.byName[rel] = ne
	return nil
}

// blob hashes (and, when storing, writes) the content of rel. A symlink is
// stored as its target and never followed; one leading out of the worktree
// is refused.
func (s *stager) blob(rel string, fi fs.FileInfo) (plumbing.Hash, error) {
	var data []byte
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := s.w.root.Readlink(rel)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%w: readlink %q: %w", ErrInternal, rel, err)
		}
		if symlinkEscapes(rel, target) {
			return plumbing.ZeroHash, fmt.Errorf("%w: %q is a symlink leading outside the worktree", ErrPath, rel)
		}
		data = []byte(target)
	} else {
		if fi.Size() > MaxFileSize {
			return plumbing.ZeroHash, fmt.Errorf("%w: %q is larger than %d MiB", ErrInvalid, rel, MaxFileSize>>20)
		}
		if s.read+fi.Size() > s.limits.MaxBytes {
			return plumbing.ZeroHash, s.tooManyBytes(rel)
		}
		// O_NONBLOCK: a FIFO swapped in after the stat must not block the
		// request (and the repository lock) on open; O_NOFOLLOW: nor may a
		// symlink swapped in be followed. Either fails SameFile below.
		f, err := s.w.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%w: open %q: %w", ErrPath, rel, err)
		}
		defer f.Close()
		ofi, err := f.Stat()
		if err != nil || !ofi.Mode().IsRegular() || !os.SameFile(ofi, fi) {
			return plumbing.ZeroHash, fmt.Errorf("%w: %q changed while staging", ErrPrecondition, rel)
		}
		data, err = io.ReadAll(io.LimitReader(f, MaxFileSize+1))
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%w: read %q: %w", ErrInternal, rel, err)
		}
		if len(data) > MaxFileSize {
			return plumbing.ZeroHash, fmt.Errorf("%w: %q is larger than %d MiB", ErrInvalid, rel, MaxFileSize>>20)
		}
		s.read += int64(len(data))
		if s.read > s.limits.MaxBytes { // it grew since the stat
			return plumbing.ZeroHash, s.tooManyBytes(rel)
		}
	}
	h := plumbing.ComputeHash(plumbing.BlobObject, data)
	if !s.store || s.w.repo.Storer.HasEncodedObject(h) == nil {
		return h, nil
	}
	obj := s.w.repo.Storer.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	wr, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: store blob: %w", ErrInternal, err)
	}
	if _, err := wr.Write(data); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: store blob: %w", ErrInternal, err)
	}
	if err := wr.Close(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: store blob: %w", ErrInternal, err)
	}
	if _, err := s.w.repo.Storer.SetEncodedObject(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: store blob: %w", ErrInternal, err)
	}
	return h, nil
}

// tooManyBytes refuses reading rel: the request would read more changed
// file content than its ceiling.
func (s *stager) tooManyBytes(rel string) error {
	return fmt.Errorf("%w: staging %q would read more than %d bytes of changed files in one request, over keeperd's ceiling (policy limits.max_bytes): commit in parts, or on the host", ErrTooLarge, rel, s.limits.MaxBytes)
}

// entries returns the staged index entries, sorted by name.
func (s *stager) entries() []*index.Entry {
	out := make([]*index.Entry, 0, len(s.byName))
	for _, e := range s.byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
