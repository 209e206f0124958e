package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/client"
	"github.com/bounded-systems/claude-box/scoutd/internal/scouttest"
)

const token = "ghp_daemonTestToken_0123456789abcdef"

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type world struct {
	t        *testing.T
	ca       *scouttest.CA
	control  string
	door     string
	log      *syncBuf
	content  string // base URL
	git      string // base URL
	body     []byte
	work     string
	apiRec   *scouttest.Recorder
	otherRec *scouttest.Recorder
}

func startWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ca: scouttest.NewCA(t, "content.test", "git.test", "api.test", "other.test", "private.test"), log: &syncBuf{}}
	w.body = make([]byte, 1<<20+3)
	_, _ = rand.Read(w.body)
	w.otherRec = scouttest.NewRecorder(100)
	_, otherPort := w.ca.Server(t, w.otherRec.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(rw, "other") })))
	_, cport := w.ca.Server(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = rw.Write(make([]byte, 11<<20))
		case "/to-other":
			http.Redirect(rw, r, "https://other.test:"+otherPort+"/", http.StatusFound)
		default:
			_, _ = rw.Write(w.body)
		}
	}))
	var root string
	w.work, root = scouttest.Repo(t, map[string]string{"README.md": "hello\n", "dir/x.sh": "#!/bin/sh\n", "link": "symlink:README.md"}, "octo", "r")
	_, gport := w.ca.Server(t, scouttest.GitHandler(root))
	w.apiRec = scouttest.NewRecorder(100)
	_, aport := w.ca.Server(t, w.apiRec.Wrap(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/repos/octo/r/issues/1":
			_, _ = io.WriteString(rw, `{"number":1,"title":"Title \u001b[2J here","body":"b","state":"open","user":{"login":"a"},"labels":[{"name":"bug"}]}`)
		case "/repos/octo/r/pulls/2":
			if r.Header.Get("Accept") == "application/vnd.github.diff" {
				_, _ = io.WriteString(rw, "diff --git a/x b/x\n")
				return
			}
			_, _ = io.WriteString(rw, `{"number":2,"title":"PR","state":"open","user":{"login":"a"},"head":{"label":"a:f","sha":"abc"},"base":{"label":"octo:main"}}`)
		case "/repos/octo/r/issues/9":
			http.Redirect(rw, r, "https://other.test:"+otherPort+"/leak", http.StatusFound)
		default:
			http.NotFound(rw, r)
		}
	})))
	w.content = "https://content.test:" + cport
	w.git = "https://git.test:" + gport

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.control = filepath.Join(dir, "run", "scoutd.sock")
	w.door = filepath.Join(dir, "doors", "scout.sock")
	args := []string{"serve", "--socket", w.control, "--door", w.door,
		"--allow", "content.test:" + cport + ",git.test:" + gport, "--allow", "other.test:" + otherPort + ",private.test:" + cport,
		"--resolve", "content.test=127.0.0.1", "--resolve", "git.test=127.0.0.1", "--resolve", "api.test=127.0.0.1",
		"--resolve", "other.test=127.0.0.1", "--resolve", "private.test=10.9.8.7",
		"--allow-private", "127.0.0.1/32", "--github-api", "https://api.test:" + aport, "--token-file", tokenFile}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, args, Env{Stdout: io.Discard, Stderr: w.log, RootCAs: w.ca.Pool, Ready: func(string) { close(ready) }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scoutd: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("scoutd exited: %v\n%s", err, w.log)
	case <-time.After(20 * time.Second):
		t.Fatalf("scoutd not ready\n%s", w.log)
	}
	return w
}

func (w *world) scout(doorPath string, terminal bool, args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := client.Run(context.Background(), append([]string{"--door", doorPath}, args...), client.IO{
		Stdout: &out, Stderr: &errb, Terminal: func(io.Writer) bool { return terminal },
	})
	return out.String(), errb.String(), err
}

func wantRefusal(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a door refusal %s", err, err, reason)
	}
	if ce.Code != code || ce.Reason != reason {
		t.Fatalf("refusal = %s/%s (%v), want %s/%s", ce.Code, ce.Reason, ce.Msg, code, reason)
	}
}

