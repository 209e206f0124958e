package keeper

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"
)

// NotesRef is where keeperd records who made each commit.
const NotesRef = plumbing.ReferenceName("refs/notes/claude-box")

// StatementNamespace is the SSHSIG namespace of statement signatures, so a
// statement signature can never pass as a git object signature.
const StatementNamespace = "claude-box-statement"

const statementHeader = "claude-box statement v1"

// Statement says which launch, account and capabilities made a commit.
type Statement struct {
	// Commit is the commit id.
	Commit string
	// Branch is the branch it was made on.
	Branch string
	// Launch is the launch id.
	Launch string
	// Account is the launch's account.
	Account string
	// Manifest is the launch's manifest digest.
	Manifest string
	// Time is the commit time, unix seconds.
	Time int64
}

func field(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
	if v == "" {
		return "-"
	}
	return v
}

// Encode renders the statement text that is signed.
func (s Statement) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\ncommit %s\nbranch %s\nlaunch %s\naccount %s\nmanifest %s\ntime %d\n",
		statementHeader, field(s.Commit), field(s.Branch), field(s.Launch), field(s.Account), field(s.Manifest), s.Time)
	return b.Bytes()
}

// ParseStatement parses an encoded statement.
func ParseStatement(b []byte) (Statement, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 7 || lines[0] != statementHeader {
		return Statement{}, fmt.Errorf("%w: not a claude-box statement", ErrBadSignature)
	}
	var s Statement
	want := []string{"commit", "branch", "launch", "account", "manifest", "time"}
	vals := make([]string, len(want))
	for i, k := range want {
		key, v, ok := strings.Cut(lines[i+1], " ")
		if !ok || key != k {
			return Statement{}, fmt.Errorf("%w: statement line %d: want %q", ErrBadSignature, i+2, k)
		}
		vals[i] = v
	}
	s.Commit, s.Branch, s.Launch, s.Account, s.Manifest = vals[0], vals[1], vals[2], vals[3], vals[4]
	t, err := strconv.ParseInt(vals[5], 10, 64)
	if err != nil {
		return Statement{}, fmt.Errorf("%w: statement time: %w", ErrBadSignature, err)
	}
	s.Time = t
	return s, nil
}

// addNote stores the signed statement as the note of commit under NotesRef.
func (k *Keeper) addNote(w *worktree, commit plumbing.Hash, st Statement, id Identity) error {
	text := st.Encode()
	sig, err := k.key.SignSSH(StatementNamespace, bytes.NewReader(text))
	if err != nil {
		return err
	}
	s := w.repo.Storer
	blob := s.NewEncodedObject()
	blob.SetType(plumbing.BlobObject)
	bw, err := blob.Writer()
	if err != nil {
		return fmt.Errorf("%w: note blob: %w", ErrInternal, err)
	}
	bw.Write(text)
	bw.Write(sig)
	bw.Close()
	bh, err := s.SetEncodedObject(blob)
	if err != nil {
		return fmt.Errorf("%w: note blob: %w", ErrInternal, err)
	}
	// Notes are stored fanned out as git does for large notes trees
	// ("ab/cdef…"), so each note rewrites a root of at most 256 entries and
	// one small subtree. A flat entry for the same commit is replaced.
	var parents []plumbing.Hash
	var root []object.TreeEntry
	var sub []object.TreeEntry
	hex := commit.String()
	fan, rest := hex[:2], hex[2:]
	oldRef, err := s.Reference(NotesRef)
	switch {
	case err == nil:
		oc, err := object.GetCommit(s, oldRef.Hash())
		if err != nil {
			return fmt.Errorf("%w: read notes: %w", ErrInternal, err)
		}
		ot, err := object.GetTree(s, oc.TreeHash)
		if err != nil {
			return fmt.Errorf("%w: read notes: %w", ErrInternal, err)
		}
		parents = []plumbing.Hash{oc.Hash}
		for _, e := range ot.Entries {
			switch {
			case e.Name == hex:
			case e.Name == fan && e.Mode == filemode.Dir:
				st, err := object.GetTree(s, e.Hash)
				if err != nil {
					return fmt.Errorf("%w: read notes: %w", ErrInternal, err)
				}
				for _, se := range st.Entries {
					if se.Name != rest {
						sub = append(sub, se)
					}
				}
			default:
				root = append(root, e)
			}
		}
	case errors.Is(err, plumbing.ErrReferenceNotFound):
		oldRef = nil
	default:
		return fmt.Errorf("%w: read notes: %w", ErrInternal, err)
	}
	sub = append(sub, object.TreeEntry{Name: rest, Mode: filemode.Regular, Hash: bh})
	sh, err := storeTree(s, sub)
	if err != nil {
		return err
	}
	root = append(root, object.TreeEntry{Name: fan, Mode: filemode.Dir, Hash: sh})
	th, err := storeTree(s, root)
	if err != nil {
		return err
	}
	sg := object.Signature{Name: id.Name, Email: id.Email, When: k.now()}
	nc := &object.Commit{Author: sg, Committer: sg, Message: "Notes added by keeperd\n", TreeHash: th, ParentHashes: parents}
	co := s.NewEncodedObject()
	if err := nc.Encode(co); err != nil {
		return fmt.Errorf("%w: notes commit: %w", ErrInternal, err)
	}
	ch, err := s.SetEncodedObject(co)
	if err != nil {
		return fmt.Errorf("%w: notes commit: %w", ErrInternal, err)
	}
	if err := s.CheckAndSetReference(plumbing.NewHashReference(NotesRef, ch), oldRef); err != nil {
		return fmt.Errorf("%w: update %s: %w", ErrInternal, NotesRef, err)
	}
	return nil
}

