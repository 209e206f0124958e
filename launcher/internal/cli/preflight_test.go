package cli

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestMintBeforeCreate: doors are minted before podman creates anything,
// so a door daemon that is down leaves no account volume and no box
// behind, and a failure after minting revokes every door.
func TestMintBeforeCreate(t *testing.T) {
	repo := gitRepo(t)
	down := func(d string) string {
		return "claude-box: door " + d + " (" + d + ") at $RUN/" + d + ".sock: door daemon is not running: no control socket at $RUN/" + d + ".sock\n" +
			"hint: start it: `claude-box doors start` (or `nix run .#" + d + " -- serve`)\n"
	}
	cases := []struct {
		name      string
		daemons   []string
		args      []string
		volumeErr error
		msg       string
	}{
		{"no door daemon", nil, []string{"work", "--net"}, nil, down("netd")},
		{"the last of three down", []string{"keeperd", "netd"}, []string{"work", "--room", "dev", "--repo", repo}, nil, down("scoutd")},
		{"the volume fails after minting", []string{"keeperd", "netd", "scoutd"}, []string{"work", "--room", "dev", "--repo", repo}, errors.New("volume claude-work-config: no space left on device"),
			"claude-box: volume claude-work-config: no space left on device\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runDir, minters := doorDaemons(t, tc.daemons...)
			fe := newFakeEngine()
			fe.volumeErr = tc.volumeErr
			fe.onVolume = func(string) {
				for d, m := range minters {
					if len(m.Live()) != 1 {
						t.Errorf("%s: %d doors live when the volume is made, want 1", d, len(m.Live()))
					}
				}
			}
			env, _, _ := testEnv(t, runDir, nil, fe.connect)
			err := Run(t.Context(), tc.args, env)
			if want := strings.ReplaceAll(tc.msg, "$RUN", runDir); Message(err) != want || ExitCode(err) != 125 {
				t.Fatalf("exit %d, message\n%q\nwant exit 125 and\n%q", ExitCode(err), Message(err), want)
			}
			if tc.volumeErr == nil {
				if got := fe.called("EnsureVolume"); len(got) != 0 {
					t.Errorf("a failed mint left %q", got)
				}
			}
			if got := fe.called("Run"); len(got) != 0 {
				t.Errorf("a failed launch ran %q", got)
			}
			for d, m := range minters {
				if live := m.Live(); len(live) != 0 {
					t.Errorf("%s: doors still live after the failed launch: %+v", d, live)
				}
			}
		})
	}
}
