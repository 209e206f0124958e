package podman_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/launcher/internal/cli"
	"github.com/bounded-systems/claude-box/launcher/internal/podman"
)

// world is an isolated rootful podman API service with a tiny image.
type world struct {
	dir, sock, image string
	env              []string
	err              error
	why              string
}

var (
	once   sync.Once
	shared *world
)

const containersConf = `[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`

const fakeClaude = `#!/bin/sh
while [ $# -gt 0 ]; do
	case "$1" in
	--append-system-prompt) printf '%s' "$2" > /tmp/rulebook.txt; shift 2 ;;
	*) break ;;
	esac
done
[ $# -eq 0 ] && exit 0
exec "$@"
`

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil && shared.dir != "" {
		shared.stop()
	}
	os.Exit(code)
}

// need returns the shared podman world or skips the test naming what is
// missing.
func need(t testing.TB) *world {
	t.Helper()
	once.Do(func() { shared = start() })
	if shared.err != nil {
		t.Skipf("real podman tests need %s: %v", shared.why, shared.err)
	}
	return shared
}

func (w *world) stop() {
	if b, err := os.ReadFile(filepath.Join(w.dir, "pid")); err == nil {
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 1 {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
	_ = exec.Command("umount", "-R", filepath.Join(w.dir, "root", "overlay")).Run()
	_ = os.RemoveAll(w.dir)
}

func start() *world {
	w := &world{}
	for _, bin := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			w.why, w.err = bin+" (apt-get install podman runc)", err
			return w
		}
	}
	if runtime.GOOS != "linux" || os.Getuid() != 0 {
		w.why, w.err = "root on linux", errors.New("the isolated rootful service needs root")
		return w
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		w.why, w.err = "busybox-static", err
		return w
	}
	if out, _ := exec.Command("file", "-L", bb).Output(); len(out) > 0 && !bytes.Contains(out, []byte("statically")) {
		w.why, w.err = "busybox-static", fmt.Errorf("%s is not static", bb)
		return w
	}
	w.dir, err = os.MkdirTemp("", "cbpm-")
	if err != nil {
		w.why, w.err = "a temp dir", err
		return w
	}
	conf := filepath.Join(w.dir, "containers.conf")
	storage := filepath.Join(w.dir, "storage.conf")
	_ = os.WriteFile(conf, []byte(containersConf), 0o644)
	_ = os.WriteFile(storage, []byte(fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(w.dir, "root"), filepath.Join(w.dir, "runroot"))), 0o644)
	w.sock = filepath.Join(w.dir, "podman.sock")
	w.env = []string{"CONTAINERS_CONF=" + conf, "CONTAINERS_STORAGE_CONF=" + storage, "PATH=" + os.Getenv("PATH"), "HOME=" + w.dir}
	cmd := exec.Command("podman", "--root", filepath.Join(w.dir, "root"), "--runroot", filepath.Join(w.dir, "runroot"),
		"--volumepath", filepath.Join(w.dir, "volumes"), "--tmpdir", filepath.Join(w.dir, "tmp"),
		"system", "service", "--time=0", "unix://"+w.sock)
	cmd.Env = w.env
	logf, _ := os.Create(filepath.Join(w.dir, "service.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		w.why, w.err = "a podman service", err
		return w
	}
	_ = os.WriteFile(filepath.Join(w.dir, "pid"), []byte(fmt.Sprint(cmd.Process.Pid)), 0o600)
	go func() { _ = cmd.Wait() }()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (netConn, error) {
		return dialUnix(ctx, w.sock)
	}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get("http://d/_ping")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(w.dir, "service.log"))
			w.why, w.err = "a podman service that answers", fmt.Errorf("%v: %s", err, b)
			return w
		}
		time.Sleep(50 * time.Millisecond)
	}
	if w.image, err = w.buildImage(bb); err != nil {
		w.why, w.err = "a test image", err
	}
	return w
}

