package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/launcher/internal/doors"

	"github.com/bounded-systems/claude-box/launcher/internal/plan"
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
		return "claude-box: " + d + " at $RUN/" + d + ".sock: door daemon is not running: no control socket at $RUN/" + d + ".sock\n" +
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

func TestRootfulRepoWarning(t *testing.T) {
	const warned = "claude-box: warning: podman is rootful and the box runs as uid 1000, but /src/site is owned by uid 501: the box can read but not write it (use rootless podman, or chown the worktree)"
	cases := []struct {
		name string
		uid  uint32
		perm fs.FileMode
		want string
	}{
		{"owned by the box user", plan.BoxUID, 0o755, ""},
		{"owned by the box user, private", plan.BoxUID, 0o700, ""},
		{"owned by another user", 501, 0o755, warned},
		{"writable by anyone", 501, 0o777, ""},
		{"owned by root", 0, 0o755, strings.Replace(warned, "uid 501", "uid 0", 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := rootfulRepoWarning("/src/site", tc.uid, tc.perm); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRootfulRepoWarned: a launch with --repo warns under rootful podman
// when the worktree is not the box user's, and not under rootless podman,
// where the box user is the invoking user.
func TestRootfulRepoWarned(t *testing.T) {
	if os.Getuid() == plan.BoxUID {
		t.Skip("the test runs as uid 1000, the box user: a worktree it makes is the box's to write")
	}
	repo := gitRepo(t)
	want := fmt.Sprintf("claude-box: warning: podman is rootful and the box runs as uid 1000, but %s is owned by uid %d: the box can read but not write it (use rootless podman, or chown the worktree)\n", repo, os.Getuid())
	for _, rootless := range []bool{false, true} {
		t.Run(fmt.Sprintf("rootless=%v", rootless), func(t *testing.T) {
			fe := newFakeEngine()
			fe.info.Rootless = rootless
			env, _, errb := testEnv(t, t.TempDir(), nil, fe.connect)
			if err := Run(t.Context(), []string{"work", "--repo", repo}, env); err != nil {
				t.Fatalf("%v (stderr %q)", err, errb.String())
			}
			if got := strings.Contains(errb.String(), want); got == rootless {
				t.Fatalf("stderr %q, want the warning only when rootful", errb.String())
			}
			if len(fe.called("Run")) != 1 {
				t.Fatal("a warning must not stop the launch")
			}
		})
	}
}

// TestUnsafeMintedSocketIsHinted: a door daemon that mints its launch
// socket beside the control sockets (where another daemon's control
// socket could be handed to the box) is refused before podman creates
// anything, with a hint, and its door is revoked.
func TestUnsafeMintedSocketIsHinted(t *testing.T) {
	runDir, err := os.MkdirTemp("", "cb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(runDir) })
	if err := os.Chmod(runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	m := serveDaemon(t, runDir, "scoutd", runDir) // minting into its own run dir: wrong

	fe := newFakeEngine()
	env, _, _ := testEnv(t, runDir, nil, fe.connect)
	err = Run(t.Context(), []string{"work", "--scout"}, env)
	msg := Message(err)
	if ExitCode(err) != 125 || !errors.Is(err, doors.ErrUnsafeSocket) ||
		!strings.Contains(msg, "refusing to mount it in the box: it is in the directory of the control socket") ||
		!strings.Contains(msg, "\nhint: nothing was mounted and every door minted so far is revoked; scoutd is not behaving as a door daemon") {
		t.Fatalf("exit %d, message\n%s", ExitCode(err), msg)
	}
	if got := fe.recorded(); slices.ContainsFunc(got, func(c string) bool { return strings.HasPrefix(c, "EnsureVolume") || strings.HasPrefix(c, "Run") }) {
		t.Fatalf("podman was asked: %q", got)
	}
	if live := m.Live(); len(live) != 0 {
		t.Fatalf("the refused door is still live: %+v", live)
	}
}
