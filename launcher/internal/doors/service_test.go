package doors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
)

func TestInitWritesUnitsForInstalledDaemons(t *testing.T) {
	bin := t.TempDir()
	for _, d := range []string{"netd", "keeperd"} {
		if err := os.WriteFile(filepath.Join(bin, d), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	home := t.TempDir()
	svc := func(d string) Service {
		return Service{Daemon: d, Socket: filepath.Join(home, ".claude-box/run", d+".sock"), Home: home, ConfigHome: filepath.Join(home, ".config")}
	}
	var out bytes.Buffer
	if err := Init([]Service{svc("netd"), svc("keeperd")}, &out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(home, ".config/systemd/user/claude-box-netd.service"))
	if err != nil {
		t.Fatal(err)
	}
	want := "ExecStart=" + filepath.Join(bin, "netd") + " serve --socket " + filepath.Join(home, ".claude-box/run/netd.sock")
	if !strings.Contains(string(b), want) || !strings.Contains(string(b), "WantedBy=default.target") {
		t.Fatalf("unit:\n%s\nwant line %s", b, want)
	}
	err = Init([]Service{svc("scoutd")}, &out)
	if err == nil || !strings.Contains(err.Error(), "scoutd is not installed on PATH") {
		t.Fatalf("missing binary: %v", err)
	}
}

func TestStatusOfAbsentDaemon(t *testing.T) {
	st := GetStatus(t.Context(), Service{Daemon: "netd", Socket: filepath.Join(t.TempDir(), "netd.sock")})
	if st.Running || st.Err == nil || !strings.Contains(st.Err.Error(), "no control socket") {
		t.Fatalf("%+v", st)
	}
}

// bystander starts a process the launcher did not start: a `sleep` that a
// stale pid file may come to name. wait kills it and reports the signal it
// died of: SIGKILL when nothing else signalled it first (a fatal signal
// fixes the exit status when it is sent, so an earlier SIGTERM shows).
func bystander(t *testing.T, sleep string) (pid int, exe string, wait func() syscall.Signal) {
	t.Helper()
	exe, err := filepath.EvalSymlinks(sleep)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sleep, "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan syscall.Signal, 1)
	go func() {
		_ = cmd.Wait()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		done <- ws.Signal()
	}()
	var once sync.Once
	var sig syscall.Signal
	wait = func() syscall.Signal {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			sig = <-done
		})
		return sig
	}
	t.Cleanup(func() { wait() })
	return cmd.Process.Pid, exe, wait
}

