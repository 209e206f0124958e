package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/keeperd/internal/keeper"
	"github.com/bounded-systems/claude-box/keeperd/internal/server"
)

const envAsKeeper = "KEEPER_TEST_AS_KEEPER"

// TestMain lets git run this test binary as `keeper` (gpg.ssh.program).
func TestMain(m *testing.M) {
	if os.Getenv(envAsKeeper) == "1" {
		err := Run(context.Background(), OSEnv(), os.Args[1:], os.Stdout, os.Stderr)
		if err != nil {
			if _, ok := err.(ExitError); !ok {
				fmt.Fprintf(os.Stderr, "keeper: %v\n", err)
			}
			os.Exit(ExitCode(err))
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type fixture struct {
	base, repo, sock string
	key              *keeper.Key
	home             string
}

func gitCmd(t *testing.T, f *fixture, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+f.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(f.home, ".gitconfig"),
		"GIT_AUTHOR_NAME=H", "GIT_AUTHOR_EMAIL=h@x", "GIT_COMMITTER_NAME=H", "GIT_COMMITTER_EMAIL=h@x",
		EnvDoor+"="+f.sock, envAsKeeper+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustGit(t *testing.T, f *fixture, dir string, args ...string) string {
	t.Helper()
	out, err := gitCmd(t, f, dir, args...)
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return out
}

// newFixture serves a standing keeper door bound to a fresh repo.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	for _, tool := range []string{"git", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y git openssh-client)", tool)
		}
	}
	base, err := os.MkdirTemp("", "kcl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	f := &fixture{base: base, repo: filepath.Join(base, "src", "proj"), sock: filepath.Join(base, "d.sock"), home: filepath.Join(base, "home")}
	os.MkdirAll(f.repo, 0o755)
	os.MkdirAll(f.home, 0o755)
	mustGit(t, f, f.repo, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(f.repo, "README"), []byte("hi\n"), 0o644)
	mustGit(t, f, f.repo, "add", "-A")
	mustGit(t, f, f.repo, "commit", "-q", "-m", "init")
	f.key, err = keeper.LoadOrCreateKey(filepath.Join(base, "keeper", "id_ed25519"), true)
	if err != nil {
		t.Fatal(err)
	}
	p := &keeper.Policy{Version: 1, Repos: []keeper.RepoPolicy{{Root: filepath.Join(base, "src")}}, Branches: []string{"main"},
		Identities: []keeper.Identity{{Name: "Claude", Email: "claude@example.com"}}}
	log := slog.New(slog.DiscardHandler)
	k, err := keeper.New(keeper.Config{Policy: p, Key: f.key, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(k, log)
	m, err := door.NewMinter(door.MinterConfig{Door: server.DoorName, Dir: filepath.Join(base, "l"), Logger: log, Register: srv.Register, Validate: srv.Validate})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Standing(f.sock, door.Binding{Bindings: map[string]string{"repo": f.repo}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	return f
}

func (f *fixture) run(t *testing.T, wd string, args ...string) (string, error) {
	t.Helper()
	env := Env{
		Getenv: func(k string) string {
			return map[string]string{EnvDoor: f.sock, EnvWorktree: "/work"}[k]
		},
		Getwd: func() (string, error) { return wd, nil },
		Stdin: strings.NewReader(""),
	}
	var out, errb bytes.Buffer
	err := Run(context.Background(), env, args, &out, &errb)
	return out.String() + errb.String(), err
}

func TestKeeperCommands(t *testing.T) {
	f := newFixture(t)
	os.MkdirAll(filepath.Join(f.repo, "src"), 0o755)
	os.WriteFile(filepath.Join(f.repo, "src", "a.go"), []byte("package a\n"), 0o644)
	os.WriteFile(filepath.Join(f.repo, "README"), []byte("changed\n"), 0o644)

	out, err := f.run(t, "/work", "status")
	if err != nil || out != "branch main at "+strings.TrimSpace(mustGit(t, f, f.repo, "rev-parse", "--short=12", "HEAD"))+"\n  modified README\n  added    src/a.go\n" {
		t.Fatalf("status: %v\n%s", err, out)
	}
	// Paths are relative to the box's cwd under /work; they leave the box relative to /work.
	out, err = f.run(t, "/work/src", "commit", "-m", "add a", "a.go")
	if err != nil || !strings.HasPrefix(out, "[main ") || !strings.Contains(out, "added    src/a.go") {
		t.Fatalf("commit: %v\n%s", err, out)
	}
	// A path outside /work never leaves the box.
	_, err = f.run(t, "/work/src", "commit", "-m", "x", "../../etc/passwd")
	if err == nil || err.Error() != `path "../../etc/passwd" is outside the worktree /work` {
		t.Fatalf("err = %v", err)
	}
	_, err = f.run(t, "/work", "commit", "-m", "x", ".git/config")
	if err == nil || err.Error() != `keeperd: path refused: ".git/config" is inside .git` {
		t.Fatalf("err = %v", err)
	}
	_, err = f.run(t, "/work", "push")
	if err == nil || err.Error() != "keeperd: denied: no remote named and policy has no default remote for this repository" {
		t.Fatalf("err = %v", err)
	}
	out, err = f.run(t, "/work", "log")
	if err != nil || !strings.Contains(out, "commit ") || !strings.Contains(out, "main: add a") {
		t.Fatalf("log: %v\n%s", err, out)
	}
	_, err = f.run(t, "/work", "--door", filepath.Join(f.base, "nope.sock"), "status")
	if err == nil || !strings.Contains(err.Error(), "hint: relaunch with --keeper") {
		t.Fatalf("err = %v", err)
	}
}

// The shim works as gpg.ssh.program with the git installed here: commits
// and tags signed through the door verify with git (whose verification goes
// through the shim to the real ssh-keygen).
func TestShimWithGit(t *testing.T) {
	f := newFixture(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(f.base, "clone")
	mustGit(t, f, f.base, "clone", "-q", f.repo, clone)
	pub := filepath.Join(f.base, "keeper.pub")
	os.WriteFile(pub, []byte(f.key.AuthorizedKey("keeperd")+"\n"), 0o644)
	allowed := filepath.Join(f.base, "allowed")
	os.WriteFile(allowed, []byte("claude@example.com "+f.key.AuthorizedKey("")+"\n"), 0o644)
	for _, kv := range [][2]string{
		{"gpg.format", "ssh"}, {"gpg.ssh.program", self}, {"user.signingkey", pub},
		{"user.name", "Claude"}, {"user.email", "claude@example.com"}, {"gpg.ssh.allowedSignersFile", allowed},
	} {
		mustGit(t, f, clone, "config", kv[0], kv[1])
	}
	// The box's git: identity from the repo config, not the environment.
	boxGit := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = clone
		cmd.Env = append(os.Environ(), "HOME="+f.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", EnvDoor+"="+f.sock, envAsKeeper+"=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	os.WriteFile(filepath.Join(clone, "x"), []byte("x\n"), 0o644)
	mustGit(t, f, clone, "add", "x")
	if out, err := boxGit("commit", "-S", "-q", "-m", "signed via keeper"); err != nil {
		t.Fatalf("git commit -S: %v\n%s", err, out)
	}
	out := mustGit(t, f, clone, "verify-commit", "-v", "HEAD")
	if !strings.Contains(out, `Good "git" signature for claude@example.com`) {
		t.Fatalf("verify-commit:\n%s", out)
	}
	if got := strings.TrimSpace(mustGit(t, f, clone, "log", "-1", "--format=%G?")); got != "G" {
		t.Fatalf("%%G? = %q", got)
	}
	// Literal key in user.signingkey: git passes -U and a temp key file.
	mustGit(t, f, clone, "config", "user.signingkey", "key::"+f.key.AuthorizedKey(""))
	if out, err := boxGit("tag", "-s", "v1", "-m", "release"); err != nil {
		t.Fatalf("git tag -s: %v\n%s", err, out)
	}
	if out := mustGit(t, f, clone, "verify-tag", "-v", "v1"); !strings.Contains(out, `Good "git" signature`) {
		t.Fatalf("verify-tag:\n%s", out)
	}
	// A committer outside policy is refused by keeperd; git reports it.
	mustGit(t, f, clone, "config", "user.name", "Mallory")
	out, err = boxGit("commit", "-S", "--allow-empty", "-m", "evil")
	if err == nil || !strings.Contains(out, `keeper: keeperd: denied: committer "Mallory <claude@example.com>" is not an identity in policy`) {
		t.Fatalf("git commit as Mallory: %v\n%s", err, out)
	}
	// A key that is not keeperd's is refused before anything is signed.
	other := filepath.Join(f.base, "other")
	exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).Run()
	mustGit(t, f, clone, "config", "user.name", "Claude")
	mustGit(t, f, clone, "config", "user.signingkey", other+".pub")
	out, err = boxGit("commit", "-S", "--allow-empty", "-m", "wrong key")
	if err == nil || !strings.Contains(out, "is not keeperd's key") {
		t.Fatalf("wrong key: %v\n%s", err, out)
	}
}

func TestShimRefusesOtherNamespaces(t *testing.T) {
	f := newFixture(t)
	pub := filepath.Join(f.base, "keeper.pub")
	os.WriteFile(pub, []byte(f.key.AuthorizedKey("")+"\n"), 0o644)
	file := filepath.Join(f.base, "data")
	os.WriteFile(file, []byte("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"), 0o644)
	_, err := f.run(t, "/work", "-Y", "sign", "-n", "file", "-f", pub, file)
	if err == nil || err.Error() != `keeperd: denied: namespace "file": keeperd signs git objects only (namespace "git")` {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(file + ".sig"); err == nil {
		t.Fatal("signature written")
	}
	_, err = f.run(t, "/work", "-Y", "sign", "-n", "git", "-f", pub, "-O", "x", file)
	if err == nil || err.Error() != `usage: -Y sign: unsupported flag "-O"` {
		t.Fatalf("err = %v", err)
	}
	_ = io.Discard
}
