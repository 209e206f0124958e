package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/harness"
	"github.com/bounded-systems/claude-box/test/internal/probe"
)

// rootlessPidsLimit is the launcher's default pids limit (plan.DefaultPidsLimit):
// what a box is promised when no --pids is given.
const rootlessPidsLimit = 1024

// rootlessSuite is the rootless half of the suite: a podman service run by
// an unprivileged user, with the suite's test image loaded. Built on first
// use, torn down by TestMain.
type rootlessSuite struct {
	user harness.User
	// base is a root-owned, world-traversable (0711) dir holding the
	// service's state and every rootless world: the user must reach paths
	// under it, and t.TempDir() dirs are 0700 root.
	base   string
	podman *harness.RootlessPodman
	image  harness.Image
	// bins are the suite's binaries, copied where the user may run them.
	bins map[string]string
	what string
	err  error
}

var rootlessShared struct {
	once sync.Once
	r    *rootlessSuite
}

// rootlessSetup returns the shared suite and its rootless half, stopping
// the test (skip, or fail in CI) naming what is missing.
func rootlessSetup(t testing.TB) (*suite, *rootlessSuite) {
	t.Helper()
	s := setup(t)
	s.bin(t, "claude-box")
	rootlessShared.once.Do(func() { rootlessShared.r = buildRootless(s) })
	r := rootlessShared.r
	harness.Need(t, r.what, r.err)
	return s, r
}

func buildRootless(s *suite) *rootlessSuite {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := &rootlessSuite{}
	var err error
	if r.user, err = harness.CheckRootlessUser(); err != nil {
		r.what, r.err = "rootless user", err
		return r
	}
	// Short: unix socket paths under it must stay below 108 bytes.
	if r.base, err = os.MkdirTemp("/tmp", "cbrl-"); err != nil {
		r.what, r.err = "rootless temp dir", err
		return r
	}
	shared.cleanups = append(shared.cleanups, func() { _ = os.RemoveAll(r.base) })
	if err := os.Chmod(r.base, 0o711); err != nil {
		r.what, r.err = "rootless temp dir", err
		return r
	}
	// The suite's binaries live in a 0700 root dir: copy them out.
	r.bins = map[string]string{}
	binDir := filepath.Join(r.base, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		r.what, r.err = "rootless bin dir", err
		return r
	}
	for name, src := range s.bins {
		dst := filepath.Join(binDir, name)
		if err := copyExecutable(src, dst); err != nil {
			r.what, r.err = "rootless bin dir", err
			return r
		}
		r.bins[name] = dst
	}
	r.podman, err = harness.StartRootlessPodman(ctx, filepath.Join(r.base, "podman"), r.user,
		harness.PodmanOptions{StorageDriver: os.Getenv("CLAUDE_BOX_E2E_STORAGE_DRIVER")})
	if err != nil {
		r.what, r.err = "rootless podman service", err
		return r
	}
	shared.cleanups = append(shared.cleanups, func() { _ = r.podman.Close() })
	if r.image, err = harness.TransferImage(ctx, s.podman, r.podman.Podman, s.image.Ref, s.dir); err != nil {
		r.what, r.err = "test image in the rootless store", err
		return r
	}
	return r
}