func storeTree(s interface {
	NewEncodedObject() plumbing.EncodedObject
	SetEncodedObject(plumbing.EncodedObject) (plumbing.Hash, error)
}, entries []object.TreeEntry) (plumbing.Hash, error) {
	sort.Slice(entries, func(i, j int) bool { return treeSortName(entries[i]) < treeSortName(entries[j]) })
	o := s.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(o); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: notes tree: %w", ErrInternal, err)
	}
	h, err := s.SetEncodedObject(o)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: notes tree: %w", ErrInternal, err)
	}
	return h, nil
}

// Verified is what VerifyCommit established.
type Verified struct {
	// Commit is the full commit id.
	Commit string
	// Signer is the fingerprint of the key that signed the commit.
	Signer string
	// Statement is the note's signed statement; nil when the commit has none.
	Statement *Statement
}

// VerifyCommit checks that rev in the repository at dir is signed by trusted
// and that its claude-box note, when present, is a statement about this
// commit signed by the same key. requireNote makes a missing note an error.
func VerifyCommit(dir, rev string, trusted ssh.PublicKey, requireNote bool) (Verified, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return Verified{}, fmt.Errorf("open %s: %w", dir, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return Verified{}, fmt.Errorf("resolve %q: %w", rev, err)
	}
	c, err := repo.CommitObject(*h)
	if err != nil {
		return Verified{}, fmt.Errorf("read commit %s: %w", h, err)
	}
	if c.PGPSignature == "" {
		return Verified{}, fmt.Errorf("%w: commit %s is not signed", ErrBadSignature, h)
	}
	payload, err := commitPayload(c)
	if err != nil {
		return Verified{}, fmt.Errorf("encode commit %s: %w", h, err)
	}
	pub, err := VerifySSH([]byte(c.PGPSignature), "git", bytes.NewReader(payload))
	if err != nil {
		return Verified{}, fmt.Errorf("commit %s: %w", h, err)
	}
	if !bytes.Equal(pub.Marshal(), trusted.Marshal()) {
		return Verified{}, fmt.Errorf("%w: commit %s is signed by %s, not by keeperd's key", ErrBadSignature, h, ssh.FingerprintSHA256(pub))
	}
	v := Verified{Commit: h.String(), Signer: ssh.FingerprintSHA256(pub)}
	note, err := readNote(repo, *h)
	if err != nil {
		return Verified{}, err
	}
	if note == nil {
		if requireNote {
			return Verified{}, fmt.Errorf("%w: commit %s has no %s note", ErrBadSignature, h, NotesRef)
		}
		return v, nil
	}
	i := bytes.Index(note, []byte(armorBegin))
	if i < 0 {
		return Verified{}, fmt.Errorf("%w: note of %s is not signed", ErrBadSignature, h)
	}
	npub, err := VerifySSH(note[i:], StatementNamespace, bytes.NewReader(note[:i]))
	if err != nil {
		return Verified{}, fmt.Errorf("note of %s: %w", h, err)
	}
	if !bytes.Equal(npub.Marshal(), trusted.Marshal()) {
		return Verified{}, fmt.Errorf("%w: note of %s is signed by another key", ErrBadSignature, h)
	}
	st, err := ParseStatement(note[:i])
	if err != nil {
		return Verified{}, err
	}
	if st.Commit != h.String() {
		return Verified{}, fmt.Errorf("%w: note of %s is a statement about %s", ErrBadSignature, h, st.Commit)
	}
	v.Statement = &st
	return v, nil
}

// readNote returns the note of commit under NotesRef (flat or fanned out),
// or nil.
func readNote(repo *git.Repository, commit plumbing.Hash) ([]byte, error) {
	ref, err := repo.Reference(NotesRef, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", NotesRef, err)
	}
	nc, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", NotesRef, err)
	}
	t, err := nc.Tree()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", NotesRef, err)
	}
	hex := commit.String()
	for _, name := range []string{hex, hex[:2] + "/" + hex[2:], hex[:2] + "/" + hex[2:4] + "/" + hex[4:]} {
		f, err := t.File(name)
		if err != nil {
			continue
		}
		s, err := f.Contents()
		if err != nil {
			return nil, fmt.Errorf("read note: %w", err)
		}
		return []byte(s), nil
	}
	return nil, nil
}
