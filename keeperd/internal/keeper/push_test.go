package keeper

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// gitServer is `git http-backend` behind a TLS httptest server on loopback,
// requiring a token.
type gitServer struct {
	root   string // GIT_PROJECT_ROOT
	url    string // https://127.0.0.1:PORT/git/proj.git
	caFile string
	token  string
	tokenF string
	// gate, when set, holds the requests it matches until released.
	gate atomic.Pointer[gate]
}

// gate stalls the git server: a request it matches is held, after the
// connection is accepted and the TLS handshake done, until release is
// closed (or the client gives up), as a slow or hanging remote would.
type gate struct {
	match   func(*http.Request) bool
	held    chan string // the held request's path and query, one per request
	release chan struct{}
}

// holdReceivePack makes g hold every request of the receive-pack service
// (the ref advertisement a push starts with, and the push itself) until the
// returned release func is called (also at cleanup).
func (g *gitServer) holdReceivePack(t *testing.T) (held <-chan string, release func()) {
	gt := &gate{
		match: func(r *http.Request) bool {
			return r.URL.Query().Get("service") == "git-receive-pack" || strings.HasSuffix(r.URL.Path, "/git-receive-pack")
		},
		held:    make(chan string, 16),
		release: make(chan struct{}),
	}
	g.gate.Store(gt)
	var once sync.Once
	release = func() { once.Do(func() { g.gate.Store(nil); close(gt.release) }) }
	t.Cleanup(release)
	return gt.held, release
}

