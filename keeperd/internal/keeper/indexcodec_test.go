package keeper

import (
	"bytes"
	"crypto/sha1"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// Our codec reads what git writes exactly as go-git's does, and git reads
// what ours writes (git status is clean, git fsck is happy).
func TestIndexCodecAgainstGit(t *testing.T) {
	dir := testRepo(t, t.TempDir(), "r")
	writeFile(t, filepath.Join(dir, "long", string(bytes.Repeat([]byte("n"), 200))), "x\n")
	os.Symlink("README", filepath.Join(dir, "link"))
	os.WriteFile(filepath.Join(dir, "exe"), []byte("#!/bin/sh\n"), 0o755)
	run(t, dir, "git", "add", "-A")
	run(t, dir, "git", "commit", "-q", "-m", "more")
	run(t, dir, "git", "update-index", "--skip-worktree", "README")
	run(t, dir, "git", "update-index", "--assume-unchanged", "exe")
	for _, version := range []string{"2", "3", "4"} {
		run(t, dir, "git", "update-index", "--index-version", version)
		b, err := os.ReadFile(filepath.Join(dir, ".git", "index"))
		if err != nil {
			t.Fatal(err)
		}
		ours, err := decodeIndex(b)
		if err != nil {
			t.Fatalf("v%s: %v", version, err)
		}
		theirs := &index.Index{}
		if err := index.NewDecoder(bytes.NewReader(b)).Decode(theirs); err != nil {
			t.Fatal(err)
		}
		if len(ours.valid) != 1 || !ours.valid[ours.Entries[indexOf(ours.Entries, "exe")]] {
			t.Fatalf("v%s: assume-unchanged entries %v, want exe alone", version, ours.valid)
		}
		if len(ours.Entries) != len(theirs.Entries) {
			t.Fatalf("v%s: %d entries, go-git %d", version, len(ours.Entries), len(theirs.Entries))
		}
		for i := range ours.Entries {
			a, b := ours.Entries[i], theirs.Entries[i]
			if a.Name != b.Name || a.Hash != b.Hash || a.Mode != b.Mode || a.Size != b.Size || !a.ModifiedAt.Equal(b.ModifiedAt) ||
				!a.CreatedAt.Equal(b.CreatedAt) || a.Inode != b.Inode || a.Dev != b.Dev || a.SkipWorktree != b.SkipWorktree || a.Stage != b.Stage {
				t.Fatalf("v%s entry %d: ours %+v\ngo-git %+v", version, i, a, b)
			}
		}
		var out bytes.Buffer
		if err := encodeIndex(&out, ours.Entries, ours.valid); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".git", "index"), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if st := run(t, dir, "git", "status", "--porcelain"); st != "" {
			t.Fatalf("v%s: git status after rewrite:\n%s", version, st)
		}
		if got := run(t, dir, "git", "ls-files", "-v", "README"); got != "S README\n" {
			t.Fatalf("skip-worktree lost: %q", got)
		}
		if got := run(t, dir, "git", "ls-files", "-v", "exe", "link"); got != "h exe\nH link\n" {
			t.Fatalf("assume-unchanged lost: %q", got)
		}
		back, err := decodeIndex(out.Bytes())
		if err != nil || len(back.Entries) != len(ours.Entries) || back.Version != 3 {
			t.Fatalf("re-read: %v %d v%d", err, len(back.Entries), back.Version)
		}
	}
	run(t, dir, "git", "fsck", "--no-progress")
}

func indexOf(es []*index.Entry, name string) int {
	for i, e := range es {
		if e.Name == name {
			return i
		}
	}
	return -1
}

func TestIndexCodecRefusals(t *testing.T) {
	dir := testRepo(t, t.TempDir(), "r")
	run(t, dir, "git", "update-index", "--split-index")
	b, _ := os.ReadFile(filepath.Join(dir, ".git", "index"))
	if _, err := decodeIndex(b); err == nil {
		t.Fatal("split index accepted")
	}
	b = append([]byte(nil), b...)
	b[20] ^= 1
	if _, err := decodeIndex(b); err == nil {
		t.Fatal("corrupt index accepted")
	}
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add([]byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x00"))
	f.Add([]byte("DIRC\x00\x00\x00\x04\x00\x00\x00\x01" + strings.Repeat("\x00", 60) + "\x00\x01\x00a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeIndex(b)
		// With a valid checksum, so the fuzzer gets past it to the entries.
		sum := sha1.Sum(b)
		_, _ = decodeIndex(append(b[:len(b):len(b)], sum[:]...))
	})
}
