package keeper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A walk over one of the policy's ceilings is refused with the exact
// reason, leaves HEAD and the index as they were and gives back the locks;
// one at the ceiling commits. The fixture's repository starts with four
// entries: README, .gitignore, src and src/a.go (.git is not counted).
func TestWalkCeilings(t *testing.T) {
	chain := func(n int) string { return strings.TrimSuffix(strings.Repeat("d/", n), "/") }
	files := func(dir string, n, size int) func(t *testing.T, repo string) {
		return func(t *testing.T, repo string) {
			for i := 0; i < n; i++ {
				writeFile(t, filepath.Join(repo, dir, fmt.Sprintf("f%02d", i)), strings.Repeat("x", size))
			}
		}
	}
	limits := Limits{MaxEntries: 50, MaxDepth: 8, MaxBytes: 200}
	cases := []struct {
		name  string
		make  func(t *testing.T, repo string)
		paths []string // nil: commit -a
		want  string   // "": commits
	}{
		{"entries over", files("many", 46, 1), nil,
			"too large: more than 50 files, directories and symlinks to walk, over keeperd's ceiling (policy limits.max_entries): ignore generated trees in .gitignore, name fewer paths, or commit on the host"},
		{"entries over in a named directory", files("many", 51, 1), []string{"many"},
			"too large: more than 50 files, directories and symlinks to walk, over keeperd's ceiling (policy limits.max_entries): ignore generated trees in .gitignore, name fewer paths, or commit on the host"},
		{"entries at the ceiling", files("many", 45, 1), nil, ""},
		{"entries in an ignored directory", files("build", 100, 1), nil, "nothing"},
		{"depth over", files(chain(9), 1, 1), nil,
			`too large: directory "d/d/d/d/d/d/d/d/d" is nested 9 deep, over keeperd's ceiling of 8 (policy limits.max_depth): flatten it, or commit it on the host`},
		{"depth over, file named", files(chain(9), 1, 1), []string{chain(9) + "/f00"},
			`too large: directory "d/d/d/d/d/d/d/d/d" is nested 9 deep, over keeperd's ceiling of 8 (policy limits.max_depth): flatten it, or commit it on the host`},
		{"depth over, directory named", files(chain(9), 1, 1), []string{chain(9)},
			`too large: directory "d/d/d/d/d/d/d/d/d" is nested 9 deep, over keeperd's ceiling of 8 (policy limits.max_depth): flatten it, or commit it on the host`},
		{"depth at the ceiling", files(chain(8), 1, 1), nil, ""},
		{"bytes over", files("big", 1, 201), nil,
			`too large: staging "big/f00" would read more than 200 bytes of changed files in one request, over keeperd's ceiling (policy limits.max_bytes): commit in parts, or on the host`},
		{"bytes under the ceiling", files("big", 2, 80), nil, ""}, // and README, .gitignore, a.go if racy
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(p *Policy) { p.Limits = limits })
			tc.make(t, f.repo)
			head := run(t, f.repo, "git", "rev-parse", "HEAD")
			index, err := os.ReadFile(filepath.Join(f.repo, ".git", "index"))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			_, err = f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: tc.paths == nil, Paths: tc.paths})
			switch tc.want {
			case "":
				if err != nil {
					t.Fatalf("commit at the ceiling: %v", err)
				}
				return
			case "nothing":
				if !errors.Is(err, ErrPrecondition) {
					t.Fatalf("commit of only ignored files: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant  %q", err, tc.want)
			}
			if got := run(t, f.repo, "git", "rev-parse", "HEAD"); got != head {
				t.Fatalf("HEAD moved: %s -> %s", head, got)
			}
			if after, err := os.ReadFile(filepath.Join(f.repo, ".git", "index")); err != nil || string(after) != string(index) {
				t.Fatalf("index changed by a refused commit (%v)", err)
			}
			if _, err := os.Stat(filepath.Join(f.repo, ".git", "index.lock")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("index.lock left behind: %v", err)
			}
			if tc.paths == nil {
				if _, err := f.k.Status(ctx, f.launch); !errors.Is(err, ErrTooLarge) || err.Error() != tc.want {
					t.Fatalf("status: %v, want %q", err, tc.want)
				}
			}
			// The repository and index locks were given back.
			writeFile(t, filepath.Join(f.repo, "README"), "after\n")
			if _, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", Paths: []string{"README"}}); err != nil {
				t.Fatalf("commit after the refusal: %v", err)
			}
		})
	}
}
