package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/harness"
	"github.com/bounded-systems/claude-box/test/internal/probe"
)

// world is one test's host side: a HOME of its own (so the daemons' control
// sockets, the launcher's state and its labels file are fresh), the daemons
// it started, and the environment claude-box runs with.
type world struct {
	s       *suite
	home    string
	caFile  string
	daemons map[string]*harness.Daemon
	// extraEnv is added to claude-box's environment (e.g. host secrets).
	extraEnv []string
}

// newWorld is a world for a launcher test: it stops the test (skip, or
// fail in CI) when claude-box is not built.
func newWorld(t testing.TB) *world {
	t.Helper()
	w := newHarnessWorld(t)
	w.s.bin(t, "claude-box")
	return w
}

// newHarnessWorld is a world for a test of the harness's own pieces.
func newHarnessWorld(t testing.TB) *world {
	t.Helper()
	s := setup(t)
	home, err := os.MkdirTemp(s.dir, "w")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	w := &world{s: s, home: home, daemons: map[string]*harness.Daemon{}}
	w.caFile = filepath.Join(home, "ca.pem")
	if err := os.WriteFile(w.caFile, s.ca.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// start runs daemon NAME's serve with args, HOME = the world's home.
func (w *world) start(t testing.TB, name string, args []string, env ...string) *harness.Daemon {
	t.Helper()
	d := harness.StartDaemon(t, harness.DaemonConfig{
		Name: name, Bin: w.s.bin(t, name), Args: args, Env: env, Home: w.home, CAFile: w.caFile,
	})
	w.daemons[name] = d
	return d
}

// launcherEnv is the environment claude-box runs with: a clean one, the
// isolated podman service, the test image, the world's HOME and daemons.
func (w *world) launcherEnv() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + w.home,
		"XDG_CONFIG_HOME=" + filepath.Join(w.home, ".config"),
		"XDG_RUNTIME_DIR=" + filepath.Join(w.home, "xdg-run"),
		"CLAUDE_BOX_IMAGE=" + w.s.image.Ref,
	}
	env = append(env, w.s.podman.Env()...)
	for name, d := range w.daemons {
		env = append(env, strings.ToUpper(name)+"_SOCK="+d.Socket)
	}
	return append(env, w.extraEnv...)
}

// result is what one claude-box invocation did.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int
}

func (r result) String() string {
	return "claude-box " + strings.Join(r.args, " ") + "\n--- stdout\n" + r.stdout + "\n--- stderr\n" + r.stderr
}

// probe parses the probe report in the box's output.
func (r result) probe(t testing.TB) probe.Report {
	t.Helper()
	rep, err := probe.Parse(r.stdout)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	return rep
}

// claudeBox runs the launcher with args and no stdin, and returns what it did.
func (w *world) claudeBox(t testing.TB, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.s.bin(t, "claude-box"), args...)
	cmd.Env = w.launcherEnv()
	cmd.Dir = w.home
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return finish(t, args, cmd.Run(), &stdout, &stderr)
}

// ok runs claude-box and fails the test unless it exits 0.
func (w *world) ok(t testing.TB, args ...string) result {
	t.Helper()
	r := w.claudeBox(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r)
	}
	return r
}

// parseProbe parses a probe report from raw output.
func parseProbe(out string) (probe.Report, error) { return probe.Parse(out) }