// buildImage imports a rootfs: busybox, the entrypoint and a fake claude.
func (w *world) buildImage(busybox string) (string, error) {
	entry := filepath.Join(w.dir, "claude-box-entry")
	b := exec.Command("go", "build", "-o", entry, "github.com/bounded-systems/claude-box/launcher/cmd/claude-box-entry")
	b.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := b.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build entry: %v: %s", err, out)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid})
	}
	file := func(name string, body []byte, mode int64) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))})
		_, _ = tw.Write(body)
	}
	for _, d := range []string{"bin/", "etc/", "tmp/", "run/", "proc/", "sys/", "dev/", "home/", "usr/", "usr/local/", "usr/local/bin/"} {
		dir(d, 0o755, 0)
	}
	dir("home/claude/", 0o755, 1000)
	dir("home/claude/.config/", 0o755, 1000)
	dir("home/claude/.config/claude/", 0o700, 1000)
	bbBytes, err := os.ReadFile(busybox)
	if err != nil {
		return "", err
	}
	file("bin/busybox", bbBytes, 0o755)
	for _, a := range []string{"sh", "cat", "echo", "ls", "sleep", "id", "true", "false", "env", "touch", "grep", "wc"} {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox"})
	}
	eb, err := os.ReadFile(entry)
	if err != nil {
		return "", err
	}
	file("usr/local/bin/claude-box-entry", eb, 0o755)
	file("usr/local/bin/claude", []byte(fakeClaude), 0o755)
	// netd relay stand-in for benchmarks: accepts the entrypoint's readiness probe.
	file("usr/local/bin/netd", []byte("#!/bin/sh\nexec busybox nc -l -p 3128\n"), 0o755)
	file("etc/passwd", []byte("root:x:0:0::/root:/bin/sh\nclaude:x:1000:1000::/home/claude:/bin/sh\n"), 0o644)
	file("etc/group", []byte("root:x:0:\nclaude:x:1000:\n"), 0o644)
	if err := tw.Close(); err != nil {
		return "", err
	}
	tarPath := filepath.Join(w.dir, "rootfs.tar")
	if err := os.WriteFile(tarPath, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	ref := "localhost/claude-box-unit:latest"
	out, err := w.podman("import", "--change", `ENTRYPOINT ["/usr/local/bin/claude-box-entry"]`, "--change", "ENV PATH=/usr/local/bin:/bin", tarPath, ref)
	if err != nil {
		return "", fmt.Errorf("import: %v: %s", err, out)
	}
	return ref, nil
}

func (w *world) podman(args ...string) ([]byte, error) {
	cmd := exec.Command("podman", append([]string{"--url", "unix://" + w.sock}, args...)...)
	cmd.Env = w.env
	return cmd.CombinedOutput()
}

// launch runs claude-box in-process against the world.
func (w *world) launch(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return w.launchEnv(t, nil, args...)
}

