package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// pushToken is the https token keeperd pushes with, from a host-side file.
const pushToken = "push-token-e2e-never-logged"

// keeperIdentity is who keeperd commits as in the suite's policy.
var keeperIdentity = map[string]string{"name": "e2e keeper", "email": "keeper@example.test"}

// startKeeperd starts keeperd with a policy that binds repo (if any) and lets
// it push main and feature/* to remote.
func (w *world) startKeeperd(t testing.TB, repo *keeperRepo) *harness.Daemon {
	t.Helper()
	return w.startKeeperdArgs(t, repo)
}

// startKeeperdArgs is startKeeperd with extra serve flags.
func (w *world) startKeeperdArgs(t testing.TB, repo *keeperRepo, extra ...string) *harness.Daemon {
	t.Helper()
	policy := map[string]any{
		"version":    1,
		"repos":      []any{},
		"branches":   []string{"main", "feature/*"},
		"identities": []any{keeperIdentity},
	}
	if repo != nil {
		tokenFile := filepath.Join(w.home, "push-token")
		if err := os.WriteFile(tokenFile, []byte(pushToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		policy["repos"] = []any{map[string]any{
			"root": repo.dir,
			"remotes": map[string]any{"origin": map[string]any{
				"url": repo.remoteURL, "token_file": tokenFile, "ca_file": w.caFile,
			}},
			"default_remote": "origin",
		}}
	}
	b, err := json.MarshalIndent(policy, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(w.home, "keeper-policy.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return w.start(t, "keeperd", append([]string{"--policy", path}, extra...))
}

// keeperRepo is a host checkout the box works on, with a bare remote served
// over HTTPS on loopback.
type keeperRepo struct {
	dir       string
	bare      string
	remoteURL string
	server    *harness.GitServer
}

func newKeeperRepo(t testing.TB, w *world) *keeperRepo {
	t.Helper()
	dir := harness.NewRepo(t, map[string]string{"README.md": "hello\n"})
	root := t.TempDir()
	bare := harness.NewBareRepo(t, root, "repo", dir)
	// A branch policy refuses to push, created after the remote was cloned.
	harness.Git(t, dir, "branch", "release")
	// A hook that would prove host code execution if anything ran it.
	canary := filepath.Join(t.TempDir(), "hook-ran")
	hook := "#!/bin/sh\ntouch " + canary + "\n"
	for _, h := range []string{"pre-commit", "post-commit", "pre-push"} {
		if err := os.WriteFile(filepath.Join(dir, ".git", "hooks", h), []byte(hook), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if _, err := os.Stat(canary); err == nil {
			t.Errorf("a git hook ran on the host (%s exists)", canary)
		}
	})
	harness.ChownTree(t, dir, 1000, 1000)
	srv := harness.NewGitServer(t, w.s.ca, "127.0.0.1", root)
	return &keeperRepo{dir: dir, bare: bare, remoteURL: srv.URL() + "/repo.git", server: srv}
}

// TestWritesGoThroughKeeper: in a --repo box the worktree is writable and
// .git is not; `keeper commit` makes a commit on the host that
// `git verify-commit` accepts; `keeper push` reaches the loopback git server
// for an allowed branch and is refused for a forbidden one; no hook runs.
func TestWritesGoThroughKeeper(t *testing.T) {
	w := newWorld(t)
	repo := newKeeperRepo(t, w)
	w.startKeeperd(t, repo)
	before := harness.Git(t, repo.dir, "rev-parse", "HEAD")

	script := strings.Join([]string{
		"probe write -path /work/README.md -path /work/.git/config -path /work/.git/hooks/pre-commit -path /work/.git/HEAD",
		"git -C /work log -1 --format=GIT_LOG=%s",
		"git -C /work -c user.name=box -c user.email=box@example.test commit -qam 'box commits by itself' 2>&1; echo GIT_COMMIT_RC=$?",
		"keeper commit -a -m 'e2e: change readme' && echo KEEPER_COMMIT_OK",
		"keeper push main && echo KEEPER_PUSH_MAIN_OK",
		"keeper push release; echo KEEPER_PUSH_RELEASE_RC=$?",
	}, "\n")
	res := w.claudeBox(t, "e2e-keeper", "--keeper", "--repo", repo.dir, "--", "sh", "-c", script)
	r := res.probe(t)

	if got := r.Write["/work/README.md"]; got != "ok" {
		t.Errorf("write /work/README.md = %q, want ok", got)
	}
	for _, p := range []string{"/work/.git/config", "/work/.git/hooks/pre-commit", "/work/.git/HEAD"} {
		if got := r.Write[p]; !strings.Contains(got, "read-only file system") {
			t.Errorf("write %s = %q, want read-only file system", p, got)
		}
	}
	// git reads in the box, but cannot write .git: the box cannot commit by itself.
	if w.s.tools["git"] == nil {
		if !strings.Contains(res.stdout, "GIT_LOG=initial") {
			t.Errorf("git log in the box failed\n%s", res)
		}
		if strings.Contains(res.stdout, "GIT_COMMIT_RC=0") || !strings.Contains(res.stdout, "Read-only file system") {
			t.Errorf("git commit in the box did not fail with Read-only file system\n%s", res)
		}
	}
	if !strings.Contains(res.stdout, "KEEPER_COMMIT_OK") {
		t.Fatalf("keeper commit failed\n%s", res)
	}
	head := harness.Git(t, repo.dir, "rev-parse", "HEAD")
	if head == before {
		t.Fatalf("HEAD did not move on the host\n%s", res)
	}
	if got := harness.Git(t, repo.dir, "log", "-1", "--format=%s%n%an <%ae>"); got != "e2e: change readme\ne2e keeper <keeper@example.test>" {
		t.Errorf("host commit = %q", got)
	}
	if got := harness.Git(t, repo.dir, "show", "HEAD:README.md"); got != "hello\nprobe" {
		t.Errorf("committed README.md = %q, want the box's edit", got)
	}

	// The signature verifies on the host with keeperd's public key.
	signers := filepath.Join(w.home, "allowed_signers")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := exec.CommandContext(ctx, w.s.bin(t, "keeperd"), "pubkey", "--allowed-signers", keeperIdentity["email"])
	pub.Env = []string{"HOME=" + w.home, "PATH=" + os.Getenv("PATH")}
	line, err := pub.Output()
	if err != nil {
		t.Fatalf("keeperd pubkey: %v", err)
	}
	if err := os.WriteFile(signers, line, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := harness.GitE(repo.dir, "-c", "gpg.ssh.allowedSignersFile="+signers, "verify-commit", "HEAD"); err != nil {
		t.Errorf("git verify-commit HEAD: %v %s", err, out)
	}

	// keeperd's own check: the commit signature and the signed note that
	// records which launch and account made it.
	ver := exec.CommandContext(ctx, w.s.bin(t, "keeperd"), "verify", "--repo", repo.dir, "HEAD")
	ver.Env = []string{"HOME=" + w.home, "PATH=" + os.Getenv("PATH")}
	vout, err := ver.CombinedOutput()
	if err != nil {
		t.Errorf("keeperd verify HEAD: %v\n%s", err, vout)
	}
	for _, want := range []string{"good signature", "by launch " + r.Launch + ",", "account e2e-keeper,"} {
		if r.Launch == "" || !strings.Contains(string(vout), want) {
			t.Errorf("keeperd verify HEAD lacks %q:\n%s", want, vout)
		}
	}

	// Neither the push token nor the signing key reaches keeperd's log.
	key, err := os.ReadFile(filepath.Join(w.home, ".claude-box", "keeper", "id_ed25519"))
	if err != nil {
		t.Fatalf("keeperd's key: %v", err)
	}
	keyLines := strings.Split(strings.TrimSpace(string(key)), "\n")
	logText, err := os.ReadFile(w.daemons["keeperd"].LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range append([]string{pushToken}, keyLines[1:len(keyLines)-1]...) {
		if strings.Contains(string(logText), secret) || strings.Contains(res.stdout+res.stderr, secret) {
			t.Errorf("a secret (push token or private key line) reached keeperd's log or the box")
		}
	}
	for _, req := range repo.server.Requests() {
		if req.Method == "POST" && !strings.Contains(req.Header.Get("Authorization"), "Basic ") {
			t.Errorf("a push reached the git server without the host-side token: %s %s", req.Method, req.Path)
		}
	}

	// Pushes: main reached the server, release did not.
	if !strings.Contains(res.stdout, "KEEPER_PUSH_MAIN_OK") {
		t.Errorf("keeper push main failed\n%s", res)
	}
	if got, err := harness.GitE(repo.bare, "rev-parse", "refs/heads/main"); err != nil || got != head {
		t.Errorf("remote main = %q (%v), want %s", got, err, head)
	}
	if !strings.Contains(res.stdout, "KEEPER_PUSH_RELEASE_RC=") || strings.Contains(res.stdout, "KEEPER_PUSH_RELEASE_RC=0") {
		t.Errorf("keeper push release was not refused\n%s", res)
	}
	if !strings.Contains(res.stderr, `branch "release" is not allowed by policy`) {
		t.Errorf("keeper push release: the refusal does not name the branch policy\n%s", res)
	}
	if _, err := harness.GitE(repo.bare, "rev-parse", "--verify", "refs/heads/release"); err == nil {
		t.Errorf("the forbidden branch release reached the remote")
	}
}