func TestServeEndToEnd(t *testing.T) {
	w := startWorld(t)

	out, _, err := w.scout(w.door, false, "fetch", w.content+"/blob")
	if err != nil || out != string(w.body) {
		t.Fatalf("fetch: %v (got %d bytes)", err, len(out))
	}
	file := filepath.Join(t.TempDir(), "body")
	if _, _, err := w.scout(w.door, false, "fetch", w.content+"/blob", "-o", file); err != nil {
		t.Fatalf("fetch -o: %v", err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, w.body) {
		t.Errorf("fetch -o wrote %d bytes, want the body", len(got))
	}
	bigFile := filepath.Join(filepath.Dir(file), "big")
	_, _, err = w.scout(w.door, false, "fetch", w.content+"/big", "-o", bigFile)
	wantRefusal(t, err, codes.ResourceExhausted, "too_large")
	if ents, _ := os.ReadDir(filepath.Dir(file)); len(ents) != 1 {
		t.Errorf("a refused fetch left files behind: %v", ents)
	}
	_, _, err = w.scout(w.door, false, "fetch", "https://evil.test/")
	wantRefusal(t, err, codes.PermissionDenied, "not_allowlisted")
	if !strings.Contains(err.Error(), "hint:") {
		t.Errorf("denial has no hint: %v", err)
	}
	_, _, err = w.scout(w.door, false, "fetch", "file:///etc/passwd")
	wantRefusal(t, err, codes.PermissionDenied, "bad_scheme")
	_, _, err = w.scout(w.door, false, "fetch", w.content+"/to-other?x=1")
	if err != nil {
		t.Errorf("redirect to an allowlisted host: %v", err)
	}
	_, _, err = w.scout(w.door, false, "fetch", strings.Replace(w.content, "content.test", "private.test", 1)+"/")
	wantRefusal(t, err, codes.PermissionDenied, "private_address")

	snap := filepath.Join(t.TempDir(), "snap")
	if _, _, err := w.scout(w.door, false, "repo", w.git+"/octo/r.git@main", snap); err != nil {
		t.Fatalf("repo: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(snap, "README.md")); string(b) != "hello\n" {
		t.Errorf("snapshot README = %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(snap, "link")); l != "README.md" {
		t.Errorf("snapshot link = %q", l)
	}
	if _, err := os.Stat(filepath.Join(snap, ".git")); err == nil {
		t.Errorf("snapshot has .git")
	}
	missing := filepath.Join(t.TempDir(), "missing")
	_, _, err = w.scout(w.door, false, "repo", w.git+"/octo/r.git@nope", missing)
	wantRefusal(t, err, codes.NotFound, "ref_not_found")
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("a failed snapshot left its directory")
	}

	out, _, err = w.scout(w.door, true, "issue", "octo/r#1")
	if err != nil || !strings.Contains(out, `Title \x1b[2J here`) || strings.Contains(out, "\x1b") {
		t.Errorf("issue on a terminal: %v\n%q", err, out)
	}
	out, _, err = w.scout(w.door, false, "--json", "pr", "octo/r#2", "--diff")
	if err != nil || !strings.Contains(out, `"diff": "diff --git a/x b/x\n"`) || !strings.Contains(out, `"head": "a:f"`) {
		t.Errorf("pr --json: %v\n%s", err, out)
	}
	_, _, err = w.scout(w.door, false, "issue", "octo/r#9")
	wantRefusal(t, err, codes.PermissionDenied, "redirect_off_api")

	out, _, err = w.scout(w.door, false, "--json", "status")
	var st map[string]any
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st["github_token"] != true || st["account"] != "default" {
		t.Errorf("status: %v\n%s", err, out)
	}
	if strings.Contains(out, token) {
		t.Errorf("status returned the token")
	}

	// A minted door narrowed to content.test.
	cc, err := door.Dial(w.control)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := doorv1.NewControlServiceClient(cc).MintDoor(ctx, &doorv1.MintDoorRequest{
		LaunchId: "l1", Account: "acct", PeerUid: -1,
		Caveats: []*doorv1.Caveat{{Key: "host", Value: "content.test"}},
	})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	if _, _, err := w.scout(m.GetSocketPath(), false, "fetch", w.content+"/blob"); err != nil {
		t.Errorf("minted door, allowed host: %v", err)
	}
	_, _, err = w.scout(m.GetSocketPath(), false, "repo", w.git+"/octo/r.git", filepath.Join(t.TempDir(), "s"))
	wantRefusal(t, err, codes.PermissionDenied, "caveat_denied")
	_, _, err = w.scout(m.GetSocketPath(), false, "issue", "octo/r#1")
	wantRefusal(t, err, codes.PermissionDenied, "caveat_denied")
	if _, err := doorv1.NewControlServiceClient(cc).MintDoor(ctx, &doorv1.MintDoorRequest{
		LaunchId: "l2", Account: "acct", PeerUid: -1, Caveats: []*doorv1.Caveat{{Key: "color", Value: "red"}},
	}); err == nil {
		t.Errorf("minted a door with a caveat scout cannot enforce")
	}

	var stOut bytes.Buffer
	if err := Run(context.Background(), []string{"status", "--socket", w.control}, Env{Stdout: &stOut, Stderr: io.Discard}); err != nil {
		t.Fatalf("scoutd status: %v", err)
	}
	for _, want := range []string{"launches: 2", "l1 account=acct", "host=content.test", "fetch_ok=", "fetch_denied=", "snapshot_denied="} {
		if !strings.Contains(stOut.String(), want) {
			t.Errorf("scoutd status lacks %q:\n%s", want, stOut.String())
		}
	}
	if strings.Contains(stOut.String(), token) {
		t.Errorf("scoutd status printed the token")
	}

	// The token went to the API, on every request there, and nowhere else.
	for _, h := range w.apiRec.Seen() {
		if h.Get("Authorization") != "Bearer "+token {
			t.Errorf("an API request lacked the token")
		}
	}
	for _, h := range w.otherRec.Seen() {
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, token) {
					t.Errorf("other server saw the token in %s", k)
				}
			}
		}
	}

	// Logs: no token anywhere; one audit record per guest request.
	logs := w.log.String()
	if strings.Contains(logs, token) {
		t.Errorf("a log line contains the token")
	}
	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == door.AuditMsg {
			if k, ok := rec["kind"].(string); ok {
				kinds[k]++
				for _, key := range []string{"account", "launch", "target", "allow", "reason"} {
					if _, ok := rec[key]; !ok {
						t.Errorf("audit record lacks %s: %s", key, line)
					}
				}
			}
		}
	}
	want := map[string]int{"fetch": 8, "snapshot": 3, "issue": 3, "pull_request": 1, "status": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s audit records, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
}