// TestStopSignalsOnlyTheDaemon: without systemd, Stop signals the pid in a
// daemon's pid file only while that pid runs the program recorded at start;
// any other pid file is stale: reported, removed, and nothing signalled.
func TestStopSignalsOnlyTheDaemon(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("needs sleep on PATH: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "netd")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	netd, err := filepath.EvalSymlinks(self)
	if err != nil {
		t.Fatal(err)
	}
	reaped := exec.Command(self, "-test.run=^$")
	if err := reaped.Run(); err != nil {
		t.Fatal(err)
	}
	gone := reaped.Process.Pid
	cases := []struct {
		name string
		// pidFile renders the pid file from the bystander's pid and program.
		pidFile func(pid int, exe string) string
		// out renders what Stop reports.
		out func(pid int, exe, pidFile string) string
		// signal is what the bystander dies of: SIGKILL when Stop left it alone.
		signal syscall.Signal
	}{
		{
			name:    "the daemon it started",
			pidFile: func(pid int, exe string) string { return fmt.Sprintf("%d\n%s\n", pid, exe) },
			out:     func(pid int, _, _ string) string { return fmt.Sprintf("netd: stopped (pid %d)\n", pid) },
			signal:  syscall.SIGTERM,
		},
		{
			name:    "an unrelated process holding the pid",
			pidFile: func(pid int, _ string) string { return fmt.Sprintf("%d\n%s\n", pid, netd) },
			out: func(pid int, exe, pf string) string {
				return fmt.Sprintf("netd: removed stale pid file %s: pid %d is not netd (it runs %s), so it was not signalled\n", pf, pid, exe)
			},
			signal: syscall.SIGKILL,
		},
		{
			name:    "a pid file from before the program was recorded",
			pidFile: func(pid int, _ string) string { return fmt.Sprintf("%d\n", pid) },
			out: func(pid int, exe, pf string) string {
				return fmt.Sprintf("netd: removed stale pid file %s: pid %d is not netd (it runs %s), so it was not signalled\n", pf, pid, exe)
			},
			signal: syscall.SIGKILL,
		},
		{
			name:    "a pid nobody holds",
			pidFile: func(int, string) string { return fmt.Sprintf("%d\n%s\n", gone, netd) },
			out: func(_ int, _, pf string) string {
				return fmt.Sprintf("netd: removed stale pid file %s: pid %d is not running\n", pf, gone)
			},
			signal: syscall.SIGKILL,
		},
		{
			name:    "no pid",
			pidFile: func(int, string) string { return "netd\n" },
			out: func(_ int, _, pf string) string {
				return fmt.Sprintf("netd: removed stale pid file %s: it names no daemon pid (\"netd\")\n", pf)
			},
			signal: syscall.SIGKILL,
		},
		{
			name:    "init",
			pidFile: func(int, string) string { return "1\n" + netd + "\n" },
			out: func(_ int, _, pf string) string {
				return fmt.Sprintf("netd: removed stale pid file %s: it names no daemon pid (\"1\")\n", pf)
			},
			signal: syscall.SIGKILL,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			home := t.TempDir()
			s := Service{Daemon: "netd", Socket: filepath.Join(home, ".claude-box/run/netd.sock"), Home: home}
			if err := os.MkdirAll(filepath.Dir(s.PidFile()), 0o700); err != nil {
				t.Fatal(err)
			}
			pid, exe, wait := bystander(t, sleep)
			if err := os.WriteFile(s.PidFile(), []byte(c.pidFile(pid, exe)), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Stop(context.Background(), []Service{s}, noSystemd, &out); err != nil {
				t.Fatal(err)
			}
			if want := c.out(pid, exe, s.PidFile()); out.String() != want {
				t.Errorf("reported %q, want %q", out.String(), want)
			}
			if _, err := os.Stat(s.PidFile()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pid file left: %v", err)
			}
			if got := wait(); got != c.signal {
				t.Errorf("the process at pid %d died of %v, want %v", pid, got, c.signal)
			}
		})
	}
}

// userManager is a systemd user manager that answers systemctl as a real
// one would for claude-box's units: `start` serves the unit's control
// socket, `stop` ends it. It records every call.
type userManager struct {
	t        *testing.T
	degraded bool
	svcs     []Service
	mu       sync.Mutex
	calls    []string
	running  map[string]func()
}

func (f *userManager) run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := strings.Join(append([]string{name}, args...), " ")
	f.calls = append(f.calls, call)
	if name != "systemctl" || len(args) < 2 || args[0] != "--user" {
		return nil, fmt.Errorf("fake systemd: unexpected %s", call)
	}
	switch args[1] {
	case "is-system-running":
		if f.degraded {
			return []byte("degraded\n"), errors.New("exit status 1")
		}
		return []byte("running\n"), nil
	case "show-environment":
		return []byte("HOME=/home/u\n"), nil
	case "daemon-reload":
		return nil, nil
	case "start", "stop":
		for _, s := range f.svcs {
			if len(args) != 3 || args[2] != s.Unit() {
				continue
			}
			if args[1] == "start" && f.running[s.Daemon] == nil {
				f.running[s.Daemon] = serveControl(f.t, s.Daemon, s.Socket)
			}
			if args[1] == "stop" && f.running[s.Daemon] != nil {
				f.running[s.Daemon]()
				delete(f.running, s.Daemon)
			}
			return nil, nil
		}
	}
	return nil, fmt.Errorf("fake systemd: unexpected %s", call)
}

