// Package entry is the box's entrypoint (claude-box-entry): it verifies from
// inside the security floor the launcher promised, starts the netd relay
// when the net door is mounted, then execs claude. It refuses to start
// anything when part of the floor is missing.
package entry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Paths the entrypoint reads; a test points them at fixtures.
type Paths struct {
	// Status is /proc/self/status.
	Status string
	// PidsMax lists the cgroup pids.max files to try, in order.
	PidsMax []string
	// NetSocket is the net door's socket in the box.
	NetSocket string
	// Nproc reads RLIMIT_NPROC (soft, hard).
	Nproc func() (soft, hard uint64, err error)
}

// DefaultPaths are the real paths in a box.
var DefaultPaths = Paths{
	Status:    "/proc/self/status",
	PidsMax:   []string{"/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"},
	NetSocket: "/run/doors/netd.sock",
	Nproc: func() (uint64, uint64, error) {
		var r unix.Rlimit
		err := unix.Getrlimit(unix.RLIMIT_NPROC, &r)
		return r.Cur, r.Max, err
	},
}

// EnvPidsLimit carries the pids limit the launcher promised the box.
const EnvPidsLimit = "CLAUDE_BOX_PIDS_LIMIT"

// DefaultPidsLimit is the promise when the launcher named none (the image
// run by hand): the launcher's default.
const DefaultPidsLimit = 1024

// ErrFloor reports a floor the box does not have.
var ErrFloor = errors.New("refusing to start: the promised security floor is missing")

// CheckFloor verifies: not root, no capabilities in any set, no_new_privs,
// seccomp filtering, and a process ceiling no higher than promised. The
// error names every part that is missing.
//
// The ceiling is the cgroup's pids.max when the runtime set one. Rootless
// podman on a cgroup v1 host cannot (it ignores every resource limit); there
// the launcher sets RLIMIT_NPROC to the promised limit instead, which the
// kernel counts per user namespace and per uid — every process of the box
// user in this box, which runs in its own keep-id namespace — and which the
// box user, with no capabilities, cannot raise. A hard RLIMIT_NPROC no
// higher than the promise is accepted in place of a missing pids.max.
func CheckFloor(p Paths, uid int, promised int64) error {
	var missing []string
	if uid == 0 {
		missing = append(missing, "uid is 0 (want the box user, 1000)")
	}
	st, err := readStatus(p.Status)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFloor, err)
	}
	// Every capability set must be empty, not only the effective one: a
	// permitted capability is one capset(2) away from effective, an
	// inheritable or ambient one survives execve, and a bounding one means
	// --cap-drop=all was not applied. A set the kernel did not report is
	// missing, not empty.
	for _, k := range [...]string{"CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"} {
		if v := st[k]; strings.Trim(v, "0") != "" || v == "" {
			missing = append(missing, fmt.Sprintf("%s is %q (want all capabilities dropped)", k, v))
		}
	}
	if v := st["NoNewPrivs"]; v != "1" {
		missing = append(missing, fmt.Sprintf("NoNewPrivs is %q (want 1)", v))
	}
	if v := st["Seccomp"]; v != "2" {
		missing = append(missing, fmt.Sprintf("Seccomp is %q (want 2, filtering)", v))
	}
	if err := checkPids(p, promised); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrFloor, strings.Join(missing, "; "))
	}
	return nil
}

func readStatus(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

func checkPids(p Paths, promised int64) error {
	if promised <= 0 {
		return fmt.Errorf("promised pids limit is %d (want a positive number)", promised)
	}
	cgroup := fmt.Sprintf("no pids.max in %s", strings.Join(p.PidsMax, ", "))
	for _, f := range p.PidsMax {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" || v == "" {
			cgroup = fmt.Sprintf("pids.max is %q", v)
			break
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("pids.max is %q (want a number)", v)
		}
		if n > promised {
			return fmt.Errorf("pids.max is %d (want at most the promised %d)", n, promised)
		}
		return nil
	}
	if p.Nproc == nil {
		return fmt.Errorf("%s (want a pids limit)", cgroup)
	}
	soft, hard, err := p.Nproc()
	if err != nil {
		return fmt.Errorf("%s, and RLIMIT_NPROC is unreadable: %v (want a pids limit)", cgroup, err)
	}
	if hard == unix.RLIM_INFINITY || hard > uint64(promised) || soft > hard {
		return fmt.Errorf("%s, and RLIMIT_NPROC is %s (want a pids limit, or RLIMIT_NPROC at most the promised %d)", cgroup, rlim(hard), promised)
	}
	return nil
}

func rlim(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// Promised reads the pids limit the launcher promised from the environment;
// absent, it is DefaultPidsLimit.
func Promised(getenv func(string) string) (int64, error) {
	v := getenv(EnvPidsLimit)
	if v == "" {
		return DefaultPidsLimit, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: %s is %q (want a positive number)", ErrFloor, EnvPidsLimit, v)
	}
	return n, nil
}

// Config is one run of the entrypoint.
type Config struct {
	Args   []string // PROGRAM ARGS…, as the box's command
	Getenv func(string) string
	Stderr io.Writer
	Paths  Paths
	UID    int
	// RelayListen is where the netd relay listens.
	RelayListen string
	// Exec replaces the process (syscall.Exec in production).
	Exec func(path string, argv []string, env []string) error
	// Environ is the environment passed on.
	Environ []string
	// TTY reports whether stdin is a terminal.
	TTY bool
}

// Run verifies the floor, starts the relay if the net door is mounted, and
// execs the program. With no program and no TTY it waits for ctx.
func Run(ctx context.Context, c Config) error {
	promised, err := Promised(c.Getenv)
	if err != nil {
		return err
	}
	if err := CheckFloor(c.Paths, c.UID, promised); err != nil {
		return err
	}
	args := c.Args
	prog := ""
	if len(args) > 0 && args[0] == "--exec" {
		if len(args) < 2 {
			return errors.New("--exec needs a program")
		}
		prog, args = args[1], args[2:]
	} else if p := c.Getenv("CLAUDE_BOX_EXEC"); p != "" && len(args) > 0 {
		prog = p
		args = args[1:]
	}
	if fi, err := os.Lstat(c.Paths.NetSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if err := startRelay(ctx, c); err != nil {
			return err
		}
	}
	if prog == "" {
		if len(args) == 0 {
			if c.TTY {
				return errors.New("no program to run")
			}
			<-ctx.Done()
			return nil
		}
		prog, args = args[0], args[1:]
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return fmt.Errorf("find %s: %w", prog, err)
	}
	return c.Exec(path, append([]string{prog}, args...), c.Environ)
}

// startRelay starts `netd relay` and waits until it listens.
func startRelay(ctx context.Context, c Config) error {
	bin, err := exec.LookPath("netd")
	if err != nil {
		return fmt.Errorf("net door is mounted but netd is not in the image: %w", err)
	}
	cmd := exec.Command(bin, "relay", "--listen", c.RelayListen, "--door", c.Paths.NetSocket)
	cmd.Stdout, cmd.Stderr = c.Stderr, c.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start netd relay: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.RelayListen, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("netd relay exited before listening: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netd relay did not listen on %s within 10s", c.RelayListen)
		}
	}
}
