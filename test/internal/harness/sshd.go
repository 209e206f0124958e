package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SSHD is a real OpenSSH server on 127.0.0.1 with everything it owns (host
// key, authorized_keys, pid file, log) in a temp dir. It lets the current
// user (root, in the suite) in with one client key, and allows stream-local
// forwarding: the direct-streamlocal channel podman's ssh:// connections
// dial the API socket through.
type SSHD struct {
	// Port is the TCP port it listens on, on 127.0.0.1.
	Port int
	// User is the account a client logs in as (the current user).
	User string
	// ClientKey is the private key authorized to log in (ed25519, no
	// passphrase).
	ClientKey string
	// KnownHosts is the known_hosts line for the server's host key:
	// "[127.0.0.1]:PORT ssh-ed25519 AAAA…".
	KnownHosts string
	// Dir holds the server's files.
	Dir string
	// LogPath is where sshd's stderr (-e) goes.
	LogPath string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// CheckSSHD reports whether sshd and ssh-keygen are installed.
func CheckSSHD() (string, error) {
	const bin = "/usr/sbin/sshd"
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("sshd not installed (apt-get install -y openssh-server): %w", err)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		return "", fmt.Errorf("ssh-keygen not installed (apt-get install -y openssh-client): %w", err)
	}
	return bin, nil
}

// sshdConfig is the server's whole configuration: key-only login on
// loopback, no PAM (no login session machinery in a test), and StrictModes
// off because the temp dir's owners and modes are the test's, not a home's.
// AllowTcpForwarding must allow local forwarding: sshd opens a client's
// direct-streamlocal channel (podman's API socket) only when it does, even
// with AllowStreamLocalForwarding yes ("Received request to connect to path
// …, but the request was denied"; the client sees "ssh: rejected: connect
// failed (open failed)").
const sshdConfig = `ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowStreamLocalForwarding yes
AllowTcpForwarding local
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
`

// StartSSHD starts `sshd -D -e -f CONFIG` on a free loopback port with a
// fresh host key and one authorized client key, all under tb's temp dir,
// and waits until it greets with its SSH banner. The test's cleanup stops
// it (SIGTERM, then SIGKILL) and waits for it.
func StartSSHD(tb testing.TB) *SSHD {
	tb.Helper()
	bin, err := CheckSSHD()
	Need(tb, "sshd", err)
	// Privilege separation needs /run/sshd; a host that never ran sshd
	// lacks it.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		tb.Fatalf("sshd privilege separation dir: %v", err)
	}
	dir, err := os.MkdirTemp("", "sshd-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hostKey := filepath.Join(dir, "host_ed25519")
	hostPub, err := GenerateSSHKey(ctx, hostKey)
	if err != nil {
		tb.Fatal(err)
	}
	clientKey := filepath.Join(dir, "client_ed25519")
	clientPub, err := GenerateSSHKey(ctx, clientKey)
	if err != nil {
		tb.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, []byte(clientPub+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	user := "root"
	if os.Getuid() != 0 {
		if u := os.Getenv("USER"); u != "" {
			user = u
		}
	}
	// A free port can be taken between probing it and sshd binding it: try
	// a few.
	var last error
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		s := &SSHD{Port: port, User: user, ClientKey: clientKey, Dir: dir,
			KnownHosts: fmt.Sprintf("[127.0.0.1]:%d %s", port, hostPub),
			LogPath:    filepath.Join(dir, fmt.Sprintf("sshd-%d.log", port)),
			exited:     make(chan struct{})}
		conf := filepath.Join(dir, "sshd_config")
		body := fmt.Sprintf(sshdConfig, port, hostKey, filepath.Join(dir, "sshd.pid"), authorized)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			tb.Fatal(err)
		}
		if last = s.start(ctx, bin, conf); last == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("start sshd: %v", last)
	return nil
}

// GenerateSSHKey writes a fresh ed25519 key pair to path and path.pub and
// returns the public key as "ssh-ed25519 AAAA…" (no comment).
func GenerateSSHKey(ctx context.Context, path string) (string, error) {
	c := command{Path: "ssh-keygen", Args: []string{"-q", "-t", "ed25519", "-N", "", "-C", "", "-f", path}}
	if _, err := c.output(ctx); err != nil {
		return "", fmt.Errorf("generate ssh key: %w", err)
	}
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		return "", fmt.Errorf("read ssh public key: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "", fmt.Errorf("ssh public key %s: %q is not TYPE KEY", path+".pub", b)
	}
	return f[0] + " " + f[1], nil
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs sshd and waits for its banner on the port, or its exit.
func (s *SSHD) start(ctx context.Context, bin, conf string) error {
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return fmt.Errorf("sshd log: %w", err)
	}
	cmd := exec.Command(bin, "-D", "-e", "-f", conf)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, so that stopping it never signals the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start sshd: %w", err)
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		_ = logf.Close()
		close(s.exited)
	}()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = s.greets(ctx); last == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("sshd exited (%v): %s", s.waitErr, s.LogTail())
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("sshd on 127.0.0.1:%d not ready: %v: %s", s.Port, last, s.LogTail())
		case <-tick.C:
		}
	}
}

// greets connects once and reads the server's identification line.
func (s *SSHD) greets(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("banner %q is not SSH-2.0", line)
	}
	return nil
}

// URI is an ssh:// address of path on this server, as CONTAINER_HOST takes
// it: ssh://USER@127.0.0.1:PORT/PATH.
func (s *SSHD) URI(path string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", s.User, s.Port, path)
}

// LogTail is the end of sshd's log, for error messages.
func (s *SSHD) LogTail() string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return ""
	}
	return tail(string(b), 3000)
}

// Stop sends SIGTERM to the listening sshd and SIGKILL after a grace
// period, and waits for it. A session it forked ends with its connection.
func (s *SSHD) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}
