package scout

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/scoutd/internal/extract"
)

const httpBackend = "/usr/lib/git-core/git-http-backend"

// gitRepo makes a work tree with a commit on main, a branch "feature" and
// an annotated tag "v1", plus a bare clone at root/octo/r.git. It returns
// the work tree and the root to serve.
func gitRepo(t testing.TB, files int) (work, root string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed (apt-get install git)")
	}
	if _, err := os.Stat(httpBackend); err != nil {
		t.Skipf("%s missing (apt-get install git)", httpBackend)
	}
	base := t.TempDir()
	work = filepath.Join(base, "work")
	root = filepath.Join(base, "srv")
	must := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+base,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(name string, data []byte, mode fs.FileMode) {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	must(work, "init", "-q", "-b", "main")
	write("README.md", []byte("# r\n"), 0o644)
	write("bin/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	blob := make([]byte, 200<<10)
	_, _ = rand.Read(blob)
	write("data/blob.bin", blob, 0o644)
	for i := range files {
		write(filepath.Join("many", itoa(i%50), "f"+itoa(i)+".txt"), []byte(strings.Repeat("line "+itoa(i)+"\n", 1+i%7)), 0o644)
	}
	if err := os.Symlink("../README.md", filepath.Join(work, "bin", "readme")); err != nil {
		t.Fatal(err)
	}
	must(work, "add", "-A")
	must(work, "commit", "-q", "-m", "one")
	must(work, "tag", "-a", "v1", "-m", "v1")
	must(work, "checkout", "-q", "-b", "feature")
	write("FEATURE", []byte("feature\n"), 0o644)
	must(work, "add", "-A")
	must(work, "commit", "-q", "-m", "two")
	must(work, "checkout", "-q", "main")
	if err := os.MkdirAll(filepath.Join(root, "octo"), 0o755); err != nil {
		t.Fatal(err)
	}
	must(base, "clone", "-q", "--bare", work, filepath.Join(root, "octo", "r.git"))
	return work, root
}

func gitHandler(root string) http.Handler {
	return &cgi.Handler{
		Path:   httpBackend,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		Stderr: io.Discard,
	}
}

// compareTree checks that every file, executable bit and symlink of work
// (without .git) is in got, byte for byte, and nothing else is.
func compareTree(t *testing.T, work, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(work, p)
		if rel == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		seen[rel] = true
		g := filepath.Join(got, rel)
		if d.Type()&fs.ModeSymlink != 0 {
			want, _ := os.Readlink(p)
			have, err := os.Readlink(g)
			if err != nil || have != want {
				t.Errorf("%s: symlink %q, %v; want %q", rel, have, err, want)
			}
			return nil
		}
		want, _ := os.ReadFile(p)
		have, err := os.ReadFile(g)
		if err != nil || !bytes.Equal(have, want) {
			t.Errorf("%s: content differs (%v)", rel, err)
		}
		wi, _ := d.Info()
		gi, err := os.Lstat(g)
		if err == nil && wi.Mode().Perm()&0o100 != gi.Mode().Perm()&0o100 {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			t.Errorf("extra file %s in snapshot", rel)
		}
		return nil
	})
}

func TestSnapshotRoundTrip(t *testing.T) {
	work, root := gitRepo(t, 30)
	e := newEnv(t)
	_, port := e.server(gitHandler(root))
	s := e.scout([]string{"git.test:" + port}, nil)
	url := "https://git.test:" + port + "/octo/r.git"

	for _, ref := range []string{"", "HEAD", "main", "v1", "refs/heads/main"} {
		t.Run("ref="+ref, func(t *testing.T) {
			var buf bytes.Buffer
			res, err := s.Snapshot(context.Background(), SnapshotRequest{URL: url, Ref: ref, Caveats: []guestroom.Caveat{{Key: "repo", Value: "octo/r"}}}, &buf)
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			sum := sha256.Sum256(buf.Bytes())
			if res.Size != int64(buf.Len()) || res.SHA256 != hex.EncodeToString(sum[:]) || len(res.Commit) != 40 {
				t.Errorf("result = %+v", res)
			}
			out := t.TempDir()
			if _, err := extract.Extract(&buf, out, extract.Limits{}); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			compareTree(t, work, out)
		})
	}
	var buf bytes.Buffer
	if _, err := s.Snapshot(context.Background(), SnapshotRequest{URL: url, Ref: "feature"}, &buf); err != nil {
		t.Fatalf("Snapshot feature: %v", err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("FEATURE")) {
		t.Errorf("feature branch snapshot lacks FEATURE")
	}
}

func TestSnapshotRefuses(t *testing.T) {
	_, root := gitRepo(t, 10)
	e := newEnv(t)
	_, port := e.server(gitHandler(root))
	s := e.scout([]string{"git.test:" + port, "private.test:" + port}, nil)
	url := "https://git.test:" + port + "/octo/r.git"
	for _, tc := range []struct {
		name   string
		req    SnapshotRequest
		reason string
	}{
		{"denied host", SnapshotRequest{URL: "https://evil.test:" + port + "/octo/r.git"}, "not_allowlisted"},
		{"http", SnapshotRequest{URL: "http://git.test:" + port + "/octo/r.git"}, ReasonHTTPNotAllowed},
		{"file scheme", SnapshotRequest{URL: "file:///tmp/r.git"}, "bad_scheme"},
		{"private address", SnapshotRequest{URL: "https://private.test:" + port + "/octo/r.git"}, "private_address"},
		{"unknown ref", SnapshotRequest{URL: url, Ref: "nope"}, ReasonRefNotFound},
		{"bad ref", SnapshotRequest{URL: url, Ref: "a..b"}, ReasonBadRequest},
		{"unknown repo", SnapshotRequest{URL: "https://git.test:" + port + "/octo/none.git"}, ReasonNotFound},
		{"too many files", SnapshotRequest{URL: url, MaxFiles: 3}, ReasonTooManyFiles},
		{"too large", SnapshotRequest{URL: url, MaxBytes: 1000}, ReasonTooLarge},
		{"repo caveat", SnapshotRequest{URL: url, Caveats: []guestroom.Caveat{{Key: "repo", Value: "octo/other"}}}, ReasonCaveatDenied},
		{"host caveat", SnapshotRequest{URL: url, Caveats: []guestroom.Caveat{{Key: "host", Value: ".github.com"}}}, ReasonCaveatDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := s.Snapshot(context.Background(), tc.req, &buf)
			if err == nil {
				t.Fatalf("Snapshot succeeded, want %s", tc.reason)
			}
			if got := reasonOf(t, err); got != tc.reason {
				t.Fatalf("reason = %s (%v), want %s", got, err, tc.reason)
			}
		})
	}
}
