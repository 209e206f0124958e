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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
)

// Service is one door daemon run as a user service.
type Service struct {
	// Daemon is the daemon's name: netd, keeperd, scoutd.
	Daemon string
	// Socket is its control socket.
	Socket string
	// Home is the user's home (for unit, pid and log files).
	Home string
	// ConfigHome is ${XDG_CONFIG_HOME:-~/.config}.
	ConfigHome string
}

// Unit is the systemd user unit's name.
func (s Service) Unit() string { return "claude-box-" + s.Daemon + ".service" }

// UnitPath is where doors init writes the unit.
func (s Service) UnitPath() string { return filepath.Join(s.ConfigHome, "systemd", "user", s.Unit()) }

// PidFile is where a detached daemon's pid is kept.
func (s Service) PidFile() string {
	return filepath.Join(s.Home, ".claude-box", "run", s.Daemon+".pid")
}

// LogFile is where a detached daemon's stderr (its audit trail) goes.
func (s Service) LogFile() string {
	return filepath.Join(s.Home, ".claude-box", "log", s.Daemon+".log")
}

// UnitText renders the systemd user unit for binary bin.
func (s Service) UnitText(bin string) string {
	return fmt.Sprintf(`[Unit]
Description=claude-box door daemon %[1]s
Documentation=https://github.com/bounded-systems/claude-box

[Service]
ExecStart=%[2]s serve --socket %[3]s
Restart=on-failure
RestartSec=2
NoNewPrivileges=yes
PrivateTmp=yes

[Install]
WantedBy=default.target
`, s.Daemon, bin, s.Socket)
}

// Runner runs host commands (systemctl, journalctl); one fixed argv, no shell.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecRunner runs commands with os/exec.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// HasSystemd reports whether a systemd user manager is reachable.
func HasSystemd(ctx context.Context, run Runner) bool {
	_, err := run(ctx, "systemctl", "--user", "is-system-running")
	if err == nil {
		return true
	}
	// "degraded" exits non-zero but the manager answers.
	out, _ := run(ctx, "systemctl", "--user", "show-environment")
	return len(out) > 0 && !bytes.Contains(out, []byte("Failed to connect"))
}

// Init writes the unit of each service, pointing at the installed binary.
func Init(svcs []Service, w io.Writer) error {
	for _, s := range svcs {
		bin, err := exec.LookPath(s.Daemon)
		if err != nil {
			return fmt.Errorf("doors init: %s is not installed on PATH: %w", s.Daemon, err)
		}
		if bin, err = filepath.Abs(bin); err != nil {
			return fmt.Errorf("doors init: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(s.UnitPath()), 0o755); err != nil {
			return fmt.Errorf("doors init: %w", err)
		}
		if err := os.WriteFile(s.UnitPath(), []byte(s.UnitText(bin)), 0o644); err != nil {
			return fmt.Errorf("doors init: %w", err)
		}
		fmt.Fprintf(w, "wrote %s (%s)\n", s.UnitPath(), bin)
	}
	return nil
}

// Start starts each service: through systemd when there is one, else as a
// detached process with a pid file; it waits until the control socket answers.
func Start(ctx context.Context, svcs []Service, run Runner, w io.Writer) error {
	sd := HasSystemd(ctx, run)
	if sd {
		if _, err := run(ctx, "systemctl", "--user", "daemon-reload"); err != nil {
			return err
		}
	}
	var errs []error
	for _, s := range svcs {
		if err := startOne(ctx, s, sd, run); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "%s: running, control socket %s\n", s.Daemon, s.Socket)
	}
	return errors.Join(errs...)
}

