package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// controlSockets are the daemons' own sockets, the only ones allowed to
// outlive a launch.
func (w *world) controlSockets() []string {
	var out []string
	for _, d := range w.daemons {
		out = append(out, d.Socket)
	}
	return out
}

// launchSockets lists sockets under HOME that are not control sockets.
func (w *world) launchSockets(t testing.TB) []string {
	t.Helper()
	ctl := w.controlSockets()
	var out []string
	for _, s := range w.hostSockets(t) {
		if !slices.Contains(ctl, s) {
			out = append(out, s)
		}
	}
	return out
}

// liveLaunches asks every daemon for its live launches.
func (w *world) liveLaunches(t testing.TB) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]string{}
	for name, d := range w.daemons {
		ids, err := d.LiveLaunches(ctx)
		if err != nil {
			t.Fatalf("%s status: %v", name, err)
		}
		if len(ids) > 0 {
			out[name] = ids
		}
	}
	return out
}

// TestRevocation: when a box exits, and when its launcher is killed with
// SIGKILL, the launch's door sockets disappear from the host and the daemons
// report no live launch; a box that outlives its launcher holds only dead
// doors, and is removed.
func TestRevocation(t *testing.T) {
	w := newWorld(t)
	w.startScoutd(t, nil, "")
	w.startNetd(t, nil)

	t.Run("exit", func(t *testing.T) {
		r := w.ok(t, "e2e-revoke", "--scout", "--net", "--", "probe", "env").probe(t)
		id := launchID(t, r)
		if live := w.liveLaunches(t); len(live) != 0 {
			t.Errorf("after launch %s exited, daemons still hold %v", id, live)
		}
		if s := w.launchSockets(t); len(s) != 0 {
			t.Errorf("after launch %s exited, sockets remain: %v", id, s)
		}
	})

	t.Run("sigkill", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, w.s.bin(t, "claude-box"), "e2e-revoke", "--scout", "--net", "--", "sleep", "600")
		cmd.Env = w.launcherEnv()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

		var live map[string][]string
		if !harness.WaitFor(60*time.Second, func() bool { live = w.liveLaunches(t); return len(live) == 2 }) {
			t.Fatalf("the launch never held both doors (live %v)\n%s", live, out.String())
		}
		sockets := w.launchSockets(t)
		if len(sockets) < 2 {
			t.Errorf("live launch has sockets %v, want one per door", sockets)
		}
		var ids []string
		for _, l := range live {
			ids = append(ids, l...)
		}
		sort.Strings(ids)
		ids = slices.Compact(ids)
		if len(ids) != 1 {
			t.Fatalf("want one launch id across the daemons, got %v", ids)
		}
		// Kill the launcher only once its box is running.
		var containers []string
		running := harness.WaitFor(60*time.Second, func() bool {
			ps, _ := w.s.podman.CLI(ctx, "ps", "--filter", "label=io.claude-box.launch="+ids[0], "--filter", "status=running", "--format", "{{.ID}}")
			containers = strings.Fields(string(ps))
			return len(containers) > 0
		})
		if !running {
			t.Fatalf("the box of launch %s never ran\n%s", ids[0], out.String())
		}

		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		if !harness.WaitFor(30*time.Second, func() bool { return len(w.liveLaunches(t)) == 0 }) {
			t.Errorf("30s after SIGKILL of the launcher, daemons still hold %v", w.liveLaunches(t))
		}
		if !harness.WaitFor(10*time.Second, func() bool { return len(w.launchSockets(t)) == 0 }) {
			t.Errorf("after SIGKILL of the launcher, sockets remain: %v", w.launchSockets(t))
		}
		// A box that outlived its launcher holds dead doors.
		for _, c := range containers {
			o, err := w.s.podman.CLI(ctx, "exec", c, "/usr/local/bin/probe", "sockets", "-path", "/run/doors/scoutd.sock", "-path", "/run/doors/netd.sock")
			if err != nil {
				t.Logf("box %s is gone: %v", c, err)
				continue
			}
			t.Logf("box %s outlived its launcher: %s", c, strings.TrimSpace(string(o)))
			r, perr := parseProbe(string(o))
			if perr != nil {
				t.Errorf("probe in orphaned box %s: %v", c, perr)
				continue
			}
			for _, p := range []string{"/run/doors/scoutd.sock", "/run/doors/netd.sock"} {
				if r.Connect[p] == "ok" {
					t.Errorf("orphaned box %s still connects to %s", c, p)
				}
			}
		}
		// The launcher's reaper removes the box once the launcher is gone.
		var left []string
		if !harness.WaitFor(30*time.Second, func() bool {
			ps, _ := w.s.podman.CLI(ctx, "ps", "--all", "--filter", "label=io.claude-box.launch="+ids[0], "--format", "{{.ID}} {{.Status}}")
			left = strings.Split(strings.TrimSpace(string(ps)), "\n")
			return strings.TrimSpace(string(ps)) == ""
		}) {
			t.Errorf("30s after SIGKILL of the launcher, its box remains: %v", left)
		}
		for _, c := range containers {
			_, _ = w.s.podman.CLI(ctx, "rm", "--force", "--time", "0", c)
		}
	})
}