// launchEnv is launch with extra environment.
func (w *world) launchEnv(t testing.TB, extra map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	home := t.TempDir()
	env := map[string]string{"HOME": home, "CONTAINER_HOST": "unix://" + w.sock, "CLAUDE_BOX_IMAGE": w.image, "CLAUDE_BOX_RUN_DIR": filepath.Join(home, "run")}
	for k, v := range extra {
		env[k] = v
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cli.Run(ctx, args, cli.Env{
		Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &errb, Connect: podman.Connector, Version: "test",
	})
	if err != nil {
		errb.WriteString(cli.Message(err))
	}
	return out.String(), errb.String(), cli.ExitCode(err)
}

func TestLaunchArgsExitCodeAndCleanup(t *testing.T) {
	w := need(t)
	out, errOut, code := w.launch(t, "unit", "--", "sh", "-c", `echo "args:$*"; grep -c GRANTED /tmp/rulebook.txt; echo "net:$CLAUDE_BOX_ACCOUNT"; exit 7`, "sh", "a b", "c")
	if code != 7 {
		t.Fatalf("exit %d, want 7\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(out, "args:a b c") || !strings.Contains(out, "net:unit") {
		t.Fatalf("stdout %q", out)
	}
	ps, err := w.podman("ps", "-a", "--filter", "label=io.claude-box.launch", "--format", "{{.Names}}")
	if err != nil || strings.TrimSpace(string(ps)) != "" {
		t.Fatalf("box not removed: %q %v", ps, err)
	}
	vols, _ := w.podman("volume", "ls", "--format", "{{.Name}}")
	if !strings.Contains(string(vols), "claude-unit-config") {
		t.Fatalf("no account volume: %s", vols)
	}
}

func TestLaunchFloorAndNoNetwork(t *testing.T) {
	w := need(t)
	out, errOut, code := w.launch(t, "unit", "--", "sh", "-c",
		`id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ls /sys/class/net; busybox unshare -U true 2>/dev/null && echo unshare-ok; touch /etc/x 2>/dev/null && echo rootfs-rw; echo done`)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"1000\n", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2", "lo\n", "done"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	for _, bad := range []string{"unshare-ok", "rootfs-rw", "eth0"} {
		if strings.Contains(out, bad) {
			t.Errorf("box shows %q:\n%s", bad, out)
		}
	}
}

func TestPreflightFailsClosed(t *testing.T) {
	w := need(t)
	_, errOut, code := w.launch(t, "unit", "--net")
	if code != 125 || !strings.Contains(errOut, "netd") || !strings.Contains(errOut, "claude-box doors start") {
		t.Fatalf("missing daemon: exit %d: %s", code, errOut)
	}
	_, errOut, code = w.launch(t, "unit", "--image", "localhost/nope:latest")
	if code != 125 || !strings.Contains(errOut, "image not found") {
		t.Fatalf("missing image: exit %d: %s", code, errOut)
	}
	_, errOut, code = w.launchEnv(t, map[string]string{"CLAUDE_BOX_IMAGE_DIGEST": "sha256:" + strings.Repeat("0", 64)}, "unit")
	if code != 125 || !strings.Contains(errOut, "does not match its pinned digest") || !strings.Contains(errOut, "hint:") {
		t.Fatalf("pin mismatch: exit %d: %s", code, errOut)
	}
	home := t.TempDir()
	env := map[string]string{"HOME": home, "CONTAINER_HOST": "unix://" + filepath.Join(home, "none.sock")}
	var errb bytes.Buffer
	err := cli.Run(context.Background(), []string{"unit"}, cli.Env{Getenv: func(k string) string { return env[k] }, Stdout: io.Discard, Stderr: &errb, Connect: podman.Connector})
	if msg := cli.Message(err); cli.ExitCode(err) != 125 || !strings.Contains(msg, "none.sock") || !strings.Contains(msg, "hint:") {
		t.Fatalf("unreachable podman: %q", msg)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSignalIsForwarded: the signal that ends a launch reaches the box as
// itself, the box's exit code comes back, and the box is removed.
func TestSignalIsForwarded(t *testing.T) {
	w := need(t)
	home := t.TempDir()
	env := map[string]string{"HOME": home, "CONTAINER_HOST": "unix://" + w.sock, "CLAUDE_BOX_IMAGE": w.image}
	sigs := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(ctx, []string{"unit-sig", "--", "sh", "-c", `trap "echo got-int; exit 42" INT; echo ready; while true; do sleep 0.1; done`},
			cli.Env{Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &out, Connect: podman.Connector, Signals: sigs})
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("box never got ready: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	sigs <- syscall.SIGINT
	cancel()
	err := <-done
	if cli.ExitCode(err) != 42 || !strings.Contains(out.String(), "got-int") {
		t.Fatalf("exit %d (%v), output %q", cli.ExitCode(err), err, out.String())
	}
	if ps, _ := w.podman("ps", "-a", "--filter", "name=claude-box-unit-sig", "--format", "{{.Names}}"); strings.TrimSpace(string(ps)) != "" {
		t.Fatalf("box not removed after the signal: %s", ps)
	}
}