// copyExecutable copies the binary src to dst, mode 0755.
func copyExecutable(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// rlWorld is one rootless test's host side: a HOME owned by the test user
// (its daemons' control sockets and minted doors, the launcher's state),
// and the daemons it started as that user.
type rlWorld struct {
	s       *suite
	r       *rootlessSuite
	home    string
	caFile  string
	daemons map[string]*harness.Daemon
	// extraEnv is added to claude-box's environment.
	extraEnv []string
}

func newRootlessWorld(t testing.TB) *rlWorld {
	t.Helper()
	s, r := rootlessSetup(t)
	home, err := os.MkdirTemp(r.base, "w")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	if err := os.Chown(home, r.user.UID, r.user.GID); err != nil {
		t.Fatal(err)
	}
	w := &rlWorld{s: s, r: r, home: home, daemons: map[string]*harness.Daemon{}}
	if err := r.user.Mkdir(filepath.Join(home, "xdg-run"), 0o700); err != nil {
		t.Fatal(err)
	}
	w.caFile = filepath.Join(home, "ca.pem")
	if err := r.user.WriteFile(w.caFile, s.ca.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// repo is a git checkout owned by the test user, in a place it can reach.
func (w *rlWorld) repo(t testing.TB, files map[string]string) string {
	t.Helper()
	src := harness.NewRepo(t, files)
	dir, err := os.MkdirTemp(w.home, "repo")
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(dir, "checkout")
	if err := os.Rename(src, dir); err != nil {
		t.Fatal(err)
	}
	harness.ChownTree(t, filepath.Dir(dir), w.r.user.UID, w.r.user.GID)
	return dir
}

// bin is a built binary the test user may run, or stops the test.
func (w *rlWorld) bin(t testing.TB, name string) string {
	t.Helper()
	w.s.bin(t, name)
	return w.r.bins[name]
}

// start runs daemon NAME's serve with args as the test user, HOME = the
// world's home.
func (w *rlWorld) start(t testing.TB, name string, args []string) *harness.Daemon {
	t.Helper()
	d := harness.StartDaemonAs(t, harness.DaemonConfig{
		Name: name, Bin: w.bin(t, name), Args: args, Home: w.home, CAFile: w.caFile,
	}, w.r.user)
	w.daemons[name] = d
	return d
}

// launcherEnv is claude-box's environment: the test user's, the rootless
// service, the test image, the world's daemons.
func (w *rlWorld) launcherEnv() []string {
	env := w.r.user.Env(w.home, filepath.Join(w.home, "xdg-run"), "CLAUDE_BOX_IMAGE="+w.r.image.Ref)
	env = append(env, w.r.podman.Env()...)
	for name, d := range w.daemons {
		env = append(env, strings.ToUpper(name)+"_SOCK="+d.Socket)
	}
	return append(env, w.extraEnv...)
}

// command is claude-box with args as the test user, no stdin.
func (w *rlWorld) command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := w.r.user.Command(ctx, w.launcherEnv(), w.home, w.r.bins["claude-box"], args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// claudeBox runs the launcher as the test user and returns what it did.
func (w *rlWorld) claudeBox(t testing.TB, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, stdout, stderr := w.command(ctx, args...)
	return finish(t, args, cmd.Run(), stdout, stderr)
}

// finish turns a launcher run's outcome into a result.
func finish(t testing.TB, args []string, err error, stdout, stderr *bytes.Buffer) result {
	t.Helper()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run claude-box: %v\n%s", err, r)
	}
	return r
}

// ok runs claude-box as the test user and fails the test unless it exits 0.
func (w *rlWorld) ok(t testing.TB, args ...string) result {
	t.Helper()
	r := w.claudeBox(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r)
	}
	return r
}

// background starts claude-box as the test user and waits until the box
// has created ready (a host path under its /work). It returns a function
// that waits for the launcher to exit. The box must poll for a file the
// host creates to go on: a launch's doors live only while it runs.
func (w *rlWorld) background(t testing.TB, ready string, args ...string) func() result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd, stdout, stderr := w.command(ctx, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var early error
	exitedEarly := false
	if !harness.WaitFor(2*time.Minute, func() bool {
		if _, err := os.Stat(ready); err == nil {
			return true
		}
		select {
		case early = <-exited:
			exitedEarly = true
			return true
		default:
			return false
		}
	}) || exitedEarly {
		if !exitedEarly {
			cancel()
			early = <-exited
		}
		t.Fatalf("the box never got ready\n%s", finish(t, args, early, stdout, stderr))
	}
	return func() result {
		t.Helper()
		return finish(t, args, <-exited, stdout, stderr)
	}
}

// waitForHost is the box's side of background: touch READY under /work,
// then poll until the host creates GO.
func waitForHost(ready, goOn string) string {
	return "touch /work/" + ready + "\n" +
		"i=0; while [ ! -e /work/" + goOn + " ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done"
}

// probes parses every probe report in out, in order.
func probes(t testing.TB, r result) []probe.Report {
	t.Helper()
	var out []probe.Report
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, probe.Marker) {
			rep, err := probe.Parse(line)
			if err != nil {
				t.Fatalf("%v\n%s", err, r)
			}
			out = append(out, rep)
		}
	}
	return out
}

