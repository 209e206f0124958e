package scout

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/dest"
)

// SnapshotRequest asks for a repository's tree at a ref.
type SnapshotRequest struct {
	// URL is the repository's https URL.
	URL string
	// Ref is a branch or tag name, refs/…, or a commit id where the server
	// allows one; empty means the remote's HEAD.
	Ref string
	// MaxBytes lowers the ceiling on file bytes; 0 keeps the server's.
	MaxBytes int64
	// MaxFiles lowers the ceiling on entries; 0 keeps the server's.
	MaxFiles int64
	// Caveats are the caveats of the door the request came through.
	Caveats []guestroom.Caveat
}

// SnapshotResult closes a complete tar stream.
type SnapshotResult struct {
	// Commit is the resolved commit id.
	Commit string
	// Entries written (files, symlinks, directories).
	Entries int64
	// FileBytes is the total size of regular files and symlink targets.
	FileBytes int64
	// Size of the tar stream in bytes.
	Size int64
	// SHA256 of the tar stream, lowercase hex.
	SHA256 string
}

// RepoOfURL returns "owner/name" for a URL path "/owner/name[.git][/]",
// else the path without its leading slash.
func RepoOfURL(requestURI string) string {
	p := strings.TrimPrefix(requestURI, "/")
	p = strings.TrimSuffix(p, "/")
	p = strings.TrimSuffix(p, ".git")
	return p
}

// repoOfGitPath returns the repository a smart-HTTP request path names:
// the path without its "/info/refs" or "/git-upload-pack" endpoint, as
// RepoOfURL reads it.
func repoOfGitPath(p string) string {
	for _, suffix := range []string{"/info/refs", "/git-upload-pack"} {
		if s, ok := strings.CutSuffix(p, suffix); ok {
			p = s
			break
		}
	}
	return RepoOfURL(p)
}

// Snapshot shallow-fetches (depth 1, the one ref) the repository into
// memory and streams a tar of the tree at the ref, without .git, to w. On
// error the stream written so far is incomplete and must be discarded.
func (s *Scout) Snapshot(ctx context.Context, req SnapshotRequest, w io.Writer) (SnapshotResult, error) {
	maxBytes := lower(s.limits.MaxSnapshotBytes, req.MaxBytes)
	maxFiles := lower(s.limits.MaxFiles, req.MaxFiles)
	ctx, cancel := context.WithTimeoutCause(ctx, s.limits.Timeout, errTotalTimeout)
	defer cancel()
	bindDeadline(ctx, w)
	res, err := s.snapshot(ctx, req, maxBytes, maxFiles, w)
	if err != nil {
		return res, Classify(ctx, err)
	}
	return res, nil
}

