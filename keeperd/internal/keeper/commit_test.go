package keeper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func changedPaths(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Kind[:1]+" "+c.Path)
	}
	sort.Strings(out)
	return out
}

func TestCommitAllVerifiesWithGit(t *testing.T) {
	needTool(t, "ssh-keygen")
	f := newFixture(t, nil)
	ctx := context.Background()
	writeFile(t, filepath.Join(f.repo, "README"), "hello again\n")
	writeFile(t, filepath.Join(f.repo, "src", "b.go"), "package a // b\n")
	writeFile(t, filepath.Join(f.repo, "debug.log"), "ignored\n")
	writeFile(t, filepath.Join(f.repo, "build", "out"), "ignored dir\n")
	if err := os.Remove(filepath.Join(f.repo, "src", "a.go")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../README", filepath.Join(f.repo, "src", "link")); err != nil {
		t.Fatal(err)
	}
	res, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "change things\n\nbody  \n", All: true})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(changedPaths(res.Files), ",")
	if want := "a src/b.go,a src/link,d src/a.go,m README"; got != want {
		t.Fatalf("files = %q, want %q", got, want)
	}
	if res.Branch != "main" {
		t.Fatalf("branch = %q", res.Branch)
	}
	allowed := f.allowedSigners(t)
	run(t, f.repo, "git", "config", "gpg.ssh.allowedSignersFile", allowed)
	out := run(t, f.repo, "git", "verify-commit", "-v", res.Commit)
	_ = out
	if got := strings.TrimSpace(run(t, f.repo, "git", "log", "-1", "--format=%G? %an <%ae> %cn %s")); got != "G Claude <claude@example.com> Claude change things" {
		t.Fatalf("git log = %q", got)
	}
	if got := run(t, f.repo, "git", "log", "-1", "--format=%B"); got != "change things\n\nbody\n\n" {
		t.Fatalf("message = %q", got)
	}
	run(t, f.repo, "git", "fsck", "--strict", "--no-progress")
	// The index matches the commit: nothing staged, nothing left but ignored files.
	if st := run(t, f.repo, "git", "status", "--porcelain"); st != "" {
		t.Fatalf("git status after commit:\n%s", st)
	}
	// The note is a statement signed by the same key.
	v, err := VerifyCommit(f.repo, "HEAD", f.key.PublicKey(), true)
	if err != nil {
		t.Fatal(err)
	}
	if v.Statement.Launch != "L1" || v.Statement.Account != "default" || v.Statement.Manifest != "sha256:abc" || v.Statement.Commit != res.Commit {
		t.Fatalf("statement = %+v", v.Statement)
	}
	if n := run(t, f.repo, "git", "notes", "--ref=claude-box", "show", res.Commit); !strings.Contains(n, "launch L1") {
		t.Fatalf("git notes show = %q", n)
	}
	// ssh-keygen verifies the signature over the payload directly.
	w, _ := f.k.Writes("L1"), 0
	if len(w) != 1 || w[0].Kind != "commit" || w[0].Target != res.Commit {
		t.Fatalf("writes = %+v", w)
	}
}