// marked returns the value after "KEY=" on the box's output line that
// starts with it.
func marked(r result, key string) (string, bool) {
	for _, line := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// owner is a host file's uid:gid.
func owner(t testing.TB, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}

// TestRootlessOwnership: rootless podman maps the invoking user to the box
// user (keep-id): in the box the user is 1000 and the user's files are
// 1000's, a 0600 file of the user is readable, a file the box creates is the
// user's on the host; .git stays read-only and the box's exit code passes
// through.
func TestRootlessOwnership(t *testing.T) {
	w := newRootlessWorld(t)
	u := w.r.user
	repo := w.repo(t, map[string]string{"README.md": "hello\n", "secret.txt": "owner-only\n"})
	if err := os.Chmod(filepath.Join(repo, "secret.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	gitConfig, err := os.ReadFile(filepath.Join(repo, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}

	script := strings.Join([]string{
		"echo ID=$(id -u):$(id -g)",
		"echo SECRET_STAT=$(stat -c %u:%g:%a /work/secret.txt)",
		"echo SECRET=$(cat /work/secret.txt)",
		"echo made-in-box > /work/made.txt && echo MADE=ok",
		"mkdir /work/dir && echo made-in-box > /work/dir/f && echo MADE_DIR=ok",
		"echo MADE_STAT=$(stat -c %u:%g /work/made.txt)",
		"probe write -path /work/.git/config -path /work/.git/HEAD -path /work/.git/objects/made-by-box",
		"exit 7",
	}, "\n")
	res := w.claudeBox(t, "e2e-rl-own", "--repo", repo, "--", "sh", "-c", script)
	if res.code != 7 {
		t.Errorf("exit code = %d, want 7 (the box's)\n%s", res.code, res)
	}
	for key, want := range map[string]string{
		"ID":          "1000:1000",
		"SECRET_STAT": "1000:1000:600",
		"SECRET":      "owner-only",
		"MADE":        "ok",
		"MADE_DIR":    "ok",
		"MADE_STAT":   "1000:1000",
	} {
		if got, ok := marked(res, key); !ok || got != want {
			t.Errorf("in the box %s = %q, want %q\n%s", key, got, want, res)
		}
	}
	reps := probes(t, res)
	if len(reps) != 1 {
		t.Fatalf("want 1 probe report, got %d\n%s", len(reps), res)
	}
	for _, p := range []string{"/work/.git/config", "/work/.git/HEAD", "/work/.git/objects/made-by-box"} {
		if got := reps[0].Write[p]; !strings.Contains(got, "read-only file system") {
			t.Errorf("write %s = %q, want read-only file system", p, got)
		}
	}

	// On the host, what the box made is the invoking user's.
	hostUser := fmt.Sprintf("%d:%d", u.UID, u.GID)
	for _, p := range []string{"made.txt", "dir", "dir/f"} {
		if got := owner(t, filepath.Join(repo, p)); got != hostUser {
			t.Errorf("host owner of %s = %s, want %s (the user who launched)", p, got, hostUser)
		}
	}
	if b, err := os.ReadFile(filepath.Join(repo, "made.txt")); err != nil || string(b) != "made-in-box\n" {
		t.Errorf("host made.txt = %q (%v)", b, err)
	}
	if got := owner(t, filepath.Join(repo, "secret.txt")); got != hostUser {
		t.Errorf("host owner of secret.txt = %s, want %s", got, hostUser)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, ".git", "config")); !bytes.Equal(b, gitConfig) {
		t.Errorf(".git/config changed on the host")
	}
	if _, err := os.Lstat(filepath.Join(repo, ".git", "objects", "made-by-box")); err == nil {
		t.Errorf("the box created a file in .git/objects")
	}
}

// TestRootlessFloorHolds: rootless, the entrypoint starts (the floor it
// checks holds) and the floor is the rootful one: uid 1000, no
// capabilities, no_new_privs, seccomp, no user namespace or mount, no host
// secret. On a cgroup v1 host rootless podman sets no pids cgroup limit;
// the ceiling is then RLIMIT_NPROC, hard, no higher than the promised pids
// limit.
func TestRootlessFloorHolds(t *testing.T) {
	w := newRootlessWorld(t)
	for k, v := range hostSecrets {
		w.extraEnv = append(w.extraEnv, k+"="+v)
	}
	res := w.ok(t, "e2e-rl-floor", "--", "sh", "-c", "probe floor; probe read -path /proc/self/limits")
	reps := probes(t, res)
	if len(reps) != 2 {
		t.Fatalf("want 2 probe reports, got %d\n%s", len(reps), res)
	}
	floor := reps[0]
	soft, hard, err := maxProcesses(reps[1].Files["/proc/self/limits"])
	if err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	t.Logf("rootless box: pids.max %q, RLIMIT_NPROC soft %s hard %s", floor.PidsMax, soft, hard)
	if floor.PidsMax == "" {
		// No pids cgroup: the process ceiling is RLIMIT_NPROC.
		n, err := strconv.Atoi(hard)
		if err != nil || n <= 0 || n > rootlessPidsLimit {
			t.Errorf("no pids.max in the box and RLIMIT_NPROC hard = %q, want at most the promised %d", hard, rootlessPidsLimit)
		}
		if soft != hard {
			t.Errorf("RLIMIT_NPROC soft %s != hard %s", soft, hard)
		}
		floor.PidsMax = hard // what checkFloor asserts finite
	} else if n, err := strconv.Atoi(floor.PidsMax); err != nil || n > rootlessPidsLimit {
		t.Errorf("pids.max = %q, want at most the promised %d", floor.PidsMax, rootlessPidsLimit)
	}
	checkFloor(t, floor)
}

// maxProcesses reads the "Max processes" soft and hard limits from a
// /proc/PID/limits text.
func maxProcesses(limits string) (soft, hard string, err error) {
	for _, line := range strings.Split(limits, "\n") {
		if rest, ok := strings.CutPrefix(line, "Max processes"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				return f[0], f[1], nil
			}
		}
	}
	return "", "", fmt.Errorf("no Max processes line in /proc/self/limits: %q", limits)
}

// TestRootlessForkBombIsBounded: a fork loop in a rootless box stops with
// EAGAIN below the promised pids limit (on cgroup v1 by RLIMIT_NPROC,
// counted in the box's own user namespace) — the default one and one given
// with --pids-limit — and the host keeps spawning processes promptly
// meanwhile. The probe stops at twice the limit on its own, so an unbounded
// box fails the test instead of harming the host.
func TestRootlessForkBombIsBounded(t *testing.T) {
	w := newRootlessWorld(t)
	for _, tc := range []struct {
		name  string
		limit int
		flags []string
	}{
		{"default", rootlessPidsLimit, nil},
		{"pids-limit-64", 64, []string{"--pids-limit", "64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"e2e-rl-forks"}, tc.flags...), "--", "probe", "forks", "-limit", strconv.Itoa(2*tc.limit))
			var r probe.Report
			worst, spawns := hostSpawnLatency(func() { r = w.ok(t, args...).probe(t) })
			if r.Forks == nil {
				t.Fatal("no fork result")
			}
			// The box's own processes (the probe and its threads) count too,
			// so the loop stops a few short of the limit, but not far.
			if r.Forks.Started >= tc.limit || r.Forks.Started < tc.limit/2 {
				t.Errorf("started %d processes, want fewer than the promised pids limit %d (and more than half of it)", r.Forks.Started, tc.limit)
			}
			if !strings.Contains(r.Forks.Err, "resource temporarily unavailable") {
				t.Errorf("fork loop stopped with %q, want resource temporarily unavailable (EAGAIN)", r.Forks.Err)
			}
			t.Logf("rootless box (limit %d) started %d processes before %q; host spawned %d processes meanwhile, worst %s", tc.limit, r.Forks.Started, r.Forks.Err, spawns, worst)
			if worst > 2*time.Second {
				t.Errorf("host process spawn took %s during the fork bomb", worst)
			}
		})
	}
}

// TestRootlessProcessCeilingIsPerBox: RLIMIT_NPROC, the rootless ceiling,
// counts one box's processes only. While a box of the same user holds 100
// processes, a box limited to 64 still starts nearly 64: each box has its
// own user namespace, and the kernel counts per namespace and uid.
func TestRootlessProcessCeilingIsPerBox(t *testing.T) {
	w := newRootlessWorld(t)
	repo := w.repo(t, map[string]string{"README.md": "hello\n"})
	const held = 100
	hold := "i=0; while [ $i -lt " + strconv.Itoa(held) + " ]; do sleep 600 & i=$((i+1)); done\n" +
		// A child forked by & may not have exec'd sleep yet: poll.
		"held() { ps -o comm | grep -c '^sleep$'; }\n" +
		"j=0; while [ $(held) -lt " + strconv.Itoa(held) + " ] && [ $j -lt 200 ]; do sleep 0.05; j=$((j+1)); done\n" +
		"echo HELD=$(held)\n" + waitForHost(".hold-ready", ".hold-go")
	wait := w.background(t, filepath.Join(repo, ".hold-ready"), "e2e-rl-hold", "--repo", repo, "--", "sh", "-c", hold)
	const limit = 64
	r := w.ok(t, "e2e-rl-forks", "--pids-limit", strconv.Itoa(limit), "--", "probe", "forks", "-limit", strconv.Itoa(2*limit)).probe(t)
	if err := os.WriteFile(filepath.Join(repo, ".hold-go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := wait()
	if got, _ := marked(res, "HELD"); res.code != 0 || got != strconv.Itoa(held) {
		t.Errorf("the holding box: exit %d, held %q processes, want 0 and %d\n%s", res.code, got, held, res)
	}
	if r.Forks == nil {
		t.Fatal("no fork result")
	}
	if r.Forks.Started >= limit || r.Forks.Started < limit/2 {
		t.Errorf("with another box holding %d processes, a box limited to %d started %d, want fewer than %d and more than half", held, limit, r.Forks.Started, limit)
	}
	t.Logf("with %d processes in another box, the box started %d of %d before %q", held, r.Forks.Started, limit, r.Forks.Err)
}

// hostSpawnLatency runs f while spawning /bin/true on the host every
// 100 ms, and returns the worst spawn time and how many ran.
func hostSpawnLatency(f func()) (time.Duration, int) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var worst time.Duration
	var spawns int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			_ = exec.Command("/bin/true").Run()
			d := time.Since(start)
			mu.Lock()
			spawns++
			worst = max(worst, d)
			mu.Unlock()
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	f()
	mu.Lock()
	defer mu.Unlock()
	return worst, spawns
}

// TestRootlessKeeperDoor: a door works rootless. keeperd runs as the user
// who launches; the door it mints for the box stays 0600 and the user's
// (the box's user is that uid on the host), the box reaches it as uid
// 1000, and `keeper commit` lands a commit in the host repo, every file of
// which stays the user's.
func TestRootlessKeeperDoor(t *testing.T) {
	w := newRootlessWorld(t)
	u := w.r.user
	repo := w.repo(t, map[string]string{"README.md": "hello\n"})
	policy, err := json.Marshal(map[string]any{
		"version":    1,
		"repos":      []any{map[string]any{"root": repo}},
		"branches":   []string{"main"},
		"identities": []any{keeperIdentity},
	})
	if err != nil {
		t.Fatal(err)
	}
	policyPath := filepath.Join(w.home, "keeper-policy.json")
	if err := u.WriteFile(policyPath, policy, 0o600); err != nil {
		t.Fatal(err)
	}
	keeperd := w.start(t, "keeperd", []string{"--policy", policyPath})
	before := harness.Git(t, repo, "rev-parse", "HEAD")

	// The box commits, then waits for the host to look at its door: the
	// minted socket exists only while the launch lives.
	script := strings.Join([]string{
		"echo rootless >> /work/README.md",
		"keeper commit -a -m 'e2e: rootless commit' && echo KEEPER_COMMIT=ok",
		"echo DOOR_STAT=$(stat -c %u:%a /run/doors/keeperd.sock)",
		waitForHost(".rl-ready", ".rl-go"),
	}, "\n")
	wait := w.background(t, filepath.Join(repo, ".rl-ready"), "e2e-rl-keeper", "--keeper", "--repo", repo, "--", "sh", "-c", script)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The minted door on the host: the user's, 0600, in a 0700 dir of the user's.
	st, err := keeperd.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.GetLaunches()); n != 1 {
		t.Errorf("keeperd holds %d launches, want 1", n)
	}
	hostUser := fmt.Sprintf("%d:%d", u.UID, u.GID)
	for _, l := range st.GetLaunches() {
		sock := l.GetSocketPath()
		fi, err := os.Lstat(sock)
		if err != nil {
			t.Errorf("minted socket: %v", err)
			continue
		}
		sys := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 || int(sys.Uid) != u.UID {
			t.Errorf("minted socket %s: mode %s uid %d, want a socket, 0600, uid %d", sock, fi.Mode(), sys.Uid, u.UID)
		}
		dir, err := os.Stat(filepath.Dir(sock))
		if err != nil {
			t.Fatal(err)
		}
		if dir.Mode().Perm() != 0o700 || owner(t, filepath.Dir(sock)) != hostUser {
			t.Errorf("minted socket's dir %s: mode %s owner %s, want 0700 %s", filepath.Dir(sock), dir.Mode().Perm(), owner(t, filepath.Dir(sock)), hostUser)
		}
	}
	goOn := filepath.Join(repo, ".rl-go")
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := wait()
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res)
	}
	if got, _ := marked(res, "KEEPER_COMMIT"); got != "ok" {
		t.Fatalf("keeper commit failed\n%s", res)
	}
	if got, _ := marked(res, "DOOR_STAT"); got != "1000:600" {
		t.Errorf("the door in the box: %q, want 1000:600 (the user's socket, seen through keep-id)\n%s", got, res)
	}

	// The commit landed on the host, by the policy identity.
	head := harness.Git(t, repo, "rev-parse", "HEAD")
	if head == before {
		t.Fatalf("HEAD did not move on the host\n%s", res)
	}
	if got := harness.Git(t, repo, "log", "-1", "--format=%s%n%an <%ae>"); got != "e2e: rootless commit\ne2e keeper <keeper@example.test>" {
		t.Errorf("host commit = %q", got)
	}
	if got := harness.Git(t, repo, "show", "HEAD:README.md"); got != "hello\nrootless" {
		t.Errorf("committed README.md = %q, want the box's edit", got)
	}
	// Nothing in the repo, .git included, belongs to anyone but the user.
	_ = os.Remove(goOn) // the host made this one
	err = filepath.WalkDir(repo, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if got := owner(t, p); got != hostUser {
			t.Errorf("host owner of %s = %s, want %s", p, got, hostUser)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRootlessAccountVolume: the account volume is writable by the box
// user rootless and persists: a file written in one launch is read back in
// the next, and on the host it is the launching user's.
func TestRootlessAccountVolume(t *testing.T) {
	w := newRootlessWorld(t)
	const acct = "e2e-rl-acct"
	const note = "/home/claude/.config/claude/rootless-note.txt"
	first := w.ok(t, acct, "--", "sh", "-c", "echo persisted > "+note+" && echo WROTE=ok; echo DIR_STAT=$(stat -c %u:%a /home/claude/.config/claude)")
	if got, _ := marked(first, "WROTE"); got != "ok" {
		t.Fatalf("the box could not write its config dir\n%s", first)
	}
	if got, _ := marked(first, "DIR_STAT"); got != "1000:700" {
		t.Errorf("config dir in the box: %q, want 1000:700\n%s", got, first)
	}
	second := w.ok(t, acct, "--", "probe", "read", "-path", note).probe(t)
	if got := second.Files[note]; got != "persisted\n" {
		t.Errorf("second launch reads %s = %q, want %q (the account volume persists)", note, got, "persisted\n")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := w.r.podman.CLI(ctx, "volume", "inspect", "--format", "{{.Mountpoint}}", "claude-"+acct+"-config")
	if err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(strings.TrimSpace(string(out)), filepath.Base(note))
	if got, want := owner(t, host), fmt.Sprintf("%d:%d", w.r.user.UID, w.r.user.GID); got != want {
		t.Errorf("host owner of the note %s = %s, want %s", host, got, want)
	}
}