func startOne(ctx context.Context, s Service, sd bool, run Runner) error {
	if door.Answers(s.Socket) {
		return nil
	}
	if sd {
		if _, err := os.Stat(s.UnitPath()); err != nil {
			return fmt.Errorf("%s: no unit at %s; run `claude-box doors init` first", s.Daemon, s.UnitPath())
		}
		if _, err := run(ctx, "systemctl", "--user", "start", s.Unit()); err != nil {
			return err
		}
	} else {
		bin, err := exec.LookPath(s.Daemon)
		if err != nil {
			return fmt.Errorf("%s is not installed on PATH: %w", s.Daemon, err)
		}
		if err := os.MkdirAll(filepath.Dir(s.LogFile()), 0o700); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(s.PidFile()), 0o700); err != nil {
			return err
		}
		logf, err := os.OpenFile(s.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		cmd := exec.Command(bin, "serve", "--socket", s.Socket)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start %s: %w", s.Daemon, err)
		}
		logf.Close()
		// Record the program the kernel ran, so Stop can tell the daemon
		// from whatever holds its pid later.
		exe, err := procExe(cmd.Process.Pid)
		if err != nil {
			if exe, err = filepath.EvalSymlinks(bin); err != nil {
				return fmt.Errorf("start %s: %w", s.Daemon, err)
			}
		}
		if err := writePidFile(s.PidFile(), cmd.Process.Pid, exe); err != nil {
			return err
		}
		_ = cmd.Process.Release()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !door.Answers(s.Socket) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s within 10s; see `claude-box doors logs`", s.Daemon, s.Socket)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Stop stops each service. A detached daemon is signalled only when its
// pid still runs the program recorded at start; a pid file naming anything
// else is stale: it is reported and removed, and nothing is signalled.
func Stop(ctx context.Context, svcs []Service, run Runner, w io.Writer) error {
	sd := HasSystemd(ctx, run)
	var errs []error
	for _, s := range svcs {
		stopped, err := stopDetached(s, w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if stopped || !sd {
			continue
		}
		if _, err := run(ctx, "systemctl", "--user", "stop", s.Unit()); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "%s: stopped\n", s.Daemon)
	}
	return errors.Join(errs...)
}

// writePidFile records a detached daemon: its pid, then the program it runs.
func writePidFile(path string, pid int, exe string) error {
	return os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"+exe+"\n"), 0o600)
}

// stopDetached stops the daemon its pid file names; it reports whether it
// signalled one. A pid file written before the program was recorded is
// checked against the daemon on PATH.
func stopDetached(s Service, w io.Writer) (bool, error) {
	b, err := os.ReadFile(s.PidFile())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", s.Daemon, err)
	}
	line, exe, _ := strings.Cut(string(b), "\n")
	exe = strings.TrimSuffix(exe, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return false, s.removeStale(w, fmt.Sprintf("it names no daemon pid (%q)", strings.TrimSpace(line)))
	}
	if exe == "" {
		bin, err := exec.LookPath(s.Daemon)
		if err == nil {
			exe, err = filepath.EvalSymlinks(bin)
		}
		if err != nil {
			return false, fmt.Errorf("%s: pid file %s names pid %d but not its program, and %s is not on PATH to compare: not signalled; stop it yourself and remove the pid file", s.Daemon, s.PidFile(), pid, s.Daemon)
		}
	}
	err = signalChecked(pid, syscall.SIGTERM, func() error { return checkDaemon(pid, exe) })
	var nd *notDaemonError
	switch {
	case err == nil:
		_ = os.Remove(s.PidFile())
		fmt.Fprintf(w, "%s: stopped (pid %d)\n", s.Daemon, pid)
		return true, nil
	case errors.Is(err, errGone):
		return false, s.removeStale(w, fmt.Sprintf("pid %d is not running", pid))
	case errors.As(err, &nd):
		return false, s.removeStale(w, fmt.Sprintf("pid %d is not %s (%v), so it was not signalled", pid, s.Daemon, nd))
	}
	return false, fmt.Errorf("%s: pid %d was not signalled: %w", s.Daemon, pid, err)
}

// removeStale reports a stale pid file and removes it.
func (s Service) removeStale(w io.Writer, why string) error {
	if err := os.Remove(s.PidFile()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: remove stale pid file: %w", s.Daemon, err)
	}
	fmt.Fprintf(w, "%s: removed stale pid file %s: %s\n", s.Daemon, s.PidFile(), why)
	return nil
}

// Status is one daemon's status as its control socket reports it.
type Status struct {
	Daemon   string
	Socket   string
	Running  bool
	Err      error
	Version  string
	Uptime   time.Duration
	Launches []*doorv1.Launch
	Policy   string
}

// GetStatus asks a control socket for its status.
func GetStatus(ctx context.Context, s Service) Status {
	st := Status{Daemon: s.Daemon, Socket: s.Socket}
	if err := CheckSocket(s.Socket); err != nil {
		st.Err = err
		return st
	}
	cc, err := door.Dial(s.Socket)
	if err != nil {
		st.Err = err
		return st
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	resp, err := doorv1.NewControlServiceClient(cc).GetStatus(cctx, &doorv1.GetStatusRequest{})
	if err != nil {
		st.Err = door.Unavailable(s.Socket, err)
		return st
	}
	st.Running = true
	st.Version = resp.GetVersion()
	st.Uptime = resp.GetUptime().AsDuration()
	st.Launches = resp.GetLaunches()
	st.Policy = resp.GetPolicySummary()
	return st
}