func (s *Scout) snapshot(ctx context.Context, req SnapshotRequest, maxBytes, maxFiles int64, w io.Writer) (SnapshotResult, error) {
	if err := checkRef(req.Ref); err != nil {
		return SnapshotResult{}, err
	}
	pre, err := dest.ParseURL(req.URL)
	if err != nil {
		return SnapshotResult{}, err
	}
	if strings.Contains(pre.RequestURI, "?") {
		return SnapshotResult{}, invalid("repository url has a query")
	}
	sc := scope{caveats: req.Caveats, repo: RepoOfURL(pre.RequestURI)}
	u, err := s.checkURL(req.URL, sc)
	if err != nil {
		return SnapshotResult{}, err
	}
	ctx = withScope(ctx, sc)

	ep, err := transport.NewEndpoint(u.String())
	if err != nil {
		return SnapshotResult{}, invalid("repository url: %v", err)
	}
	sess, err := githttp.NewClient(s.web).NewUploadPackSession(ep, nil)
	if err != nil {
		return SnapshotResult{}, fmt.Errorf("open session: %w", err)
	}
	defer func() { _ = sess.Close() }()

	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return SnapshotResult{}, gitErr(err)
	}
	want, err := resolveRef(ar, req.Ref)
	if err != nil {
		return SnapshotResult{}, err
	}

	upr := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	upr.Wants = []plumbing.Hash{want}
	upr.Depth = packp.DepthCommits(1)
	if err := upr.Capabilities.Set(capability.Shallow); err != nil {
		return SnapshotResult{}, fmt.Errorf("shallow capability: %w", err)
	}
	if ar.Capabilities.Supports(capability.NoProgress) {
		_ = upr.Capabilities.Set(capability.NoProgress)
	}
	resp, err := sess.UploadPack(ctx, upr)
	if err != nil {
		return SnapshotResult{}, gitErr(err)
	}
	defer func() { _ = resp.Close() }()

	// The pack carries the files compressed, plus a little per object.
	packMax := maxBytes + maxFiles*256 + 8<<20
	var pack io.Reader = &capReader{r: resp, max: packMax, reason: ReasonTooLarge}
	switch {
	case upr.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, pack)
	case upr.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, pack)
	}
	sto := &boundedStorage{Storage: memory.NewStorage(), max: 2*maxBytes + maxFiles*512 + 8<<20}
	spool, err := spoolPack(pack)
	if err != nil {
		return SnapshotResult{}, gitErr(err)
	}
	defer spool.close()
	// go-git inflates each object whole into memory before the store sees
	// it: a pack that inflates past the ceilings (a zlib bomb, a delta
	// whose target is huge) is refused by a first pass that inflates
	// nothing into memory.
	if err := checkPack(spool.f, maxBytes, sto.max, maxPackObjects(maxFiles)); err != nil {
		return SnapshotResult{}, gitErr(err)
	}
	if _, err := spool.f.Seek(0, io.SeekStart); err != nil {
		return SnapshotResult{}, fmt.Errorf("rewind pack: %w", err)
	}
	if err := packfile.UpdateObjectStorage(sto, spool.f); err != nil {
		return SnapshotResult{}, gitErr(err)
	}

	commit, err := peelCommit(sto, want)
	if err != nil {
		return SnapshotResult{}, err
	}
	tree, err := commit.Tree()
	if err != nil {
		return SnapshotResult{}, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("tree of %s: %w", commit.Hash, err)}
	}

	cw := &countWriter{w: w, h: sha256.New()}
	res, err := writeTree(tree, cw, commit.Committer.When, maxBytes, maxFiles)
	if err != nil {
		return res, err
	}
	res.Commit = commit.Hash.String()
	res.Size = cw.n
	res.SHA256 = hex.EncodeToString(cw.h.Sum(nil))
	return res, nil
}

// checkRef refuses refs that no branch, tag or commit id could be.
func checkRef(ref string) error {
	if len(ref) > 255 {
		return invalid("ref longer than 255 bytes")
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		if c <= 0x20 || c == 0x7f || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' || c == '[' || c == '\\' {
			return invalid("ref %q has a forbidden character", ref)
		}
	}
	if strings.Contains(ref, "..") || strings.HasPrefix(ref, "-") || strings.HasPrefix(ref, "/") {
		return invalid("ref %q is not a ref name", ref)
	}
	return nil
}

func resolveRef(ar *packp.AdvRefs, ref string) (plumbing.Hash, error) {
	if ref == "" || ref == "HEAD" {
		if ar.Head == nil {
			return plumbing.ZeroHash, &Error{Kind: KindNotFound, Reason: ReasonRefNotFound, Err: errors.New("the remote advertises no HEAD; name a branch or tag")}
		}
		return *ar.Head, nil
	}
	names := []string{ref}
	if !strings.HasPrefix(ref, "refs/") {
		names = []string{"refs/heads/" + ref, "refs/tags/" + ref}
	}
	for _, n := range names {
		if h, ok := ar.References[n]; ok {
			return h, nil
		}
	}
	if len(ref) == 40 && isHex(ref) {
		if ar.Capabilities.Supports(capability.AllowReachableSHA1InWant) || ar.Capabilities.Supports(capability.AllowTipSHA1InWant) {
			return plumbing.NewHash(ref), nil
		}
		for n, h := range ar.References {
			if h.String() == ref && strings.HasPrefix(n, "refs/") {
				return h, nil
			}
		}
		return plumbing.ZeroHash, &Error{Kind: KindNotFound, Reason: ReasonRefNotFound, Err: fmt.Errorf("commit %s is not a tip and the server does not serve other commits; name a branch or tag", ref)}
	}
	return plumbing.ZeroHash, &Error{Kind: KindNotFound, Reason: ReasonRefNotFound, Err: fmt.Errorf("no branch or tag %q", ref)}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func peelCommit(sto *boundedStorage, h plumbing.Hash) (*object.Commit, error) {
	for range 8 {
		obj, err := object.GetObject(sto, h)
		if err != nil {
			return nil, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("object %s not in the pack: %w", h, err)}
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			h = o.Target
		default:
			return nil, &Error{Kind: KindNotFound, Reason: ReasonRefNotFound, Err: fmt.Errorf("ref names a %s, not a commit", obj.Type())}
		}
	}
	return nil, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: errors.New("tag chain too long")}
}