func newGitServer(t *testing.T) *gitServer {
	t.Helper()
	needTool(t, "git")
	execPath := strings.TrimSpace(run(t, t.TempDir(), "git", "--exec-path"))
	backend := filepath.Join(execPath, "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("git-http-backend not found at %s (apt-get install -y git)", backend)
	}
	base := t.TempDir()
	srv := filepath.Join(base, "srv")
	os.MkdirAll(srv, 0o755)
	run(t, srv, "git", "init", "-q", "--bare", "-b", "main", "proj.git")
	run(t, filepath.Join(srv, "proj.git"), "git", "config", "http.receivepack", "true")
	run(t, srv, "git", "init", "-q", "--bare", "-b", "main", "evil.git")
	run(t, filepath.Join(srv, "evil.git"), "git", "config", "http.receivepack", "true")
	token := "tok-" + strings.Repeat("s3cr3t", 4)
	h := &cgi.Handler{
		Path: backend,
		Root: "/git",
		Env:  []string{"GIT_PROJECT_ROOT=" + srv, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=keeper", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + base},
	}
	g := &gitServer{root: srv, caFile: filepath.Join(base, "ca.pem"), token: token, tokenF: filepath.Join(base, "token")}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gt := g.gate.Load(); gt != nil && gt.match(r) {
			select {
			case gt.held <- r.URL.RequestURI():
			default:
			}
			select {
			case <-gt.release:
			case <-r.Context().Done():
				return
			}
		}
		_, pw, ok := r.BasicAuth()
		if !ok || pw != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	os.WriteFile(g.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	os.WriteFile(g.tokenF, []byte(token+"\n"), 0o600)
	g.url = ts.URL + "/git/proj.git"
	return g
}

func (g *gitServer) remote() Remote {
	return Remote{URL: g.url, TokenFile: g.tokenF, CAFile: g.caFile}
}

func (g *gitServer) rev(t *testing.T, repo, ref string) string {
	out, err := runErr(filepath.Join(g.root, repo), "git", "rev-parse", "--verify", "-q", ref)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func pushFixture(t *testing.T, mutate func(p *Policy)) (*fixture, *gitServer) {
	g := newGitServer(t)
	f := newFixture(t, func(p *Policy) {
		p.Repos[0].Remotes = map[string]Remote{"origin": g.remote()}
		p.Repos[0].DefaultRemote = "origin"
		if mutate != nil {
			mutate(p)
		}
	})
	return f, g
}

func TestPushAllowedBranch(t *testing.T) {
	f, g := pushFixture(t, nil)
	ctx := context.Background()
	writeFile(t, filepath.Join(f.repo, "README"), "v2\n")
	c, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "v2", All: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.k.Push(ctx, f.launch, PushRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Remote != "origin" || res.Ref != "refs/heads/main" || res.Old != "" || res.New != c.Commit || res.Commits != 2 {
		t.Fatalf("push = %+v", res)
	}
	if got := g.rev(t, "proj.git", "main"); got != c.Commit {
		t.Fatalf("server main = %q, want %q", got, c.Commit)
	}
	// Fast-forward.
	writeFile(t, filepath.Join(f.repo, "README"), "v3\n")
	c3, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "v3", All: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err = f.k.Push(ctx, f.launch, PushRequest{Remote: "origin", Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Old != c.Commit || res.New != c3.Commit || res.Commits != 1 || g.rev(t, "proj.git", "main") != c3.Commit {
		t.Fatalf("push = %+v", res)
	}
	// The pushed commit verifies on the server side too.
	allowed := f.allowedSigners(t)
	run(t, filepath.Join(g.root, "proj.git"), "git", "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", c3.Commit)
	w := f.k.Writes("L1")
	if len(w) != 4 || w[3].Kind != "push" || w[3].Target != "origin refs/heads/main" {
		t.Fatalf("writes = %+v", w)
	}
}

func TestPushRefusals(t *testing.T) {
	f, g := pushFixture(t, func(p *Policy) {
		p.Repos[0].Remotes["bad-token"] = Remote{URL: p.Repos[0].Remotes["origin"].URL, CAFile: p.Repos[0].Remotes["origin"].CAFile}
	})
	ctx := context.Background()
	if _, err := f.k.Push(ctx, f.launch, PushRequest{}); err != nil {
		t.Fatal(err)
	}
	serverMain := g.rev(t, "proj.git", "main")
	// Rewrite main on the host so the remote's main is no longer an ancestor.
	run(t, f.repo, "git", "commit", "-q", "--amend", "-m", "rewritten")
	run(t, f.repo, "git", "branch", "release")
	run(t, f.repo, "git", "tag", "v1")
	cases := []struct {
		name string
		req  PushRequest
		kind error
		want string
	}{
		{"non-fast-forward", PushRequest{Ref: "main"}, ErrDenied, "denied: non-fast-forward: main on origin has commits this push would drop (fetch and merge on the host)"},
		{"force", PushRequest{Ref: "main", Force: true}, ErrDenied, "denied: force push is not allowed by policy"},
		{"delete", PushRequest{Ref: ":main"}, ErrDenied, `denied: ":main": refspecs and deletes are never allowed (name one branch)`},
		{"refspec", PushRequest{Ref: "main:other"}, ErrDenied, `denied: "main:other": refspecs and deletes are never allowed (name one branch)`},
		{"disallowed branch", PushRequest{Ref: "release"}, ErrDenied, `denied: branch "release" is not allowed by policy`},
		{"tag", PushRequest{Ref: "refs/tags/v1"}, ErrDenied, "denied: pushing tags is not allowed by policy"},
		{"other ref namespace", PushRequest{Ref: "refs/notes/claude-box"}, ErrDenied, `denied: "refs/notes/claude-box": only branches (and tags, if policy allows) may be pushed`},
		{"remote not in policy", PushRequest{Remote: "evil"}, ErrDenied, `denied: remote "evil" is not in policy`},
		{"no credentials", PushRequest{Remote: "bad-token"}, ErrDenied, `denied: remote "bad-token" refused our credentials`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.k.Push(ctx, f.launch, tc.req)
			if !errors.Is(err, tc.kind) || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
	if g.rev(t, "proj.git", "main") != serverMain || g.rev(t, "proj.git", "release") != "" || g.rev(t, "proj.git", "v1") != "" {
		t.Fatal("a refused push changed the server")
	}
}

func TestPushTagsWhenAllowed(t *testing.T) {
	f, g := pushFixture(t, func(p *Policy) { p.Tags = true })
	ctx := context.Background()
	run(t, f.repo, "git", "tag", "v1")
	if _, err := f.k.Push(ctx, f.launch, PushRequest{Ref: "refs/tags/v1"}); err != nil {
		t.Fatal(err)
	}
	if g.rev(t, "proj.git", "v1") == "" {
		t.Fatal("tag not pushed")
	}
	// An annotated tag is pushed as the tag object, as git pushes it.
	run(t, f.repo, "git", "tag", "-a", "-m", "release", "v1.1")
	want := strings.TrimSpace(run(t, f.repo, "git", "rev-parse", "refs/tags/v1.1"))
	res, err := f.k.Push(ctx, f.launch, PushRequest{Ref: "refs/tags/v1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.New != want || g.rev(t, "proj.git", "refs/tags/v1.1") != want {
		t.Fatalf("annotated tag push = %+v, server has %q, want tag object %s", res, g.rev(t, "proj.git", "refs/tags/v1.1"), want)
	}
	run(t, f.repo, "git", "commit", "-q", "--allow-empty", "-m", "next")
	run(t, f.repo, "git", "tag", "-f", "v1")
	_, err = f.k.Push(ctx, f.launch, PushRequest{Ref: "refs/tags/v1"})
	if !errors.Is(err, ErrDenied) || err.Error() != "denied: tag v1 already exists on origin (tags are never moved)" {
		t.Fatalf("err = %v", err)
	}
}

// The repository's own configuration cannot redirect a push: url.insteadOf,
// remote.*.pushurl, remote.*.url and core.sshCommand are never read.
func TestPushIgnoresRepoConfigRedirects(t *testing.T) {
	f, g := pushFixture(t, nil)
	ctx := context.Background()
	canary := filepath.Join(t.TempDir(), "canary")
	evil := strings.Replace(g.url, "proj.git", "evil.git", 1)
	run(t, f.repo, "git", "remote", "add", "origin", evil)
	run(t, f.repo, "git", "config", "remote.origin.pushurl", evil)
	run(t, f.repo, "git", "config", "url."+evil+".insteadOf", g.url)
	run(t, f.repo, "git", "config", "url."+evil+".pushInsteadOf", g.url)
	run(t, f.repo, "git", "config", "core.sshCommand", "touch "+canary)
	run(t, f.repo, "git", "config", "remote.origin.receivepack", "touch "+canary)
	for _, hook := range []string{"pre-push", "reference-transaction", "post-update"} {
		if err := os.WriteFile(filepath.Join(f.repo, ".git", "hooks", hook), []byte("#!/bin/sh\ntouch "+canary+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	res, err := f.k.Push(ctx, f.launch, PushRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if g.rev(t, "proj.git", "main") != res.New {
		t.Fatal("push did not reach the policy URL")
	}
	if g.rev(t, "evil.git", "main") != "" {
		t.Fatal("push went to the URL from the repo config")
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("a command from the repo config ran")
	}
}

func TestPushNeverLeaksToken(t *testing.T) {
	f, g := pushFixture(t, nil)
	ctx := context.Background()
	var errs []string
	if _, err := f.k.Push(ctx, f.launch, PushRequest{}); err != nil {
		errs = append(errs, err.Error())
	}
	_, err := f.k.Push(ctx, f.launch, PushRequest{Ref: "nope"})
	errs = append(errs, fmt.Sprint(err))
	all := strings.Join(errs, "\n") + f.logs.String()
	if strings.Contains(all, g.token) {
		t.Fatal("token leaked")
	}
}
