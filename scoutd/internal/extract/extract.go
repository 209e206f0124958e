// Package extract writes a tar stream into a directory without letting any
// entry land, point or link outside it. It is the client half of a scout
// snapshot: the stream comes from the host, but a box treats it as untrusted.
//
// The rules: names are relative, clean and free of "..", and never pass
// through a symbolic link; symlinks are relative and, resolved against the
// extracted tree, stay inside it without passing through another symlink;
// hardlinks name a regular file inside the tree; devices, fifos and unknown
// entry types are refused; an entry never replaces one already there; file
// modes keep only the permission bits (no setuid, setgid or sticky); the
// number of entries and the total file bytes have ceilings. Links are created
// after every file and directory, so their checks see the final tree.
package extract

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Refusal reasons: short, stable strings that tests and callers compare.
const (
	ReasonAbsolute        = "absolute_name"
	ReasonDotDot          = "dot_dot"
	ReasonBadName         = "bad_name"
	ReasonThroughSymlink  = "through_symlink"
	ReasonEscapingSymlink = "escaping_symlink"
	ReasonEscapingLink    = "escaping_hardlink"
	ReasonSpecialFile     = "special_file"
	ReasonUnsupported     = "unsupported_type"
	ReasonDuplicate       = "duplicate_entry"
	ReasonTooManyFiles    = "too_many_files"
	ReasonTooLarge        = "too_large"
	ReasonBadArchive      = "bad_archive"
)

// ErrRefused is matched by every refusal (errors.Is).
var ErrRefused = errors.New("extract refused")

// RefusedError says which entry was refused and why.
type RefusedError struct {
	// Name is the entry name as it appeared in the archive (may be empty).
	Name string
	// Reason is one of the Reason constants.
	Reason string
	// Detail is a human explanation.
	Detail string
}

func (e *RefusedError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("%s: %s: %s", ErrRefused, e.Reason, e.Detail)
	}
	return fmt.Sprintf("%s: %s: %q: %s", ErrRefused, e.Reason, e.Name, e.Detail)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