// writeTree writes every file, symlink and directory of tree as tar
// entries. Submodules (gitlinks) have no content here and are left out.
func writeTree(tree *object.Tree, w io.Writer, mtime time.Time, maxBytes, maxFiles int64) (SnapshotResult, error) {
	var res SnapshotResult
	tw := tar.NewWriter(w)
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("walk tree: %w", err)}
		}
		if e.Mode == filemode.Submodule {
			continue
		}
		res.Entries++
		if res.Entries > maxFiles {
			return res, &Error{Kind: KindTooLarge, Reason: ReasonTooManyFiles, Err: fmt.Errorf("more than %d entries", maxFiles)}
		}
		hdr := &tar.Header{Name: name, ModTime: mtime, Format: tar.FormatPAX}
		switch e.Mode {
		case filemode.Dir:
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return res, &errSink{err}
			}
			continue
		case filemode.Regular, filemode.Deprecated:
			hdr.Typeflag, hdr.Mode = tar.TypeReg, 0o644
		case filemode.Executable:
			hdr.Typeflag, hdr.Mode = tar.TypeReg, 0o755
		case filemode.Symlink:
			hdr.Typeflag, hdr.Mode = tar.TypeSymlink, 0o777
		default:
			return res, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("%s: unknown file mode %s", name, e.Mode)}
		}
		blob, err := tree.TreeEntryFile(&e)
		if err != nil {
			return res, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("%s: blob: %w", name, err)}
		}
		res.FileBytes += blob.Size
		if res.FileBytes > maxBytes {
			return res, &Error{Kind: KindTooLarge, Reason: ReasonTooLarge, Err: fmt.Errorf("files exceed %d bytes", maxBytes)}
		}
		r, err := blob.Reader()
		if err != nil {
			return res, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("%s: %w", name, err)}
		}
		if hdr.Typeflag == tar.TypeSymlink {
			target, err := io.ReadAll(io.LimitReader(r, 4096))
			_ = r.Close()
			if err != nil {
				return res, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("%s: %w", name, err)}
			}
			hdr.Linkname = string(target)
			if err := tw.WriteHeader(hdr); err != nil {
				return res, &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: fmt.Errorf("%s: %w", name, err)}
			}
			continue
		}
		hdr.Size = blob.Size
		if err := tw.WriteHeader(hdr); err != nil {
			_ = r.Close()
			return res, &errSink{err}
		}
		n, err := io.Copy(tw, r)
		_ = r.Close()
		if err != nil || n != blob.Size {
			return res, &errSink{fmt.Errorf("%s: wrote %d of %d bytes: %w", name, n, blob.Size, err)}
		}
	}
	if err := tw.Close(); err != nil {
		return res, &errSink{err}
	}
	return res, nil
}

// countWriter counts and hashes what it passes on.
type countWriter struct {
	w io.Writer
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	_, _ = c.h.Write(p[:n])
	if err != nil {
		return n, &errSink{err}
	}
	return n, nil
}

// gitErr classifies a transport or pack failure, keeping a classified
// error (a ceiling, a refusal on a redirect) as it is.
func gitErr(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if c := Classify(context.TODO(), err); c.Kind != KindInternal {
		return c
	}
	switch {
	case errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return &Error{Kind: KindNotFound, Reason: ReasonNotFound, Err: errors.New("repository not found (or not public)")}
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return &Error{Kind: KindNotFound, Reason: ReasonRefNotFound, Err: err}
	}
	return &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: err}
}

// boundedStorage is a memory object store that refuses objects once their
// decoded sizes add up past max: a pack that inflates without bound stops.
type boundedStorage struct {
	*memory.Storage
	max, n int64
}

