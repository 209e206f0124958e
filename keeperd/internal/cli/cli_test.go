package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/keeperd/internal/client"
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

// keeperd serve with a standing door; the keeper client commits through it;
// keeperd pubkey --allowed-signers makes git verify-commit pass on the host;
// keeperd verify checks the commit and its note.
func TestServeCommitVerify(t *testing.T) {
	for _, tool := range []string{"git", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y git openssh-client)", tool)
		}
	}
	base, err := os.MkdirTemp("", "kcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	repo := filepath.Join(base, "src", "proj")
	os.MkdirAll(repo, 0o755)
	git(t, repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "README"), []byte("hi\n"), 0o644)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "init")
	policy := filepath.Join(base, "policy.json")
	os.WriteFile(policy, []byte(`{"version": 1, "repos": [{"root": "`+filepath.Join(base, "src")+`"}], "branches": ["main"],
		"identities": [{"name": "Claude", "email": "claude@example.com"}]}`), 0o600)
	key := filepath.Join(base, "keeper", "id_ed25519")
	sock := filepath.Join(base, "ctl.sock")
	doorSock := filepath.Join(base, "door.sock")

	// A key with loose permissions is refused at start.
	loose := filepath.Join(base, "loose")
	os.WriteFile(loose, []byte("x"), 0o644)
	err = Run(context.Background(), []string{"serve", "--socket", sock, "--policy", policy, "--key", loose}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "permissions 0644 are too open") {
		t.Fatalf("loose key: %v", err)
	}
	// pubkey creates the key on first use.
	var pub bytes.Buffer
	if err := Run(context.Background(), []string{"pubkey", "--key", key}, &pub, &bytes.Buffer{}); err == nil {
		t.Fatal("pubkey --key with a missing file should fail: --key never creates")
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuf{}
	done := make(chan error, 1)
	// serve creates the default key only without --key; give it a path via HOME.
	t.Setenv("HOME", base)
	go func() {
		done <- Run(ctx, []string{"serve", "--socket", sock, "--policy", policy, "--door", doorSock, "--repo", repo}, &bytes.Buffer{}, logs)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Ready when it accepts a connection: the file appears at bind,
		// before the listen that makes it answer.
		if c, err := net.Dial("unix", doorSock); err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("door socket never answered; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	fi, err := os.Stat(filepath.Join(base, ".claude-box", "keeper", "id_ed25519"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key: %v %v", fi, err)
	}
	key = filepath.Join(base, ".claude-box", "keeper", "id_ed25519")

	os.WriteFile(filepath.Join(repo, "README"), []byte("from the box\n"), 0o644)
	env := client.Env{Getenv: func(k string) string { return map[string]string{client.EnvDoor: doorSock}[k] },
		Getwd: func() (string, error) { return "/work", nil }, Stdin: strings.NewReader("")}
	var out bytes.Buffer
	if err := client.Run(context.Background(), env, []string{"commit", "-m", "box change", "-a"}, &out, &out); err != nil {
		t.Fatalf("keeper commit: %v\n%s", err, out.String())
	}
	var status bytes.Buffer
	if err := Run(context.Background(), []string{"status", "--socket", sock}, &status, &status); err != nil || !strings.Contains(status.String(), "commits 1") {
		t.Fatalf("status: %v\n%s", err, status.String())
	}

	var allowed bytes.Buffer
	if err := Run(context.Background(), []string{"pubkey", "--key", key, "--allowed-signers", "claude@example.com"}, &allowed, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(allowed.String(), `claude@example.com namespaces="git" ssh-ed25519 `) {
		t.Fatalf("allowed signers line = %q", allowed.String())
	}
	af := filepath.Join(base, "allowed_signers")
	os.WriteFile(af, allowed.Bytes(), 0o644)
	if v := git(t, repo, "-c", "gpg.ssh.allowedSignersFile="+af, "verify-commit", "-v", "HEAD"); !strings.Contains(v, `Good "git" signature for claude@example.com`) {
		t.Fatalf("verify-commit:\n%s", v)
	}
	git(t, repo, "-c", "gpg.ssh.allowedSignersFile="+af, "log", "-1", "--show-signature")
	var ver bytes.Buffer
	if err := Run(context.Background(), []string{"verify", "--key", key, "--repo", repo, "HEAD"}, &ver, &ver); err != nil {
		t.Fatalf("verify: %v\n%s", err, ver.String())
	}
	if !strings.Contains(ver.String(), "good signature by SHA256:") || !strings.Contains(ver.String(), "note: good signature; made on main by launch standing, account default") {
		t.Fatalf("verify output:\n%s", ver.String())
	}
	// A commit made by hand on the host is not keeperd's.
	git(t, repo, "commit", "-q", "--allow-empty", "-m", "by hand")
	if err := Run(context.Background(), []string{"verify", "--key", key, "--repo", repo, "HEAD"}, &ver, &ver); err == nil || !strings.HasSuffix(err.Error(), "is not signed") {
		t.Fatalf("verify unsigned: %v", err)
	}
	// SIGHUP re-reads the policy: with the repo root gone, the door refuses.
	os.WriteFile(policy, []byte(`{"version": 1, "repos": [{"root": "/nonexistent/elsewhere"}]}`), 0o600)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "README"), []byte("again\n"), 0o644)
	for deadline := time.Now().Add(10 * time.Second); ; {
		out.Reset()
		err := client.Run(context.Background(), env, []string{"commit", "-m", "after reload", "-a"}, &out, &out)
		if err != nil && strings.HasSuffix(err.Error(), "is not under a repo root in policy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy not reloaded: %v\n%s", err, logs.String())
		}
		if err == nil { // committed before the reload landed: change something again
			os.WriteFile(filepath.Join(repo, "README"), []byte(time.Now().String()), 0o644)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The private key never reaches the daemon's log.
	raw, _ := os.ReadFile(key)
	for _, line := range strings.Split(string(raw), "\n") {
		if len(line) > 40 && strings.Contains(logs.String(), line) {
			t.Fatal("key material in the log")
		}
	}
	if !strings.Contains(logs.String(), `"op":"commit"`) {
		t.Fatalf("no commit audit record:\n%s", logs.String())
	}
}
