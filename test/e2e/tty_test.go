package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// ttyLaunch is one claude-box run on a pseudo-terminal: the launcher is a
// session leader whose controlling terminal (and stdin, stdout, stderr) is
// the slave; the test types into the master and reads the screen from it.
type ttyLaunch struct {
	args   []string
	pty    *harness.PTY
	screen *harness.Screen
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// startTTY runs claude-box with args on a new terminal of rows×cols.
func (w *world) startTTY(t *testing.T, rows, cols uint16, args ...string) *ttyLaunch {
	t.Helper()
	p, err := harness.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetSize(rows, cols); err != nil {
		p.Close()
		t.Fatal(err)
	}
	cmd := exec.Command(w.s.bin(t, "claude-box"), args...)
	cmd.Env = append(w.launcherEnv(), "TERM=xterm")
	cmd.Dir = w.home
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.Slave, p.Slave, p.Slave
	// Ctty is a descriptor of the child: its stdin.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	l := &ttyLaunch{args: args, pty: p, cmd: cmd, exited: make(chan struct{})}
	l.screen = harness.Record(p.Master)
	if err := cmd.Start(); err != nil {
		p.Close()
		t.Fatal(err)
	}
	go func() {
		l.err = cmd.Wait()
		close(l.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-l.exited:
		default:
			_ = cmd.Process.Kill()
			<-l.exited
		}
		_ = p.Close()
		<-l.screen.Done()
	})
	return l
}

// String is the launch and its screen, for failure messages.
func (l *ttyLaunch) String() string {
	return "claude-box " + strings.Join(l.args, " ") + " (on a pty)\n--- screen\n" + l.screen.String()
}

// waitFor fails the test unless the screen shows want within timeout.
func (l *ttyLaunch) waitFor(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	if !l.screen.WaitFor(want, timeout) {
		t.Fatalf("%s: the screen did not show %q\n%s", timeout, want, l)
	}
}

// typeIn writes s into the terminal, as a user's keystrokes.
func (l *ttyLaunch) typeIn(t *testing.T, s string) {
	t.Helper()
	if _, err := l.pty.Master.Write([]byte(s)); err != nil {
		t.Fatalf("type %q: %v", s, err)
	}
}

// exitCode waits for the launcher to exit and returns its exit code.
func (l *ttyLaunch) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-l.exited:
	case <-time.After(timeout):
		t.Fatalf("the launcher did not exit within %s\n%s", timeout, l)
	}
	var ee *exec.ExitError
	switch {
	case l.err == nil:
		return 0
	case errors.As(l.err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("wait for claude-box: %v\n%s", l.err, l)
		return 0
	}
}

// termios reads the terminal's settings or fails the test.
func (l *ttyLaunch) termios(t *testing.T) *unix.Termios {
	t.Helper()
	tio, err := l.pty.Termios()
	if err != nil {
		t.Fatal(err)
	}
	return tio
}

// noBoxLeft fails the test when a box of account is still known to podman.
func (w *world) noBoxLeft(t *testing.T, account string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps, err := w.s.podman.CLI(ctx, "ps", "--all", "--filter", "label=io.claude-box.account="+account, "--format", "{{.ID}} {{.Status}}")
	if err != nil {
		t.Fatal(err)
	}
	if left := strings.TrimSpace(string(ps)); left != "" {
		t.Errorf("containers of %s left behind:\n%s", account, left)
	}
}

// ptsLine is what `tty` prints for a pseudo-terminal.
var ptsLine = regexp.MustCompile(`(?m)^/dev/pts/[0-9]+$`)