func refuse(name, reason, format string, args ...any) error {
	return &RefusedError{Name: name, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Limits are the ceilings of one extraction. Zero values mean the defaults.
type Limits struct {
	// MaxEntries caps the number of entries (files, dirs, links).
	MaxEntries int64
	// MaxBytes caps the total size of regular files.
	MaxBytes int64
}

// Defaults used when a Limits field is zero.
const (
	DefaultMaxEntries = 100_000
	DefaultMaxBytes   = 1 << 30
)

// Stats describes a finished extraction.
type Stats struct {
	// Entries written.
	Entries int64
	// Bytes of regular-file content written.
	Bytes int64
}

type link struct {
	name, target string
	hard         bool
}

// Extract reads a tar stream from r and writes it under dir, which must
// exist. On error, whatever was already written stays in dir: callers that
// need all-or-nothing extract into a fresh directory and remove it on error.
func Extract(r io.Reader, dir string, lim Limits) (Stats, error) {
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = DefaultMaxEntries
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("open %s: %w", dir, err)
	}
	defer func() { _ = root.Close() }()

	x := &extractor{root: root, lim: lim, seen: map[string]byte{}, linkFold: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return x.st, refuse("", ReasonBadArchive, "read tar: %v", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return x.st, err
		}
	}
	// Links last, so their checks see every file and directory.
	for _, l := range x.links {
		if l.hard {
			if err := x.hardlink(l); err != nil {
				return x.st, err
			}
		}
	}
	for _, l := range x.links {
		if !l.hard {
			if err := x.symlink(l); err != nil {
				return x.st, err
			}
		}
	}
	// Once every link exists, walk each target again against what is on
	// disk: a file system that folds names can make a component name a
	// link that was created after the target was first checked.
	for _, l := range x.links {
		if !l.hard {
			if err := x.checkTarget(l); err != nil {
				return x.st, err
			}
		}
	}
	return x.st, nil
}

type extractor struct {
	root  *os.Root
	lim   Limits
	st    Stats
	links []link
	// seen maps a clean name to its kind: 'd' dir, 'f' file, 'l' symlink, 'h' hardlink.
	seen map[string]byte
	// linkFold holds every symlink's name case-folded and normalized
	// (fold): on a case- or normalization-insensitive file system (a macOS
	// worktree) "l" and "L", or "é" composed and decomposed, are one name.
	linkFold map[string]bool
}

// fold is a name as a case-insensitive, normalization-insensitive file
// system compares it: full Unicode case folding, then NFD.
func fold(name string) string {
	return norm.NFD.String(cases.Fold().String(name))
}

func (x *extractor) count(name string) error {
	x.st.Entries++
	if x.st.Entries > x.lim.MaxEntries {
		return refuse(name, ReasonTooManyFiles, "more than %d entries", x.lim.MaxEntries)
	}
	return nil
}

func (x *extractor) entry(hdr *tar.Header, body io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil // metadata, consumed by archive/tar
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return refuse(hdr.Name, ReasonBadName, "only a directory may name the root")
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if k, ok := x.seen[name]; ok && k != 'd' {
			return refuse(hdr.Name, ReasonDuplicate, "already extracted")
		}
		if err := x.count(hdr.Name); err != nil {
			return err
		}
		if err := x.parentsReal(hdr.Name, name, true); err != nil {
			return err
		}
		if err := x.root.MkdirAll(name, 0o755); err != nil {
			return fmt.Errorf("mkdir %q: %w", name, err)
		}
		x.seen[name] = 'd'
		return nil
	case tar.TypeReg, tar.TypeRegA: //lint:ignore SA1019 TypeRegA still appears in old archives
		return x.file(hdr, name, body)
	case tar.TypeSymlink, tar.TypeLink:
		if _, ok := x.seen[name]; ok {
			return refuse(hdr.Name, ReasonDuplicate, "already extracted")
		}
		if err := x.count(hdr.Name); err != nil {
			return err
		}
		if hdr.Linkname == "" {
			return refuse(hdr.Name, ReasonBadName, "empty link target")
		}
		hard := hdr.Typeflag == tar.TypeLink
		if hard {
			x.seen[name] = 'h'
		} else {
			x.seen[name] = 'l'
			x.linkFold[fold(name)] = true
		}
		x.links = append(x.links, link{name: name, target: hdr.Linkname, hard: hard})
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return refuse(hdr.Name, ReasonSpecialFile, "device or fifo entries are never extracted")
	default:
		return refuse(hdr.Name, ReasonUnsupported, "entry type %q", string(hdr.Typeflag))
	}
}

func (x *extractor) file(hdr *tar.Header, name string, body io.Reader) error {
	if _, ok := x.seen[name]; ok {
		return refuse(hdr.Name, ReasonDuplicate, "already extracted")
	}
	if err := x.count(hdr.Name); err != nil {
		return err
	}
	if hdr.Size < 0 || hdr.Size > x.lim.MaxBytes-x.st.Bytes {
		return refuse(hdr.Name, ReasonTooLarge, "files exceed %d bytes", x.lim.MaxBytes)
	}
	if err := x.parentsReal(hdr.Name, name, true); err != nil {
		return err
	}
	if dir := path.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("mkdir %q: %w", dir, err)
		}
	}
	perm := fs.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		perm = 0o755
	}
	// O_EXCL: never write through something already there (a symlink above all).
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return refuse(hdr.Name, ReasonDuplicate, "a file is already there")
		}
		return fmt.Errorf("create %q: %w", name, err)
	}
	x.seen[name] = 'f'
	n, err := io.Copy(f, io.LimitReader(body, hdr.Size))
	cerr := f.Close()
	if err != nil {
		return refuse(hdr.Name, ReasonBadArchive, "read entry: %v", err)
	}
	if n != hdr.Size {
		return refuse(hdr.Name, ReasonBadArchive, "entry truncated at %d of %d bytes", n, hdr.Size)
	}
	if cerr != nil {
		return fmt.Errorf("write %q: %w", name, cerr)
	}
	x.st.Bytes += n
	return nil
}

