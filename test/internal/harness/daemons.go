package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
)

// Daemon is a door daemon (netd, keeperd, scoutd) running `serve` as a child
// process with its own HOME, its control socket in a temp dir, and its JSON
// log (the audit trail) captured to a file.
type Daemon struct {
	// Name is the daemon's name ("netd").
	Name string
	// Socket is its control socket.
	Socket string
	// Home is the HOME it runs with.
	Home string
	// LogPath is where its stderr goes.
	LogPath string

	cmd    *exec.Cmd
	exited chan struct{}
	mu     sync.Mutex
	err    error
}

// DaemonConfig says how to start a daemon.
type DaemonConfig struct {
	Name string
	Bin  string
	// Args follow "serve"; the harness adds --socket.
	Args []string
	// Env is added to a clean environment (PATH, HOME and SSL_CERT_FILE set by
	// the harness).
	Env []string
	// Home is the daemon's HOME; its control socket is Home/.claude-box/run/NAME.sock.
	Home string
	// CAFile, when set, becomes SSL_CERT_FILE: the daemon trusts the test CA.
	CAFile string
}

// StartDaemon starts cfg and waits until its control socket answers health
// and GetStatus. The test's cleanup stops it (SIGTERM, then SIGKILL).
func StartDaemon(tb testing.TB, cfg DaemonConfig) *Daemon {
	tb.Helper()
	d, err := LaunchDaemon(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.Stop)
	return d
}

// LaunchDaemon is StartDaemon for callers without a testing.TB.
func LaunchDaemon(cfg DaemonConfig) (*Daemon, error) {
	run := filepath.Join(cfg.Home, ".claude-box", "run")
	if err := os.MkdirAll(run, 0o700); err != nil {
		return nil, fmt.Errorf("%s: run dir: %w", cfg.Name, err)
	}
	d := &Daemon{Name: cfg.Name, Socket: filepath.Join(run, cfg.Name+".sock"), Home: cfg.Home,
		LogPath: filepath.Join(cfg.Home, cfg.Name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(d.LogPath)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", cfg.Name, err)
	}
	args := append([]string{"serve", "--socket", d.Socket}, cfg.Args...)
	cmd := exec.Command(cfg.Bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + cfg.Home}, cfg.Env...)
	if cfg.CAFile != "" {
		cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+cfg.CAFile)
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("%s: start: %w", cfg.Name, err)
	}
	d.cmd = cmd
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(d.exited)
	}()
	if err := d.waitReady(30 * time.Second); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if _, err := os.Stat(d.Socket); err == nil {
			if _, err := d.Status(ctx); err == nil {
				return nil
			} else {
				last = err
			}
		} else {
			last = err
		}
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited before serving (%v): %s", d.Name, d.waitErr(), d.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not answering on %s after %s: %v: %s", d.Name, d.Socket, timeout, last, d.LogTail())
		case <-tick.C:
		}
	}
}

func (d *Daemon) waitErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Status asks the control socket for the daemon's status.
func (d *Daemon) Status(ctx context.Context) (*doorv1.GetStatusResponse, error) {
	cc, err := door.Dial(d.Socket)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := door.Ping(ctx, cc, d.Socket); err != nil {
		return nil, err
	}
	st, err := doorv1.NewControlServiceClient(cc).GetStatus(ctx, &doorv1.GetStatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("%s status: %w", d.Name, err)
	}
	return st, nil
}

// LiveLaunches lists the launch ids the daemon holds live doors for.
func (d *Daemon) LiveLaunches(ctx context.Context) ([]string, error) {
	st, err := d.Status(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range st.GetLaunches() {
		out = append(out, l.GetLaunchId())
	}
	return out, nil
}

// Stop stops the daemon: SIGTERM, then SIGKILL after 10 s.
func (d *Daemon) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// LogTail is the end of the daemon's log.
func (d *Daemon) LogTail() string {
	b, _ := os.ReadFile(d.LogPath)
	return tail(string(b), 3000)
}

// Records parses the daemon's JSON log lines (non-JSON lines are skipped).
func (d *Daemon) Records() []map[string]any {
	f, err := os.Open(d.LogPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// WaitFor polls cond every 50 ms until it is true or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