// TestInteractiveTTY: with a terminal as stdin and stdout the box gets a TTY
// of the same size, which follows resizes; the host terminal is raw while the
// box runs (so ^C is a keystroke for the box's terminal, not a signal to the
// launcher) and restored afterwards; input flows in, the exit code passes
// through, and the box is removed. Without a terminal, plain pipes.
func TestInteractiveTTY(t *testing.T) {
	w := newWorld(t)
	const launchTimeout = 90 * time.Second

	t.Run("tty size stdin and exit code", func(t *testing.T) {
		l := w.startTTY(t, 37, 101, "e2e-tty", "--", "sh", "-c",
			`tty; echo "size:$(stty size)"; echo ready; read line; echo "got:$line"; exit 5`)
		l.waitFor(t, "ready\n", launchTimeout)
		out := l.screen.String()
		if !ptsLine.MatchString(out) {
			t.Errorf("tty in the box is not a /dev/pts terminal\n%s", l)
		}
		if !strings.Contains(out, "size:37 101\n") {
			t.Errorf("stty size in the box is not the host terminal's 37 101\n%s", l)
		}
		l.typeIn(t, "hello box\n")
		l.waitFor(t, "got:hello box\n", 10*time.Second)
		if code := l.exitCode(t, 30*time.Second); code != 5 {
			t.Errorf("exit code = %d, want 5\n%s", code, l)
		}
		w.noBoxLeft(t, "e2e-tty")
	})

	t.Run("resize", func(t *testing.T) {
		// The box prints its size whenever it changes, and exits once it
		// is the new one (or after ~30 s, with 3).
		l := w.startTTY(t, 37, 101, "e2e-tty", "--", "sh", "-c", `last=
i=0
while [ $i -lt 300 ]; do
	s=$(stty size)
	if [ "$s" != "$last" ]; then echo "size:$s"; last=$s; fi
	if [ "$s" = "50 132" ]; then exit 0; fi
	i=$((i+1))
	sleep 0.1
done
exit 3`)
		l.waitFor(t, "size:37 101\n", launchTimeout)
		// TIOCSWINSZ on the master: the kernel sends SIGWINCH to the
		// terminal's foreground process group, the launcher's.
		if err := l.pty.SetSize(50, 132); err != nil {
			t.Fatal(err)
		}
		l.waitFor(t, "size:50 132\n", 10*time.Second)
		if code := l.exitCode(t, 30*time.Second); code != 0 {
			t.Errorf("exit code = %d, want 0\n%s", code, l)
		}
	})

	t.Run("raw mode and restore", func(t *testing.T) {
		l := w.startTTY(t, 24, 80, "e2e-tty", "--", "sh", "-c", `echo ready; read line; echo "got:$line"`)
		before := l.termios(t)
		if before.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != unix.ICANON|unix.ECHO|unix.ISIG {
			t.Fatalf("a fresh pty is not cooked (lflag %#x): the test cannot tell raw from cooked", before.Lflag)
		}
		l.waitFor(t, "ready\n", launchTimeout)
		during := l.termios(t)
		for _, f := range []struct {
			name string
			bit  uint32
		}{{"ICANON", unix.ICANON}, {"ECHO", unix.ECHO}, {"ISIG", unix.ISIG}} {
			if during.Lflag&f.bit != 0 {
				t.Errorf("while the box runs the host terminal has %s on (lflag %#x): not raw", f.name, during.Lflag)
			}
		}
		l.typeIn(t, "done\n")
		l.waitFor(t, "got:done\n", 10*time.Second)
		if code := l.exitCode(t, 30*time.Second); code != 0 {
			t.Fatalf("exit code = %d, want 0\n%s", code, l)
		}
		after := l.termios(t)
		if *after != *before {
			t.Errorf("the launcher did not restore the terminal:\nbefore %+v\nafter  %+v", *before, *after)
		}
		if after.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO {
			t.Errorf("after the launch ICANON/ECHO are not back on (lflag %#x)", after.Lflag)
		}
	})

	t.Run("ctrl-c reaches the box", func(t *testing.T) {
		// The foreground `sleep 600` is interrupted only when SIGINT comes
		// from the box's terminal (to its foreground process group): a
		// signal to the box's first process alone would leave sh waiting.
		l := w.startTTY(t, 24, 80, "e2e-tty-int", "--", "sh", "-c",
			`trap 'echo "got INT"; exit 130' INT; echo ready; while :; do sleep 600; done`)
		l.waitFor(t, "ready\n", launchTimeout)
		if tio := l.termios(t); tio.Lflag&unix.ISIG != 0 {
			t.Errorf("host terminal has ISIG on while the box runs: ^C would signal the launcher")
		}
		l.typeIn(t, "\x03")
		l.waitFor(t, "got INT\n", 10*time.Second)
		if code := l.exitCode(t, 30*time.Second); code != 130 {
			t.Errorf("exit code = %d, want 130\n%s", code, l)
		}
		w.noBoxLeft(t, "e2e-tty-int")
	})

	t.Run("pipes without a terminal", func(t *testing.T) {
		args := []string{"e2e-tty", "--", "sh", "-c", `tty; echo "tty=$?"; read line; echo "got:$line"`}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, w.s.bin(t, "claude-box"), args...)
		cmd.Env = append(w.launcherEnv(), "TERM=xterm")
		cmd.Dir = w.home
		cmd.Stdin = strings.NewReader("piped line\n")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		r := finish(t, args, cmd.Run(), &stdout, &stderr)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r)
		}
		if !strings.Contains(r.stdout, "not a tty\ntty=1\n") {
			t.Errorf("with stdin a pipe the box has a terminal\n%s", r)
		}
		if !strings.Contains(r.stdout, "got:piped line\n") {
			t.Errorf("piped stdin did not reach the box\n%s", r)
		}
		if strings.Contains(r.stdout, "\r") {
			t.Errorf("output has carriage returns: it went through a terminal\n%s", r)
		}
	})
}