func TestConfigFiles(t *testing.T) {
	good, err := filepath.Glob("testdata/good/*.json")
	if err != nil || len(good) == 0 {
		t.Fatalf("no good configs: %v", err)
	}
	for _, f := range good {
		if _, err := Load(Settings{ConfigFile: f}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	broken, _ := filepath.Glob("testdata/broken/*.json")
	if len(broken) == 0 {
		t.Fatal("no broken configs")
	}
	for _, f := range broken {
		if _, err := Load(Settings{ConfigFile: f}); err == nil {
			t.Errorf("%s: loaded, want a refusal", f)
		}
	}
}

func TestLoadMerges(t *testing.T) {
	p, err := Load(Settings{
		ConfigFile: "testdata/good/full.json",
		Allow:      []string{"extra.example"},
		GitHubAPI:  "https://ghe.example/api/v3",
		Getenv:     func(k string) string { return map[string]string{"GH_TOKEN": "from-gh"}[k] },
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Allow.Strings(), ","); got != "github.com,.githubusercontent.com,extra.example" {
		t.Errorf("allow = %s", got)
	}
	if p.GitHubAPI != "https://ghe.example/api/v3" || p.Limits.MaxBytes != 1<<20 || p.Limits.Timeout != 30*time.Second {
		t.Errorf("policy = %+v", p)
	}
	if p.Token != "from-gh" || strings.Contains(p.Summary(), "from-gh") {
		t.Errorf("token handling: %q, summary %q", p.Token, p.Summary())
	}
}
