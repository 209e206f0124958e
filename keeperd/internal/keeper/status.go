package keeper

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Status is what `keeper commit -a` would commit now.
type Status struct {
	// Branch is the current branch, empty when HEAD is detached.
	Branch string
	// Head is the current commit, empty on an unborn branch.
	Head string
	// Files are the changes relative to HEAD.
	Files []Change
}

// Status reports the launch repository's branch, head and changes. It reads
// and hashes but writes nothing.
func (k *Keeper) Status(ctx context.Context, l Launch) (Status, error) {
	p := k.Policy()
	_, dir, err := bind(p, l)
	if err != nil {
		return Status{}, err
	}
	w, err := openWorktree(dir)
	if err != nil {
		return Status{}, err
	}
	defer w.Close()
	var out Status
	var head plumbing.Hash
	ref, err := w.branch()
	switch {
	case err == nil:
		out.Branch = ref.Short()
		head, err = w.tip(ref)
		if err != nil {
			return Status{}, err
		}
	case errors.Is(err, ErrPrecondition):
		r, err := w.repo.Storer.Reference(plumbing.HEAD)
		if err != nil {
			return Status{}, fmt.Errorf("%w: read HEAD: %w", ErrInternal, err)
		}
		head = r.Hash()
	default:
		return Status{}, err
	}
	lk := &indexLock{path: w.gitDir + "/index"}
	idx, mtime, err := lk.read()
	if err != nil {
		return Status{}, err
	}
	excludes, err := excludesFile(k.getenv, w, out.Branch)
	if err != nil {
		return Status{}, err
	}
	st, err := newStager(w, idx, mtime, false, excludes)
	if err != nil {
		return Status{}, err
	}
	st.ctx = ctx
	st.limits = p.limits()
	if err := st.stageAll(""); err != nil {
		return Status{}, err
	}
	if err := checkCtx(ctx); err != nil {
		return Status{}, err
	}
	ts, err := buildTrees(st.entries())
	if err != nil {
		return Status{}, err
	}
	var headTree plumbing.Hash
	if !head.IsZero() {
		out.Head = head.String()
		c, err := object.GetCommit(w.repo.Storer, head)
		if err != nil {
			return Status{}, fmt.Errorf("%w: read %s: %w", ErrInternal, head, err)
		}
		headTree = c.TreeHash
	}
	if err := ts.diff(w.repo.Storer, headTree, "", &out.Files); err != nil {
		return Status{}, err
	}
	return out, nil
}
