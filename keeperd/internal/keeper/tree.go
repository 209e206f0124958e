package keeper

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// treeSet is the tree objects built from an index, keyed by directory.
type treeSet struct {
	trees map[string]*object.Tree
	objs  map[plumbing.Hash]plumbing.EncodedObject
	root  plumbing.Hash
}

// buildTrees encodes the tree objects for sorted index entries in memory.
func buildTrees(entries []*index.Entry) (*treeSet, error) {
	ts := &treeSet{trees: map[string]*object.Tree{"": {}}, objs: map[plumbing.Hash]plumbing.EncodedObject{}}
	// A name must be one entry of its tree: git fsck (and every hosting
	// service) rejects a tree with duplicate entries, and a file and a
	// directory of one name is how the index gets there (a file the index
	// keeps — assume-unchanged, skip-worktree, not named — that the box
	// replaced with a directory, or the reverse).
	files := make(map[string]bool, len(entries))
	conflict := func(name string) error {
		return fmt.Errorf("%w: %q would be both a file and a directory in the commit: name the path that changed from one to the other, or clear its assume-unchanged or skip-worktree bit on the host", ErrPrecondition, name)
	}
	for _, e := range entries {
		dir := ""
		parts := strings.Split(e.Name, "/")
		for i, name := range parts {
			full := path.Join(dir, name)
			if i == len(parts)-1 {
				if _, isDir := ts.trees[full]; isDir || files[full] {
					return nil, conflict(full)
				}
				files[full] = true
				ts.trees[dir].Entries = append(ts.trees[dir].Entries, object.TreeEntry{Name: name, Mode: e.Mode, Hash: e.Hash})
				break
			}
			if files[full] {
				return nil, conflict(full)
			}
			if _, ok := ts.trees[full]; !ok {
				ts.trees[full] = &object.Tree{}
				ts.trees[dir].Entries = append(ts.trees[dir].Entries, object.TreeEntry{Name: name, Mode: filemode.Dir})
			}
			dir = full
		}
	}
	h, err := ts.encode("")
	if err != nil {
		return nil, err
	}
	ts.root = h
	return ts, nil
}

func treeSortName(e object.TreeEntry) string {
	if e.Mode == filemode.Dir {
		return e.Name + "/"
	}
	return e.Name
}

func (ts *treeSet) encode(dir string) (plumbing.Hash, error) {
	t := ts.trees[dir]
	sort.Slice(t.Entries, func(i, j int) bool { return treeSortName(t.Entries[i]) < treeSortName(t.Entries[j]) })
	for i, e := range t.Entries {
		if e.Mode != filemode.Dir {
			continue
		}
		h, err := ts.encode(path.Join(dir, e.Name))
		if err != nil {
			return plumbing.ZeroHash, err
		}
		t.Entries[i].Hash = h
	}
	o := &plumbing.MemoryObject{}
	if err := t.Encode(o); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: encode tree: %w", ErrInternal, err)
	}
	t.Hash = o.Hash()
	ts.objs[t.Hash] = o
	return t.Hash, nil
}

// store writes the trees the object store does not have yet.
func (ts *treeSet) store(s storer.EncodedObjectStorer) error {
	for h, o := range ts.objs {
		if s.HasEncodedObject(h) == nil {
			continue
		}
		if _, err := s.SetEncodedObject(o); err != nil {
			return fmt.Errorf("%w: store tree: %w", ErrInternal, err)
		}
	}
	return nil
}

// Change is one path a commit changes relative to its parent.
type Change struct {
	// Path is relative to the worktree root.
	Path string
	// Kind is "added", "modified" or "deleted".
	Kind string
}

// diffTrees compares the stored tree old (zero: empty) with the in-memory
// tree dir of ts, skipping subtrees whose hashes are equal.
func (ts *treeSet) diff(s storer.EncodedObjectStorer, old plumbing.Hash, dir string, out *[]Change) error {
	var oldEntries []object.TreeEntry
	if !old.IsZero() {
		t, err := object.GetTree(s, old)
		if err != nil {
			return fmt.Errorf("%w: read tree %s: %w", ErrInternal, old, err)
		}
		oldEntries = t.Entries
	}
	var newEntries []object.TreeEntry
	if t, ok := ts.trees[dir]; ok {
		newEntries = t.Entries
	}
	oldBy := map[string]object.TreeEntry{}
	for _, e := range oldEntries {
		oldBy[e.Name] = e
	}
	newBy := map[string]object.TreeEntry{}
	for _, e := range newEntries {
		newBy[e.Name] = e
	}
	for _, ne := range newEntries {
		p := path.Join(dir, ne.Name)
		oe, had := oldBy[ne.Name]
		switch {
		case had && oe.Hash == ne.Hash && oe.Mode == ne.Mode:
		case ne.Mode == filemode.Dir && (!had || oe.Mode == filemode.Dir):
			var oh plumbing.Hash
			if had {
				oh = oe.Hash
			}
			if err := ts.diff(s, oh, p, out); err != nil {
				return err
			}
		case ne.Mode == filemode.Dir: // a file became a directory
			*out = append(*out, Change{Path: p, Kind: "deleted"})
			if err := ts.diff(s, plumbing.ZeroHash, p, out); err != nil {
				return err
			}
		case had && oe.Mode == filemode.Dir: // a directory became a file
			if err := ts.diffGone(s, oe.Hash, p, out); err != nil {
				return err
			}
			*out = append(*out, Change{Path: p, Kind: "added"})
		case had:
			*out = append(*out, Change{Path: p, Kind: "modified"})
		default:
			*out = append(*out, Change{Path: p, Kind: "added"})
		}
	}
	for _, oe := range oldEntries {
		if _, ok := newBy[oe.Name]; ok {
			continue
		}
		p := path.Join(dir, oe.Name)
		if oe.Mode == filemode.Dir {
			if err := ts.diffGone(s, oe.Hash, p, out); err != nil {
				return err
			}
			continue
		}
		*out = append(*out, Change{Path: p, Kind: "deleted"})
	}
	return nil
}

// diffGone lists every file of a stored tree as deleted.
func (ts *treeSet) diffGone(s storer.EncodedObjectStorer, h plumbing.Hash, dir string, out *[]Change) error {
	t, err := object.GetTree(s, h)
	if err != nil {
		return fmt.Errorf("%w: read tree %s: %w", ErrInternal, h, err)
	}
	for _, e := range t.Entries {
		p := path.Join(dir, e.Name)
		if e.Mode == filemode.Dir {
			if err := ts.diffGone(s, e.Hash, p, out); err != nil {
				return err
			}
			continue
		}
		*out = append(*out, Change{Path: p, Kind: "deleted"})
	}
	return nil
}
