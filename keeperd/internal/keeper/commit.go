package keeper

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// CommitRequest asks for one commit.
type CommitRequest struct {
	// Message is the commit message.
	Message string
	// All stages every change (git add -A).
	All bool
	// Paths are the paths to stage, relative to the worktree root.
	Paths []string
	// Author is a requested "Name <email>", honoured only if policy lists it.
	Author string
}

// CommitResult describes a commit made.
type CommitResult struct {
	// Commit is the new commit id.
	Commit string
	// Branch is the short branch name.
	Branch string
	// Files are the paths the commit changes relative to its parent.
	Files []Change
}

// Commit stages the requested changes in the launch's repository and makes
// one signed commit on its current branch, then records a signed statement
// of who made it as a note under refs/notes/claude-box.
func (k *Keeper) Commit(ctx context.Context, l Launch, req CommitRequest) (CommitResult, error) {
	msg, err := cleanMessage(req.Message)
	if err != nil {
		return CommitResult{}, err
	}
	if req.All && len(req.Paths) > 0 {
		return CommitResult{}, fmt.Errorf("%w: pass either -a or paths, not both", ErrInvalid)
	}
	if !req.All && len(req.Paths) == 0 {
		return CommitResult{}, fmt.Errorf("%w: nothing selected: pass -a or the paths to commit", ErrInvalid)
	}
	p := k.Policy()
	_, dir, err := bind(p, l)
	if err != nil {
		return CommitResult{}, err
	}
	id, err := p.Identity(req.Author)
	if err != nil {
		return CommitResult{}, err
	}
	unlock, err := k.lockRepo(ctx, dir)
	if err != nil {
		return CommitResult{}, err
	}
	defer unlock()
	w, err := openWorktree(dir)
	if err != nil {
		return CommitResult{}, err
	}
	defer w.Close()
	ref, err := w.branch()
	if err != nil {
		return CommitResult{}, err
	}
	if !p.BranchAllowed(ref.Short()) {
		return CommitResult{}, fmt.Errorf("%w: branch %q is not allowed by policy (commit on an allowed branch, or add it to branches)", ErrDenied, ref.Short())
	}
	if err := k.take(l, "commit"); err != nil {
		return CommitResult{}, err
	}
	parent, err := w.tip(ref)
	if err != nil {
		return CommitResult{}, err
	}
	lk, err := lockIndex(w.gitDir)
	if err != nil {
		return CommitResult{}, err
	}
	defer lk.release()
	idx, mtime, err := lk.read()
	if err != nil {
		return CommitResult{}, err
	}
	excludes, err := excludesFile(k.getenv, w, ref.Short())
	if err != nil {
		return CommitResult{}, err
	}
	st, err := newStager(w, idx, mtime, true, excludes)
	if err != nil {
		return CommitResult{}, err
	}
	st.ctx = ctx
	st.limits = p.limits()
	if req.All {
		err = st.stageAll("")
	} else {
		err = st.stagePaths(req.Paths)
	}
	if err != nil {
		return CommitResult{}, err
	}
	if err := checkCtx(ctx); err != nil {
		return CommitResult{}, err
	}
	idx.Entries = st.entries()
	ts, err := buildTrees(idx.Entries)
	if err != nil {
		return CommitResult{}, err
	}
	s := w.repo.Storer
	var parentTree plumbing.Hash
	var parents []plumbing.Hash
	if !parent.IsZero() {
		pc, err := object.GetCommit(s, parent)
		if err != nil {
			return CommitResult{}, fmt.Errorf("%w: read %s: %w", ErrInternal, parent, err)
		}
		parentTree = pc.TreeHash
		parents = []plumbing.Hash{parent}
	}
	if ts.root == parentTree {
		if err := lk.commit(idx); err != nil { // keep refreshed stat data
			return CommitResult{}, err
		}
		return CommitResult{}, fmt.Errorf("%w: nothing to commit on %s", ErrPrecondition, ref.Short())
	}
	var changes []Change
	if err := ts.diff(s, parentTree, "", &changes); err != nil {
		return CommitResult{}, err
	}
	if err := ts.store(s); err != nil {
		return CommitResult{}, err
	}
	if err := lk.commit(idx); err != nil {
		return CommitResult{}, err
	}
	when := k.now()
	sig := object.Signature{Name: id.Name, Email: id.Email, When: when}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: ts.root, ParentHashes: parents}
	h, err := k.storeSigned(s, c)
	if err != nil {
		return CommitResult{}, err
	}
	var old *plumbing.Reference
	if !parent.IsZero() {
		old = plumbing.NewHashReference(ref, parent)
	}
	if err := s.CheckAndSetReference(plumbing.NewHashReference(ref, h), old); err != nil {
		return CommitResult{}, fmt.Errorf("%w: %s moved while committing (retry): %w", ErrPrecondition, ref.Short(), err)
	}
	stmt := Statement{Commit: h.String(), Branch: ref.Short(), Launch: l.ID, Account: l.Account, Manifest: l.ManifestDigest, Time: when.UTC().Unix()}
	if err := k.addNote(w, h, stmt, id); err != nil {
		k.log.Error("note not written", slog.String("commit", h.String()), slog.String("error", err.Error()))
	}
	k.record(l, Write{Kind: "commit", Target: h.String(), Summary: ref.Short() + ": " + firstLine(msg)})
	return CommitResult{Commit: h.String(), Branch: ref.Short(), Files: changes}, nil
}

func cleanMessage(m string) (string, error) {
	if strings.ContainsRune(m, 0) {
		return "", fmt.Errorf("%w: commit message contains NUL", ErrInvalid)
	}
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(m, "\r\n", "\n"), "\n") {
		lines = append(lines, strings.TrimRight(l, " \t"))
	}
	m = strings.Trim(strings.Join(lines, "\n"), "\n")
	if m == "" {
		return "", fmt.Errorf("%w: empty commit message", ErrInvalid)
	}
	if len(m) > 1<<20 {
		return "", fmt.Errorf("%w: commit message over 1 MiB", ErrInvalid)
	}
	return m + "\n", nil
}

// storeSigned signs c (SSHSIG, namespace git, in the gpgsig header) and
// stores it.
func (k *Keeper) storeSigned(s interface {
	NewEncodedObject() plumbing.EncodedObject
	SetEncodedObject(plumbing.EncodedObject) (plumbing.Hash, error)
}, c *object.Commit) (plumbing.Hash, error) {
	unsigned := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(unsigned); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: encode commit: %w", ErrInternal, err)
	}
	r, err := unsigned.Reader()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: encode commit: %w", ErrInternal, err)
	}
	sig, err := k.key.SignSSH("git", r)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	c.PGPSignature = string(sig)
	obj := s.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: encode commit: %w", ErrInternal, err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: store commit: %w", ErrInternal, err)
	}
	return h, nil
}

// commitPayload returns the commit's bytes without its signature: what the
// gpgsig header signs.
func commitPayload(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err = io.Copy(&b, r)
	return b.Bytes(), err
}
