package doors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
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