func (f *userManager) took() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// serveControl serves a real control socket for daemon at sock until the
// returned stop is called (or the test ends).
func serveControl(t *testing.T, daemon, sock string) (stop func()) {
	t.Helper()
	name := strings.TrimSuffix(daemon, "d")
	m, err := door.NewMinter(door.MinterConfig{Door: name, Version: "unit", Dir: sock + ".doors"})
	if err != nil {
		t.Fatal(err)
	}
	srv := door.NewServer(door.Config{Door: name, Authorize: door.SameUser()})
	m.RegisterControl(srv.GRPC())
	l, err := door.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Stop(ctx)
			m.Close(ctx)
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestStartStopThroughSystemd: with a systemd user manager (running or
// degraded), Start reloads the units and starts each one, and waits for its
// control socket; Stop stops each unit; a missing unit says to run
// `claude-box doors init` and starts nothing for it.
func TestStartStopThroughSystemd(t *testing.T) {
	for _, degraded := range []bool{false, true} {
		name := "running"
		probe := []string{"systemctl --user is-system-running"}
		if degraded {
			name = "degraded"
			probe = append(probe, "systemctl --user show-environment")
		}
		t.Run(name, func(t *testing.T) {
			home := shortDir(t, "cbs-")
			svc := func(d string) Service {
				return Service{Daemon: d, Socket: filepath.Join(home, "run", d+".sock"), Home: home, ConfigHome: filepath.Join(home, "cfg")}
			}
			netd, keeperd := svc("netd"), svc("keeperd")
			svcs := []Service{netd, keeperd}
			f := &userManager{t: t, degraded: degraded, svcs: svcs, running: map[string]func(){}}
			ctx := context.Background()
			var out bytes.Buffer

			// keeperd has no unit yet.
			if err := os.MkdirAll(filepath.Dir(netd.UnitPath()), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(netd.UnitPath(), []byte(netd.UnitText("/bin/netd")), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Start(ctx, svcs, f.run, &out)
			want := "keeperd: no unit at " + keeperd.UnitPath() + "; run `claude-box doors init` first"
			if err == nil || err.Error() != want {
				t.Fatalf("start without keeperd's unit: %v, want %q", err, want)
			}
			if got, want := f.took(), append(slices.Clone(probe), "systemctl --user daemon-reload", "systemctl --user start claude-box-netd.service"); !slices.Equal(got, want) {
				t.Fatalf("calls %q, want %q", got, want)
			}
			if got, want := out.String(), "netd: running, control socket "+netd.Socket+"\n"; got != want {
				t.Fatalf("reported %q, want %q", got, want)
			}

			if err := os.WriteFile(keeperd.UnitPath(), []byte(keeperd.UnitText("/bin/keeperd")), 0o644); err != nil {
				t.Fatal(err)
			}
			out.Reset()
			if err := Start(ctx, svcs, f.run, &out); err != nil {
				t.Fatal(err)
			}
			// netd answers already: only keeperd is started.
			if got, want := f.took(), append(slices.Clone(probe), "systemctl --user daemon-reload", "systemctl --user start claude-box-keeperd.service"); !slices.Equal(got, want) {
				t.Fatalf("calls %q, want %q", got, want)
			}
			for _, s := range svcs {
				if st := GetStatus(ctx, s); !st.Running || st.Version != "unit" {
					t.Fatalf("%s: %+v", s.Daemon, st)
				}
				if _, err := os.Stat(s.PidFile()); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s: a systemd unit left a pid file: %v", s.Daemon, err)
				}
			}

			out.Reset()
			if err := Stop(ctx, svcs, f.run, &out); err != nil {
				t.Fatal(err)
			}
			if got, want := f.took(), append(slices.Clone(probe), "systemctl --user stop claude-box-netd.service", "systemctl --user stop claude-box-keeperd.service"); !slices.Equal(got, want) {
				t.Fatalf("calls %q, want %q", got, want)
			}
			if got, want := out.String(), "netd: stopped\nkeeperd: stopped\n"; got != want {
				t.Fatalf("reported %q, want %q", got, want)
			}
			for _, s := range svcs {
				if door.Answers(s.Socket) {
					t.Fatalf("%s answers after stop", s.Daemon)
				}
			}
		})
	}
}

// TestStartStopsWhenTheReloadFails: a systemd that cannot reload its units
// starts nothing.
func TestStartStopsWhenTheReloadFails(t *testing.T) {
	var calls []string
	run := func(_ context.Context, name string, args ...string) ([]byte, error) {
		calls = append(calls, strings.Join(append([]string{name}, args...), " "))
		if slices.Contains(args, "daemon-reload") {
			return nil, errors.New("systemctl --user daemon-reload: exit status 1")
		}
		return nil, nil
	}
	home := t.TempDir()
	err := Start(context.Background(), []Service{{Daemon: "netd", Socket: filepath.Join(home, "netd.sock"), Home: home, ConfigHome: home}}, run, io.Discard)
	if err == nil || err.Error() != "systemctl --user daemon-reload: exit status 1" {
		t.Fatalf("got %v", err)
	}
	if want := []string{"systemctl --user is-system-running", "systemctl --user daemon-reload"}; !slices.Equal(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
}