func (b *boundedStorage) SetEncodedObject(o plumbing.EncodedObject) (plumbing.Hash, error) {
	b.n += o.Size()
	if b.n > b.max {
		return plumbing.ZeroHash, &Error{Kind: KindTooLarge, Reason: ReasonTooLarge, Err: fmt.Errorf("repository objects exceed %d bytes", b.max)}
	}
	return b.Storage.SetEncodedObject(o)
}

// spooledPack is a received pack in a temporary file.
type spooledPack struct{ f *os.File }

// spoolPack copies a pack (already under the wire ceiling) to a temporary
// file, so that it can be checked before it is parsed.
func spoolPack(r io.Reader) (*spooledPack, error) {
	f, err := os.CreateTemp("", "scoutd-pack-*")
	if err != nil {
		return nil, fmt.Errorf("spool pack: %w", err)
	}
	sp := &spooledPack{f: f}
	if _, err := io.Copy(f, r); err != nil {
		sp.close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		sp.close()
		return nil, fmt.Errorf("spool pack: %w", err)
	}
	return sp, nil
}

func (sp *spooledPack) close() {
	_ = sp.f.Close()
	_ = os.Remove(sp.f.Name())
}

// maxPackObjects is the most objects a depth-1 pack of a tree within
// maxFiles entries holds: a blob or tree per entry, the root tree, the
// commit and a chain of tags, with room to spare.
func maxPackObjects(maxFiles int64) int64 { return maxFiles + 64 }

// checkPack reads every object header of a pack and inflates each object
// into nothing, refusing the pack when it declares more than maxObjects
// objects (each costs the parser its bookkeeping, however small), when one
// object (or a delta's target) would be larger than maxObject, when they
// add up past maxTotal, or when an object inflates to more than its header
// declared.
func checkPack(r io.Reader, maxObject, maxTotal, maxObjects int64) error {
	sc := packfile.NewScanner(r)
	_, count, err := sc.Header()
	if err != nil {
		return err
	}
	if int64(count) > maxObjects {
		return &Error{Kind: KindTooLarge, Reason: ReasonTooManyFiles, Err: fmt.Errorf("pack of %d objects exceeds %d", count, maxObjects)}
	}
	var total int64
	for range count {
		oh, err := sc.NextObjectHeader()
		if err != nil {
			return err
		}
		size := oh.Length
		w := &inflateCheck{max: oh.Length}
		delta := oh.Type == plumbing.OFSDeltaObject || oh.Type == plumbing.REFDeltaObject
		if size > maxObject && !delta {
			return &Error{Kind: KindTooLarge, Reason: ReasonTooLarge, Err: fmt.Errorf("pack object of %d bytes exceeds %d", size, maxObject)}
		}
		if _, _, err := sc.NextObject(w); w.err != nil || err != nil {
			return errors.Join(w.err, err)
		}
		if delta {
			// A delta starts with its base's size and its target's size.
			_, rest, ok := leb128(w.head)
			target, _, ok2 := leb128(rest)
			if !ok || !ok2 {
				return &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: errors.New("pack has a malformed delta")}
			}
			if target > uint64(maxObject) {
				return &Error{Kind: KindTooLarge, Reason: ReasonTooLarge, Err: fmt.Errorf("pack delta of %d bytes exceeds %d", target, maxObject)}
			}
			size = int64(target)
		}
		if total += size; total > maxTotal {
			return &Error{Kind: KindTooLarge, Reason: ReasonTooLarge, Err: fmt.Errorf("pack objects exceed %d bytes", maxTotal)}
		}
	}
	return nil
}

// inflateCheck discards an inflated object, keeping its first bytes (a
// delta's header) and failing once more than max bytes came through.
type inflateCheck struct {
	max, n int64
	head   []byte
	err    error
}

func (w *inflateCheck) Write(p []byte) (int, error) {
	if room := 20 - len(w.head); room > 0 {
		w.head = append(w.head, p[:min(room, len(p))]...)
	}
	w.n += int64(len(p))
	if w.n > w.max {
		w.err = &Error{Kind: KindUnavailable, Reason: ReasonUpstreamError, Err: errors.New("pack object inflates past its declared size")}
		return 0, w.err
	}
	return len(p), nil
}

// leb128 decodes git's little-endian base-128 size at the start of b.
func leb128(b []byte) (uint64, []byte, bool) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, b[i+1:], true
		}
	}
	return 0, nil, false
}
