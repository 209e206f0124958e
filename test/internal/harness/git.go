package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gitEnv isolates git from the host user's configuration.
func gitEnv(home string) []string {
	return append(cleanEnv(os.Environ()),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.test",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.test",
		"GIT_TERMINAL_PROMPT=0",
		// Repos the box writes are owned by its uid; let root's git read them.
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*",
	)
}

// Git runs git in dir with an isolated configuration and returns its trimmed
// stdout; it fails the test on error.
func Git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	out, err := GitE(dir, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// GitE is Git returning the error instead of failing the test.
func GitE(dir string, args ...string) (string, error) {
	git, _, err := CheckGit()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := (command{Path: git, Args: args, Dir: dir, Env: gitEnv(dir)}).output(ctx)
	return strings.TrimSpace(string(out)), err
}

// NewRepo creates a non-bare repository in a temp dir with one commit on
// branch main holding files.
func NewRepo(tb testing.TB, files map[string]string) string {
	tb.Helper()
	_, _, err := CheckGit()
	Need(tb, "git", err)
	dir := tb.TempDir()
	Git(tb, dir, "init", "-q", "-b", "main")
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	Git(tb, dir, "add", "-A")
	Git(tb, dir, "commit", "-q", "-m", "initial")
	return dir
}

// ChownTree gives dir and everything in it to uid:gid, as a host user's
// checkout that the box user (uid 1000 on a rootful host) may write.
func ChownTree(tb testing.TB, dir string, uid, gid int) {
	tb.Helper()
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// NewBareRepo clones src as root/name.git (bare), accepting pushes over HTTP.
func NewBareRepo(tb testing.TB, root, name, src string) string {
	tb.Helper()
	bare := filepath.Join(root, name+".git")
	Git(tb, root, "clone", "-q", "--bare", src, bare)
	Git(tb, bare, "config", "http.receivepack", "true")
	return bare
}
