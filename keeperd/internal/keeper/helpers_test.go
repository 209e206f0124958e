package keeper

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s)", name, map[string]string{"git": "git", "ssh-keygen": "openssh-client"}[name])
	}
	return p
}

// gitEnv isolates git from the machine's configuration.
func gitEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Host User", "GIT_AUTHOR_EMAIL=host@example.com",
		"GIT_COMMITTER_NAME=Host User", "GIT_COMMITTER_EMAIL=host@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

// run runs git (or another tool) in dir and returns its stdout.
func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(context.Background(), name, args...)
	cmd.Dir = dir
	home := os.Getenv("KEEPER_TEST_HOME")
	if home == "" {
		home = dir
	}
	cmd.Env = gitEnv(home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testRepo makes a git repo under root/name with one commit on main.
func testRepo(t testing.TB, root, name string) string {
	t.Helper()
	needTool(t, "git")
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "git", "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(dir, "README"), "hello\n")
	writeFile(t, filepath.Join(dir, "src", "a.go"), "package a\n")
	writeFile(t, filepath.Join(dir, ".gitignore"), "*.log\nbuild/\n")
	run(t, dir, "git", "add", "-A")
	run(t, dir, "git", "commit", "-q", "-m", "initial")
	return dir
}

// fixture is a keeper with a fresh key, a repo root and one repo.
type fixture struct {
	k      *Keeper
	key    *Key
	root   string
	repo   string
	launch Launch
	logs   *bytes.Buffer
	// env is keeperd's environment (Config.Getenv): HOME is an empty
	// directory of its own and there is no system config, so the machine's
	// git config never leaks in. Set it before the first request.
	env map[string]string
}

func newFixture(t testing.TB, mutate func(p *Policy)) *fixture {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "src")
	repo := testRepo(t, root, "proj")
	key, err := LoadOrCreateKey(filepath.Join(base, "keeper", "id_ed25519"), true)
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{
		Version:    PolicyVersion,
		Repos:      []RepoPolicy{{Root: root}},
		Branches:   []string{"main", "claude/**"},
		Identities: []Identity{{Name: "Claude", Email: "claude@example.com"}, {Name: "Alt", Email: "alt@example.com"}},
	}
	if mutate != nil {
		mutate(p)
	}
	if err := p.validate(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	env := map[string]string{"HOME": filepath.Join(base, "home"), "GIT_CONFIG_NOSYSTEM": "1"}
	k, err := New(Config{Policy: p, Key: key, Logger: testLogger(&logs), Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	pin, err := PinRepo(p, repo)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{k: k, key: key, root: root, repo: repo, launch: Launch{ID: "L1", Account: "default", ManifestDigest: "sha256:abc", Repo: repo, Pin: pin}, logs: &logs, env: env}
}

// allowedSigners writes an allowed-signers file for the fixture's key.
func (f *fixture) allowedSigners(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "allowed_signers")
	line := fmt.Sprintf("claude@example.com %s\n", f.key.AuthorizedKey(""))
	if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func execCommand(name string, args ...string) *exec.Cmd {
	return exec.CommandContext(context.Background(), name, args...)
}

// twinRepo copies repo (worktree, .git and index flags) to a fresh
// directory, so real git can do there what keeperd does in repo.
func twinRepo(t testing.TB, repo string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(repo)) // same name: includeIf gitdir: patterns match both
	run(t, filepath.Dir(repo), "cp", "-a", repo, dst)
	return dst
}

// launchAt is the fixture's launch bound to repo instead, pinned as a mint
// would pin it.
func (f *fixture) launchAt(t *testing.T, repo string) Launch {
	t.Helper()
	pin, err := PinRepo(f.k.Policy(), repo)
	if err != nil {
		t.Fatal(err)
	}
	l := f.launch
	l.Repo, l.Pin = repo, pin
	return l
}