func TestCommitPaths(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	writeFile(t, filepath.Join(f.repo, "README"), "changed\n")
	writeFile(t, filepath.Join(f.repo, "src", "a.go"), "package a // changed\n")
	writeFile(t, filepath.Join(f.repo, "docs", "x.md"), "new\n")
	res, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", Paths: []string{"./README", "docs"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(changedPaths(res.Files), ","); got != "a docs/x.md,m README" {
		t.Fatalf("files = %q", got)
	}
	if st := run(t, f.repo, "git", "status", "--porcelain"); st != " M src/a.go\n" {
		t.Fatalf("status = %q", st)
	}
	// A deleted listed path is staged as a deletion.
	os.Remove(filepath.Join(f.repo, "src", "a.go"))
	res, err = f.k.Commit(ctx, f.launch, CommitRequest{Message: "rm", Paths: []string{"src/a.go"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(changedPaths(res.Files), ","); got != "d src/a.go" {
		t.Fatalf("files = %q", got)
	}
	run(t, f.repo, "git", "fsck", "--strict", "--no-progress")
}

func TestCommitRefusals(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret"), "host secret\n")
	os.Symlink(outside, filepath.Join(f.repo, "escape"))
	os.Symlink("/etc/passwd", filepath.Join(f.repo, "abslink"))
	writeFile(t, filepath.Join(f.repo, "README"), "dirty\n")
	cases := []struct {
		name string
		req  CommitRequest
		kind error
		want string
	}{
		{"dotdot", CommitRequest{Message: "m", Paths: []string{"../x"}}, ErrPath, `path refused: "../x" contains ".."`},
		{"dotdot inside", CommitRequest{Message: "m", Paths: []string{"src/../README"}}, ErrPath, `path refused: "src/../README" contains ".."`},
		{"absolute", CommitRequest{Message: "m", Paths: []string{"/etc/passwd"}}, ErrPath, `path refused: "/etc/passwd" is absolute (paths are relative to the worktree root)`},
		{"dot git", CommitRequest{Message: "m", Paths: []string{".git/config"}}, ErrPath, `path refused: ".git/config" is inside .git`},
		{"dot git case", CommitRequest{Message: "m", Paths: []string{"sub/.GIT/hooks"}}, ErrPath, `path refused: "sub/.GIT/hooks" is inside .git`},
		{"symlink parent", CommitRequest{Message: "m", Paths: []string{"escape/secret"}}, ErrPath, `path refused: "escape/secret": "escape" is a symlink`},
		{"symlink out", CommitRequest{Message: "m", Paths: []string{"abslink"}}, ErrPath, `path refused: "abslink" is a symlink leading outside the worktree`},
		{"symlink dir out", CommitRequest{Message: "m", Paths: []string{"escape"}}, ErrPath, `path refused: "escape" is a symlink leading outside the worktree`},
		{"all with symlink out", CommitRequest{Message: "m", All: true}, ErrPath, `path refused: "abslink" is a symlink leading outside the worktree`},
		{"no match", CommitRequest{Message: "m", Paths: []string{"nope"}}, ErrInvalid, `invalid request: "nope" matches no file`},
		{"empty message", CommitRequest{Message: " \n", All: true}, ErrInvalid, "invalid request: empty commit message"},
		{"nothing selected", CommitRequest{Message: "m"}, ErrInvalid, "invalid request: nothing selected: pass -a or the paths to commit"},
		{"author not in policy", CommitRequest{Message: "m", Paths: []string{"README"}, Author: "Mallory <m@evil>"}, ErrDenied, `denied: author "Mallory <m@evil>" is not an identity in policy`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.k.Commit(ctx, f.launch, tc.req)
			if !errors.Is(err, tc.kind) || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if got := run(t, f.repo, "git", "rev-list", "--count", "HEAD"); strings.TrimSpace(got) != "1" {
		t.Fatalf("a refused commit was made: %s commits", got)
	}
	if _, err := os.Stat(filepath.Join(f.repo, ".git", "index.lock")); err == nil {
		t.Fatal("index.lock left behind")
	}
}

func TestCommitStates(t *testing.T) {
	ctx := context.Background()
	t.Run("nothing to commit", func(t *testing.T) {
		f := newFixture(t, nil)
		_, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true})
		if !errors.Is(err, ErrPrecondition) || err.Error() != "failed precondition: nothing to commit on main" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("detached head", func(t *testing.T) {
		f := newFixture(t, nil)
		run(t, f.repo, "git", "checkout", "-q", "--detach")
		writeFile(t, filepath.Join(f.repo, "README"), "x\n")
		_, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true})
		if !errors.Is(err, ErrPrecondition) || err.Error() != "failed precondition: HEAD is detached; check out a branch on the host first" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("branch not allowed", func(t *testing.T) {
		f := newFixture(t, nil)
		run(t, f.repo, "git", "checkout", "-q", "-b", "release")
		writeFile(t, filepath.Join(f.repo, "README"), "x\n")
		_, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true})
		if !errors.Is(err, ErrDenied) || err.Error() != `denied: branch "release" is not allowed by policy (commit on an allowed branch, or add it to branches)` {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("glob branch allowed", func(t *testing.T) {
		f := newFixture(t, nil)
		run(t, f.repo, "git", "checkout", "-q", "-b", "claude/x/y")
		writeFile(t, filepath.Join(f.repo, "README"), "x\n")
		if _, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("repo outside roots", func(t *testing.T) {
		f := newFixture(t, nil)
		other := testRepo(t, t.TempDir(), "other")
		l := f.launch
		l.Repo = other
		_, err := f.k.Commit(ctx, l, CommitRequest{Message: "m", All: true})
		if !errors.Is(err, ErrDenied) || !strings.HasSuffix(err.Error(), "is not under a repo root in policy") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("door never pinned", func(t *testing.T) {
		f := newFixture(t, nil)
		writeFile(t, filepath.Join(f.repo, "README"), "x\n")
		l := f.launch
		l.Pin = nil
		_, err := f.k.Commit(ctx, l, CommitRequest{Message: "m", All: true})
		if !errors.Is(err, ErrDenied) || !strings.HasSuffix(err.Error(), "this door's repository was not checked when the door was minted") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("requested author in policy", func(t *testing.T) {
		f := newFixture(t, nil)
		writeFile(t, filepath.Join(f.repo, "README"), "x\n")
		if _, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true, Author: "Alt <alt@example.com>"}); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(run(t, f.repo, "git", "log", "-1", "--format=%an %cn")); got != "Alt Alt" {
			t.Fatalf("author = %q", got)
		}
	})
	t.Run("rate", func(t *testing.T) {
		f := newFixture(t, func(p *Policy) { p.Rate.CommitsPerLaunch = 1 })
		writeFile(t, filepath.Join(f.repo, "README"), "x\n")
		if _, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true}); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(f.repo, "README"), "y\n")
		_, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true})
		if !errors.Is(err, ErrRateLimited) || err.Error() != "rate limited: this launch has used its 1 commits (policy rate)" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unborn branch", func(t *testing.T) {
		f := newFixture(t, nil)
		run(t, f.repo, "git", "checkout", "-q", "--orphan", "claude/fresh")
		res, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "root", All: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Files) != 3 {
			t.Fatalf("files = %v", res.Files)
		}
		run(t, f.repo, "git", "fsck", "--strict", "--no-progress")
	})
}

// Hooks planted in the worktree and in .git/hooks never run.
func TestHooksNeverRun(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	canary := filepath.Join(t.TempDir(), "canary")
	hook := "#!/bin/sh\ntouch " + canary + "\n"
	for _, name := range []string{"pre-commit", "commit-msg", "post-commit", "prepare-commit-msg", "pre-push", "post-index-change", "reference-transaction"} {
		if err := os.WriteFile(filepath.Join(f.repo, ".git", "hooks", name), []byte(hook), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(f.repo, "hooks", name), hook)
		os.Chmod(filepath.Join(f.repo, "hooks", name), 0o755)
	}
	run(t, f.repo, "git", "config", "core.hooksPath", filepath.Join(f.repo, "hooks"))
	run(t, f.repo, "git", "config", "core.fsmonitor", filepath.Join(f.repo, "hooks", "pre-commit"))
	writeFile(t, filepath.Join(f.repo, ".gitattributes"), "*.dat filter=evil\n")
	writeFile(t, filepath.Join(f.repo, "x.dat"), "data\n")
	run(t, f.repo, "git", "config", "filter.evil.clean", "touch "+canary)
	// A filtered path is refused, not silently committed unfiltered.
	_, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true})
	if !errors.Is(err, ErrPrecondition) || err.Error() != `failed precondition: "x.dat" is routed through filter "evil" by .gitattributes; keeperd runs no filters: commit it on the host` {
		t.Fatalf("err = %v", err)
	}
	_, err = f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", Paths: []string{"x.dat"}})
	if !errors.Is(err, ErrPrecondition) {
		t.Fatalf("err = %v", err)
	}
	os.Remove(filepath.Join(f.repo, "x.dat"))
	if _, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "m", All: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.k.Status(ctx, f.launch); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("a hook, fsmonitor or filter ran")
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, nil)
	writeFile(t, filepath.Join(f.repo, "README"), "changed\n")
	writeFile(t, filepath.Join(f.repo, "new.txt"), "new\n")
	writeFile(t, filepath.Join(f.repo, "x.log"), "ignored\n")
	st, err := f.k.Status(context.Background(), f.launch)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(changedPaths(st.Files), ","); st.Branch != "main" || len(st.Head) != 40 || got != "a new.txt,m README" {
		t.Fatalf("status = %+v", st)
	}
	if _, err := os.Stat(filepath.Join(f.repo, ".git", "index.lock")); err == nil {
		t.Fatal("status locked the index")
	}
}

