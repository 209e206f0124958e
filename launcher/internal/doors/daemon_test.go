package doors

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
)

// fakeDaemonEnv makes the test binary act as a door daemon: `NAME serve
// --socket PATH` serves a real control socket until SIGTERM.
const fakeDaemonEnv = "CLAUDE_BOX_TEST_FAKE_DAEMON"

func TestMain(m *testing.M) {
	if os.Getenv(fakeDaemonEnv) != "" {
		os.Exit(fakeDaemon(os.Args))
	}
	os.Exit(m.Run())
}

func fakeDaemon(args []string) int {
	if len(args) != 4 || args[1] != "serve" || args[2] != "--socket" {
		return 2
	}
	sock := args[3]
	name := strings.TrimSuffix(filepath.Base(args[0]), "d")
	m, err := door.NewMinter(door.MinterConfig{Door: name, Version: "fake", Dir: sock + ".doors", PolicySummary: func() string { return "fake policy" }})
	if err != nil {
		return 1
	}
	srv := door.NewServer(door.Config{Door: name, Authorize: door.SameUser()})
	m.RegisterControl(srv.GRPC())
	l, err := door.Listen(sock)
	if err != nil {
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() { _ = srv.Serve(l) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Stop(sctx)
	m.Close(sctx)
	return 0
}

// noSystemd is a Runner on a host without a systemd user manager.
func noSystemd(context.Context, string, ...string) ([]byte, error) {
	return nil, errors.New("systemctl: not available")
}

// TestStartStatusStopDetached runs the daemons as detached processes with
// pid files (no systemd), asks their control sockets for status, and stops
// them.
func TestStartStatusStopDetached(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, d := range []string{"netd", "keeperd", "scoutd"} {
		if err := os.Symlink(self, filepath.Join(bin, d)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	t.Setenv(fakeDaemonEnv, "1")
	home, err := os.MkdirTemp("", "cbh-") // short: socket paths
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	var svcs []Service
	for _, d := range []string{"netd", "keeperd", "scoutd"} {
		svcs = append(svcs, Service{Daemon: d, Socket: filepath.Join(home, ".claude-box/run", d+".sock"), Home: home, ConfigHome: filepath.Join(home, ".config")})
	}
	ctx := context.Background()
	var out bytes.Buffer
	if err := Start(ctx, svcs, noSystemd, &out); err != nil {
		t.Fatalf("start: %v\n%s", err, out.String())
	}
	defer func() { _ = Stop(ctx, svcs, noSystemd, &out) }()
	for _, s := range svcs {
		st := GetStatus(ctx, s)
		if !st.Running || st.Version != "fake" || st.Policy != "fake policy" {
			t.Fatalf("%s status %+v", s.Daemon, st)
		}
		// The pid file records the program the kernel ran, for Stop to check.
		b, err := os.ReadFile(s.PidFile())
		if err != nil {
			t.Fatalf("%s: no pid file: %v", s.Daemon, err)
		}
		if _, exe, _ := strings.Cut(string(b), "\n"); exe != real+"\n" {
			t.Fatalf("%s: pid file %q records program %q, want %q", s.Daemon, b, exe, real)
		}
	}
	// Starting again is a no-op while they answer.
	if err := Start(ctx, svcs, noSystemd, &out); err != nil {
		t.Fatal(err)
	}
	if err := Stop(ctx, svcs, noSystemd, &out); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range svcs {
		for door.Answers(s.Socket) {
			if time.Now().After(deadline) {
				t.Fatalf("%s still answers after stop", s.Daemon)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := os.Stat(s.PidFile()); !os.IsNotExist(err) {
			t.Fatalf("%s pid file left: %v", s.Daemon, err)
		}
	}
}
