package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// containersConf is the engine configuration the isolated service runs with.
//
//   - runtime runc: crun fails on this kind of host's hybrid cgroup layout.
//   - cgroup_manager cgroupfs: there is no systemd to delegate to.
//   - events_logger file: no journald.
//   - default_ulimits empty: podman otherwise raises nofile/nproc above the
//     host's limits, which needs CAP_SYS_RESOURCE (absent here) and makes
//     runc fail with "error setting rlimit type 7".
const containersConf = `[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`

// Podman is an isolated podman API service: its own storage, state, network
// config, volumes and socket, all under Dir. Nothing it does touches the
// host's default podman store.
type Podman struct {
	// Dir holds everything the service owns.
	Dir string
	// Socket is the service's API socket.
	Socket string
	// Bin is the podman binary.
	Bin string

	env     []string
	global  []string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logPath string
}

// PodmanOptions tunes StartPodman.
type PodmanOptions struct {
	// StorageDriver is "vfs" (default: no mounts left behind, works nested)
	// or "overlay".
	StorageDriver string
	// Timeout bounds the wait for the API socket (default 30s).
	Timeout time.Duration
}

// CheckPodman reports whether podman and runc are installed.
func CheckPodman() (string, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return "", fmt.Errorf("podman not installed (apt-get install -y podman): %w", err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "", fmt.Errorf("runc not installed (apt-get install -y runc): %w", err)
	}
	return bin, nil
}

// StartPodman starts `podman system service` with state under dir and waits
// until its API answers /_ping. Close stops it and removes its containers.
func StartPodman(ctx context.Context, dir string, opt PodmanOptions) (*Podman, error) {
	bin, err := CheckPodman()
	if err != nil {
		return nil, err
	}
	if opt.StorageDriver == "" {
		opt.StorageDriver = "vfs"
	}
	if opt.Timeout == 0 {
		opt.Timeout = 30 * time.Second
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("podman dir: %w", err)
	}
	p := &Podman{Dir: dir, Socket: filepath.Join(dir, "podman.sock"), Bin: bin, exited: make(chan struct{}), logPath: filepath.Join(dir, "service.log")}
	confPath := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(confPath, []byte(containersConf), 0o600); err != nil {
		return nil, fmt.Errorf("write containers.conf: %w", err)
	}
	root, runroot := filepath.Join(dir, "root"), filepath.Join(dir, "run")
	storageConf := fmt.Sprintf("[storage]\ndriver = %q\ngraphroot = %q\nrunroot = %q\n", opt.StorageDriver, root, runroot)
	storagePath := filepath.Join(dir, "storage.conf")
	if err := os.WriteFile(storagePath, []byte(storageConf), 0o600); err != nil {
		return nil, fmt.Errorf("write storage.conf: %w", err)
	}
	p.env = append(cleanEnv(os.Environ()),
		"CONTAINERS_CONF="+confPath,
		"CONTAINERS_STORAGE_CONF="+storagePath,
		"TMPDIR="+filepath.Join(dir, "tmp"),
	)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("podman tmp dir: %w", err)
	}
	p.global = globalFlags(dir, root, runroot, opt.StorageDriver)
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, fmt.Errorf("podman service log: %w", err)
	}
	args := append(append([]string{}, p.global...), "system", "service", "--time=0", "unix://"+p.Socket)
	cmd := exec.Command(bin, args...)
	cmd.Env = p.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, so that stopping it never signals the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start podman service: %w", err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		_ = logf.Close()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, opt.Timeout); err != nil {
		p.stopService()
		return nil, err
	}
	return p, nil
}

// cleanEnv drops variables that would point podman somewhere else.
// globalFlags are podman's global flags for an isolated service whose
// state lives under dir: what this kind of host needs (see the package doc).
func globalFlags(dir, root, runroot, driver string) []string {
	return []string{
		"--root", root,
		"--runroot", runroot,
		"--tmpdir", filepath.Join(dir, "libpod"),
		"--network-config-dir", filepath.Join(dir, "networks"),
		"--volumepath", filepath.Join(dir, "volumes"),
		"--storage-driver", driver,
		"--cgroup-manager", "cgroupfs",
		"--events-backend", "file",
		"--runtime", "runc",
	}
}

func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "DOCKER_HOST", "TMPDIR":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// waitReady polls /_ping until it answers OK, the service exits, or the
// deadline passes.
func (p *Podman) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := p.HTTPClient()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://d/_ping", nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "OK" {
				return nil
			}
			err = fmt.Errorf("ping: %s %q", resp.Status, body)
		}
		last = err
		select {
		case <-p.exited:
			return fmt.Errorf("podman service exited (%v): %s", p.waitErr, p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("podman service at %s not ready after %s: %v: %s", p.Socket, timeout, last, p.LogTail())
		case <-tick.C:
		}
	}
}

// HTTPClient talks to the service's API socket.
func (p *Podman) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p.Socket)
		},
	}, Timeout: 30 * time.Second}
}

// URL is the service's address as CONTAINER_HOST takes it.
func (p *Podman) URL() string { return "unix://" + p.Socket }

// Env is what a client of this service (the launcher) needs in its
// environment: CONTAINER_HOST pointing at the service.
func (p *Podman) Env() []string {
	return []string{"CONTAINER_HOST=" + p.URL()}
}

// LogTail is the end of the service's log, for error messages.
func (p *Podman) LogTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return tail(string(b), 3000)
}

// CLI runs the podman CLI as a remote client of the service. The suite uses
// it to build the test image and to inspect; launches go through claude-box.
func (p *Podman) CLI(ctx context.Context, args ...string) ([]byte, error) {
	c := command{Path: p.Bin, Args: append([]string{"--url", p.URL()}, args...), Env: p.env}
	return c.output(ctx)
}

// CLIResult is what one podman CLI invocation did.
type CLIResult struct {
	Stdout, Stderr string
	// Code is podman's exit code; for `podman run`, the container's.
	Code int
}

// CLIRun is CLI for a test that expects podman or its container to fail: a
// non-zero exit is a result, not an error. The error reports a podman that
// could not be run at all.
func (p *Podman) CLIRun(ctx context.Context, args ...string) (CLIResult, error) {
	cmd := exec.CommandContext(ctx, p.Bin, append([]string{"--url", p.URL()}, args...)...)
	cmd.Env = p.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := CLIResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		return r, fmt.Errorf("%s %s: %w", p.Bin, strings.Join(args, " "), err)
	}
	return r, nil
}

// Close removes every container the service runs, stops it, and waits for it.
// The state under Dir is left for the caller's temp dir cleanup.
func (p *Podman) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, rmErr := p.CLI(ctx, "rm", "--all", "--force", "--time", "0")
	p.stopService()
	return rmErr
}

// stopService sends SIGTERM to the service and SIGKILL after a grace period.
func (p *Podman) stopService() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Exited reports whether the service process has exited.
func (p *Podman) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}