func TestSetPolicyAppliesToLaterRequests(t *testing.T) {
	f := newFixture(t, nil)
	writeFile(t, filepath.Join(f.repo, "README"), "x\n")
	f.k.SetPolicy(nil)
	_, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
	if !errors.Is(err, ErrDenied) || !strings.HasSuffix(err.Error(), "is not under a repo root in policy") {
		t.Fatalf("err = %v", err)
	}
}

// Two launches committing in the same repository at once both succeed, one
// after the other, and the history is linear.
func TestConcurrentCommits(t *testing.T) {
	f := newFixture(t, nil)
	writeFile(t, filepath.Join(f.repo, "a"), "a\n")
	writeFile(t, filepath.Join(f.repo, "b"), "b\n")
	errs := make(chan error, 2)
	for i, p := range []string{"a", "b"} {
		l := f.launch
		l.ID = fmt.Sprintf("L%d", i)
		go func() {
			_, err := f.k.Commit(context.Background(), l, CommitRequest{Message: p, Paths: []string{p}})
			errs <- err
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.TrimSpace(run(t, f.repo, "git", "rev-list", "--count", "HEAD")); got != "3" {
		t.Fatalf("%s commits, want 3", got)
	}
	// Both notes are there (fanned out), readable by git and by keeperd.
	if notes := strings.Split(strings.TrimSpace(run(t, f.repo, "git", "notes", "--ref=claude-box", "list")), "\n"); len(notes) != 2 {
		t.Fatalf("notes: %q", notes)
	}
	for _, rev := range []string{"HEAD", "HEAD~1"} {
		if _, err := VerifyCommit(f.repo, rev, f.key.PublicKey(), true); err != nil {
			t.Fatal(err)
		}
	}
	if st := run(t, f.repo, "git", "status", "--porcelain"); st != "" {
		t.Fatalf("status:\n%s", st)
	}
	run(t, f.repo, "git", "fsck", "--strict", "--no-progress")
}

func TestFilterAttributes(t *testing.T) {
	f := newFixture(t, nil)
	writeFile(t, filepath.Join(f.repo, ".gitattributes"), "*.bin filter=lfs diff=lfs merge=lfs -text\n")
	writeFile(t, filepath.Join(f.repo, "sub", ".gitattributes"), "*.bin -filter\n")
	writeFile(t, filepath.Join(f.repo, ".git", "info", "attributes"), "special.txt filter=x\n")
	for _, p := range []string{"a.bin", "sub/b.bin", "special.txt", "c.txt", "deep/d.bin"} {
		writeFile(t, filepath.Join(f.repo, p), "content\n")
	}
	w, err := openWorktree(f.repo)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lk := &indexLock{path: filepath.Join(w.gitDir, "index")}
	idx, mt, _ := lk.read()
	st, err := newStager(w, idx, mt, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.stageAll(""); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"a.bin": "lfs", "sub/b.bin": "", "special.txt": "x", "c.txt": "", "deep/d.bin": "lfs"} {
		if got := st.filterOf(p); got != want {
			t.Errorf("filterOf(%q) = %q, want %q", p, got, want)
		}
	}
	// Status reports filtered paths; only committing them is refused.
	s, err := f.k.Status(context.Background(), f.launch)
	if err != nil || len(s.Files) != 7 {
		t.Fatalf("status = %+v, %v", s, err)
	}
	_, err = f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", Paths: []string{"sub", "c.txt"}})
	if err != nil {
		t.Fatal(err)
	}
}
