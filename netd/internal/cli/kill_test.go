package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
)

// TestHelperNetd is not a test: TestKillMidTunnel re-executes the test
// binary with NETD_HELPER=1 to run `netd` as a real process it can SIGKILL.
func TestHelperNetd(t *testing.T) {
	if os.Getenv("NETD_HELPER") != "1" {
		t.Skip("helper process for TestKillMidTunnel (needs NETD_HELPER=1)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, strings.Split(os.Getenv("NETD_ARGS"), "\x1f"), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "netd:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestKillMidTunnel kills `netd serve` with SIGKILL while a tunnel is
// open: the tunnel's decision is already in netd's log file (it was
// written when the tunnel opened, and netd never gets to close it), the
// tunnel ends, the relay answers a clean 502 while netd is gone, and
// serves again once a new netd has taken over the stale socket.
func TestKillMidTunnel(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes; skipped under -short")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						_, _ = c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	dir := shortDir(t)
	doorPath := filepath.Join(dir, "doors", "netd.sock")
	args := []string{"serve", "--socket", filepath.Join(dir, "run", "netd.sock"), "--door", doorPath,
		"--allow", fmt.Sprintf("echo.test:%d", port), "--resolve", "echo.test=127.0.0.1", "--allow-private", "127.0.0.1/32"}
	logPath := filepath.Join(dir, "netd.log")
	spawn := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNetd$")
		cmd.Env = append(os.Environ(), "NETD_HELPER=1", "NETD_ARGS="+strings.Join(args, "\x1f"))
		// netd's stderr (its audit trail) goes straight to a file, as
		// under the launcher: what is in it was written by netd itself.
		logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer logFile.Close()
		cmd.Stdout, cmd.Stderr = io.Discard, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	netd := spawn()
	waitFor(t, "netd door", 20*time.Second, func() bool { return door.Answers(doorPath) })
	rl := start(t, "relay", "--listen", "127.0.0.1:0", "--door", doorPath)
	var relayAddr string
	waitFor(t, "relay listening", 10*time.Second, func() bool {
		m := listenRe.FindStringSubmatch(rl.stderr.String())
		if m != nil {
			relayAddr = m[1]
		}
		return m != nil
	})
	open := func() (net.Conn, *bufio.Reader, string) {
		c, err := net.Dial("tcp", relayAddr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT echo.test:%d HTTP/1.1\r\n\r\n", port)
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		if strings.HasPrefix(line, "HTTP/1.1 200") {
			_, _ = br.ReadString('\n')
		}
		return c, br, line
	}
	c, br, line := open()
	defer c.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("tunnel: %q", line)
	}
	fmt.Fprint(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q %v", got, err)
	}
	// While the tunnel is open, its decision is on disk.
	logged := func() string {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	recs := auditRecords(t, logged())
	var id any
	for _, r := range recs {
		if r["method"] == "Tunnel" && r["allow"] == true && r["host"] == "echo.test" {
			id = r["tunnel_id"]
		}
	}
	if id == nil {
		t.Fatalf("no audit record of the open tunnel in netd's log:\n%s", logged())
	}
	if err := netd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = netd.Process.Wait()
	// netd never closed it: the decision is all there is, and all that is needed.
	if n := len(records(t, logged(), "tunnel_closed")); n != 0 {
		t.Fatalf("%d close records from a netd killed mid-tunnel:\n%s", n, logged())
	}
	// The open tunnel ends: EOF (or a reset), not a hang.
	if _, err := io.ReadAll(br); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("tunnel after SIGKILL: %v", err)
	}
	c2, _, line := open()
	c2.Close()
	if !strings.HasPrefix(line, "HTTP/1.1 502") {
		t.Fatalf("with netd killed: %q", line)
	}
	spawn()
	waitFor(t, "relay to serve again", 20*time.Second, func() bool {
		c, _, line := open()
		c.Close()
		return strings.HasPrefix(line, "HTTP/1.1 200")
	})
}
