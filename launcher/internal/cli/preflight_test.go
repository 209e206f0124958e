package cli

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// gitRepo is a fresh git worktree in a temp dir, its path resolved.
func gitRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "init", "-q", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	return dir
}

// TestRefusedBeforePodman: a launch the grammar parses but that cannot
// work is a usage error before podman is asked or any door minted.
func TestRefusedBeforePodman(t *testing.T) {
	const keeperNeedsRepo = "claude-box: the keeper door needs --repo: keeperd commits to the worktree a launch names, and this one names none (see claude-box --help)\n" +
		"hint: add --repo PATH (the git worktree to commit to), or launch without the keeper door (--net --scout instead of --room dev)\n"
	const needsRepo = "claude-box: --writable and --repo-rw need --repo (see claude-box --help)\n"
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"--keeper", []string{"--keeper"}, keeperNeedsRepo},
		{"the dev room", []string{"work", "--room", "dev"}, keeperNeedsRepo},
		{"--door keeper", []string{"--door", "keeper"}, keeperNeedsRepo},
		{"--keeper in a dry run", []string{"--keeper", "--dry-run"}, keeperNeedsRepo},
		{"--writable", []string{"--writable", "src"}, needsRepo},
		{"--repo-rw", []string{"--repo-rw"}, needsRepo},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runDir, minters := doorDaemons(t, "netd", "keeperd", "scoutd")
			env, out, _ := testEnv(t, runDir, nil, noConnect(t))
			err := Run(t.Context(), tc.args, env)
			if ExitCode(err) != 2 || Message(err) != tc.msg {
				t.Fatalf("exit %d, message\n%q\nwant exit 2 and\n%q", ExitCode(err), Message(err), tc.msg)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout %q", out.String())
			}
			for d, m := range minters {
				if live := m.Live(); len(live) != 0 {
					t.Fatalf("%s minted %+v", d, live)
				}
			}
		})
	}
}