// parentsReal refuses a name whose parent directories include a symlink,
// whether extracted from this archive or already present in dir. With self,
// the name itself must not be a symlink either.
func (x *extractor) parentsReal(orig, name string, self bool) error {
	parts := strings.Split(name, "/")
	n := len(parts) - 1
	if self {
		n = len(parts)
	}
	for i := 1; i <= n; i++ {
		p := strings.Join(parts[:i], "/")
		if k := x.seen[p]; k == 'l' || k == 'h' {
			if i == len(parts) {
				return refuse(orig, ReasonDuplicate, "a link is already there")
			}
			return refuse(orig, ReasonThroughSymlink, "%q is a link", p)
		}
		fi, err := x.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lstat %q: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return refuse(orig, ReasonThroughSymlink, "%q is a symlink", p)
		}
		if i < len(parts) && !fi.IsDir() {
			return refuse(orig, ReasonBadName, "%q is not a directory", p)
		}
	}
	return nil
}

func (x *extractor) hardlink(l link) error {
	target, err := cleanName(l.target)
	if err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			return refuse(l.name, ReasonEscapingLink, "target %q: %s", l.target, re.Reason)
		}
		return err
	}
	if x.seen[target] != 'f' {
		return refuse(l.name, ReasonEscapingLink, "target %q is not a regular file of this archive", l.target)
	}
	if err := x.parentsReal(l.name, target, true); err != nil {
		return refuse(l.name, ReasonEscapingLink, "target %q: %v", l.target, err)
	}
	if err := x.parentsReal(l.name, l.name, false); err != nil {
		return err
	}
	if err := x.mkParent(l.name); err != nil {
		return err
	}
	if err := x.root.Link(target, l.name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return refuse(l.name, ReasonDuplicate, "already there")
		}
		return fmt.Errorf("link %q: %w", l.name, err)
	}
	return nil
}

// checkTarget walks a symlink's target from the link's directory,
// component by component, on the unclean path: every ".." must stay
// inside, and no component before the last may be a link (whose own target
// would change where ".." goes) — by name in the archive, by its folded
// name (fold), or on disk.
func (x *extractor) checkTarget(l link) error {
	if strings.HasPrefix(l.target, "/") {
		return refuse(l.name, ReasonEscapingSymlink, "absolute target %q", l.target)
	}
	if strings.ContainsRune(l.target, 0) || strings.Contains(l.target, `\`) {
		return refuse(l.name, ReasonEscapingSymlink, "target %q has a forbidden character", l.target)
	}
	stack := strings.Split(path.Dir(l.name), "/")
	if stack[0] == "." {
		stack = stack[:0]
	}
	comps := strings.Split(l.target, "/")
	for i, c := range comps {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return refuse(l.name, ReasonEscapingSymlink, "target %q leaves the directory", l.target)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		if i == len(comps)-1 {
			break
		}
		p := strings.Join(stack, "/")
		if x.seen[p] == 'l' || x.linkFold[fold(p)] {
			return refuse(l.name, ReasonEscapingSymlink, "target %q passes through symlink %q", l.target, p)
		}
		if fi, err := x.root.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return refuse(l.name, ReasonEscapingSymlink, "target %q passes through symlink %q", l.target, p)
		}
	}
	return nil
}

func (x *extractor) symlink(l link) error {
	if err := x.checkTarget(l); err != nil {
		return err
	}
	if err := x.parentsReal(l.name, l.name, false); err != nil {
		return err
	}
	if err := x.mkParent(l.name); err != nil {
		return err
	}
	if err := x.root.Symlink(l.target, l.name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return refuse(l.name, ReasonDuplicate, "already there")
		}
		return fmt.Errorf("symlink %q: %w", l.name, err)
	}
	return nil
}

func (x *extractor) mkParent(name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("mkdir %q: %w", dir, err)
		}
	}
	return nil
}

// cleanName checks an archive name and returns its clean relative form.
// "./a/b/" becomes "a/b"; "/a", "a/../b", "" and names with NUL or
// backslash are refused.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", refuse(name, ReasonBadName, "empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", refuse(name, ReasonAbsolute, "absolute names are never extracted")
	}
	if strings.ContainsRune(name, 0) || strings.Contains(name, `\`) {
		return "", refuse(name, ReasonBadName, "NUL or backslash in name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", refuse(name, ReasonDotDot, "\"..\" in name")
		}
	}
	clean := path.Clean(name)
	if clean != "." && !fs.ValidPath(clean) {
		return "", refuse(name, ReasonBadName, "not a valid relative path")
	}
	return clean, nil
}
