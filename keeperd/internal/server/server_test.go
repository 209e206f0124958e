package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/keeperd/internal/keeper"
	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=H", "GIT_AUTHOR_EMAIL=h@x", "GIT_COMMITTER_NAME=H", "GIT_COMMITTER_EMAIL=h@x")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

type fixture struct {
	m       *door.Minter
	srv     *Server
	repo    string
	keyPath string
	key     *keeper.Key
	logs    *syncBuf
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed (apt-get install -y git)")
	}
	base, err := os.MkdirTemp("", "kps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	root := filepath.Join(base, "src")
	repo := filepath.Join(root, "proj")
	os.MkdirAll(repo, 0o755)
	git(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "README"), []byte("hi\n"), 0o644)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "init")
	keyPath := filepath.Join(base, "keeper", "id_ed25519")
	key, err := keeper.LoadOrCreateKey(keyPath, true)
	if err != nil {
		t.Fatal(err)
	}
	p := &keeper.Policy{Version: 1, Repos: []keeper.RepoPolicy{{Root: root}}, Branches: []string{"main"},
		Identities: []keeper.Identity{{Name: "Claude", Email: "claude@example.com"}}}
	logs := &syncBuf{}
	log := slogJSON(logs)
	k, err := keeper.New(keeper.Config{Policy: p, Key: key, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(k, log)
	m, err := door.NewMinter(door.MinterConfig{
		Door: DoorName, Version: "test", Dir: filepath.Join(base, "l"), Logger: log,
		Register: srv.Register, Validate: srv.Validate, PolicySummary: srv.PolicySummary, Counters: srv.Counters,
		OnRevoke: srv.OnRevoke, Informational: Informational(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	return &fixture{m: m, srv: srv, repo: repo, keyPath: keyPath, key: key, logs: logs}
}

func (f *fixture) client(t *testing.T, bindings map[string]string) keeperv1.KeeperServiceClient {
	t.Helper()
	return mintClient(t, f.m, "L1", bindings)
}

// mintClient mints a door of m for launch with bindings and dials it.
func mintClient(t *testing.T, m *door.Minter, launch string, bindings map[string]string) keeperv1.KeeperServiceClient {
	t.Helper()
	minted, err := m.Mint(context.Background(), door.MintRequest{LaunchID: launch, Account: "work", Bindings: bindings, PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := door.Dial(minted.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return keeperv1.NewKeeperServiceClient(cc)
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestMintValidation(t *testing.T) {
	f := newFixture(t)
	other := t.TempDir()
	cases := []struct {
		name     string
		bindings map[string]string
		want     string
	}{
		{"no repo", nil, "bad mint request: denied: no repository bound to this door"},
		{"repo outside roots", map[string]string{"repo": other}, `bad mint request: denied: repository "` + other + `" is not under a repo root in policy`},
		{"unknown binding", map[string]string{"repo": f.repo, "branch": "x"}, `bad mint request: keeper door takes no "branch" binding (want "repo" and optionally "manifest")`},
		{"bad manifest", map[string]string{"repo": f.repo, "manifest": "x"}, `bad mint request: manifest binding "x" is not a digest`},
		{"git dir not its own", map[string]string{"repo": f.repo + "-redirected"}, "bad mint request: failed precondition: the bound repository's .git has a commondir file, which points elsewhere; keeperd works only on the repository the door was bound to"},
	}
	// A worktree whose .git redirects elsewhere is refused at mint, too.
	redirected := f.repo + "-redirected"
	git(t, filepath.Dir(f.repo), "clone", "-q", f.repo, redirected)
	os.WriteFile(filepath.Join(redirected, ".git", "commondir"), []byte(filepath.Join(f.repo, ".git")+"\n"), 0o644)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.m.Mint(context.Background(), door.MintRequest{LaunchID: "L9", Account: "work", Bindings: tc.bindings, PeerUID: -1})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func records(t *testing.T, logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == door.AuditMsg && m[door.KeyDoor] == DoorName && m[keyOp] != nil {
			out = append(out, m)
		}
	}
	return out
}

func TestDoorEndToEnd(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, map[string]string{"repo": f.repo, "manifest": "sha256:" + strings.Repeat("ab", 32)})
	ctx := ctx5(t)
	os.WriteFile(filepath.Join(f.repo, "README"), []byte("changed\n"), 0o644)
	os.WriteFile(filepath.Join(f.repo, "new.txt"), []byte("new\n"), 0o644)

	st, err := c.GetStatus(ctx, &keeperv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetBranch() != "main" || !st.GetBranchAllowed() || len(st.GetFiles()) != 2 || st.GetFiles()[0].GetPath() != "README" || st.GetFiles()[0].GetStatus() != "modified" {
		t.Fatalf("status = %v", st)
	}
	res, err := c.Commit(ctx, &keeperv1.CommitRequest{Message: "via door", All: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetBranch() != "main" || len(res.GetCommit()) != 40 || len(res.GetFiles()) != 2 {
		t.Fatalf("commit = %v", res)
	}
	v, err := keeper.VerifyCommit(f.repo, res.GetCommit(), f.key.PublicKey(), true)
	if err != nil {
		t.Fatal(err)
	}
	if v.Statement.Launch != "L1" || v.Statement.Account != "work" || v.Statement.Manifest != "sha256:"+strings.Repeat("ab", 32) {
		t.Fatalf("statement = %+v", v.Statement)
	}
	// Errors map to codes with the domain's reason.
	_, err = c.Commit(ctx, &keeperv1.CommitRequest{Message: "m", Paths: []string{"../../etc/passwd"}})
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != `path refused: "../../etc/passwd" contains ".."` {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Commit(ctx, &keeperv1.CommitRequest{Message: "m", All: true})
	if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != "failed precondition: nothing to commit on main" {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Commit(ctx, &keeperv1.CommitRequest{Message: "", All: true})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Sign(ctx, &keeperv1.SignRequest{Namespace: "file", Payload: []byte("x")})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Push(ctx, &keeperv1.PushRequest{Remote: "origin"})
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != `denied: remote "origin" is not in policy` {
		t.Fatalf("err = %v", err)
	}
	pk, err := c.GetPublicKey(ctx, &keeperv1.GetPublicKeyRequest{})
	if err != nil || !strings.HasPrefix(pk.GetAuthorizedKey(), "ssh-ed25519 ") || !strings.HasPrefix(pk.GetFingerprint(), "SHA256:") {
		t.Fatalf("pubkey = %v %v", pk, err)
	}
	w, err := c.ListWrites(ctx, &keeperv1.ListWritesRequest{})
	if err != nil || len(w.GetWrites()) != 1 || w.GetWrites()[0].GetTarget() != res.GetCommit() {
		t.Fatalf("writes = %v %v", w, err)
	}

	// One audit record per request, with the bound repo, launch and account.
	recs := records(t, f.logs.String())
	var ops []string
	for _, r := range recs {
		ops = append(ops, r[keyOp].(string)+":"+map[bool]string{true: "allow", false: "deny"}[r[door.KeyAllow].(bool)])
		if r[door.KeyTarget] != f.repo || r[door.KeyLaunch] != "L1" || r[door.KeyAccount] != "work" {
			t.Errorf("audit record lacks binding: %v", r)
		}
	}
	want := "status:allow commit:allow commit:deny commit:deny commit:deny sign:deny push:deny public_key:allow list_writes:allow"
	if strings.Join(ops, " ") != want {
		t.Fatalf("audit ops = %q\nwant %q", strings.Join(ops, " "), want)
	}
	if recs[1][keyCommit] != res.GetCommit() || recs[1][keyRef] != "main" {
		t.Fatalf("commit audit = %v", recs[1])
	}
	if recs[2][door.KeyReason] != ReasonPath || recs[2][keyWhy] != `path refused: "../../etc/passwd" contains ".."` {
		t.Fatalf("deny reason = %v, why = %v", recs[2][door.KeyReason], recs[2][keyWhy])
	}
	for i, want := range []string{ReasonOK, ReasonOK, ReasonPath, ReasonPrecondition, ReasonInvalid, ReasonDenied, ReasonDenied, ReasonOK, ReasonOK} {
		if recs[i][door.KeyReason] != want {
			t.Errorf("record %d (%v) reason = %v, want %s", i, recs[i][keyOp], recs[i][door.KeyReason], want)
		}
	}

	// The private key never appears in logs, audit records or responses.
	raw, _ := os.ReadFile(f.keyPath)
	priv, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	seed := priv.(*ed25519.PrivateKey).Seed()
	haystack := f.logs.String() + res.String() + st.String() + pk.String() + w.String()
	for _, needle := range secretForms(raw, seed) {
		if strings.Contains(haystack, needle) {
			t.Fatalf("private key material %q leaked", needle[:8])
		}
	}
}

// secretForms lists the ways key material could show up in text.
func secretForms(pemFile, seed []byte) []string {
	out := []string{hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed), base64.RawStdEncoding.EncodeToString(seed)}
	for _, line := range strings.Split(string(pemFile), "\n") {
		if len(line) > 40 && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	return out
}

func TestUnboundSocketIsRefused(t *testing.T) {
	f := newFixture(t)
	_, err := f.srv.Commit(context.Background(), &keeperv1.CommitRequest{Message: "m", All: true})
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != "denied: this socket is not a keeper door" {
		t.Fatalf("err = %v", err)
	}
}
