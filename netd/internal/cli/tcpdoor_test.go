package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
)

// TestRelayOverTCPDoor runs the relay against a loopback TCP door minted
// over the control socket (DOORS_TCP=1 hosts): the token from
// NETD_DOOR_TOKEN is the grant, a wrong one gets nothing through.
func TestRelayOverTCPDoor(t *testing.T) {
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
			_, _ = c.Write([]byte("!"))
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	dir := shortDir(t)
	sock := filepath.Join(dir, "run", "netd.sock")
	srv := start(t, "serve", "--socket", sock, "--allow", fmt.Sprintf("up.test:%d", port),
		"--resolve", "up.test=127.0.0.1", "--allow-private", "127.0.0.1/32")
	waitFor(t, "control socket", 10*time.Second, func() bool { return door.Answers(sock) })
	cc, err := door.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	minted, err := doorv1.NewControlServiceClient(cc).MintDoor(ctx, &doorv1.MintDoorRequest{
		LaunchId: "tcp-1", Account: "mac", PeerUid: -1, Transport: doorv1.Transport_TRANSPORT_TCP,
	})
	if err != nil {
		t.Fatal(err)
	}
	if minted.GetAddress() == "" || minted.GetToken() == "" {
		t.Fatalf("tcp mint: %v", minted)
	}
	through := func(token string) string {
		t.Setenv(EnvDoorToken, token)
		rl := start(t, "relay", "--listen", "127.0.0.1:0", "--door", minted.GetAddress())
		var addr string
		waitFor(t, "relay listening", 10*time.Second, func() bool {
			m := listenRe.FindStringSubmatch(rl.stderr.String())
			if m != nil {
				addr = m[1]
			}
			return m != nil
		})
		defer rl.stop()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT up.test:%d HTTP/1.1\r\n\r\n", port)
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		for {
			h, err := br.ReadString('\n')
			if err != nil || h == "\r\n" {
				break
			}
			if strings.HasPrefix(h, "X-Netd-Reason:") {
				line += " " + strings.TrimSpace(h)
			}
		}
		return line
	}
	if line := through(minted.GetToken()); !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("with the token: %q", line)
	}
	if line := through("wrong"); !strings.HasPrefix(line, "HTTP/1.1 502") || !strings.Contains(line, "door_refused") {
		t.Fatalf("with a wrong token: %q", line)
	}
	// The tunnel went over the gRPC stream: a TCP door refuses raw
	// connections (they carry no token), so the relay never tries one there.
	waitFor(t, "the tunnel's audit record", 10*time.Second, func() bool {
		return strings.Contains(srv.stderr.String(), `"transport":"grpc"`)
	})
	if strings.Contains(srv.stderr.String(), `"transport":"raw"`) {
		t.Fatalf("a raw tunnel on a TCP door:\n%s", srv.stderr.String())
	}
	// A raw line sent straight to the TCP door gets no verdict: the
	// connection is closed.
	rc, err := net.Dial("tcp", minted.GetAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_ = rc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(rc, "NETD-TUNNEL/1 CONNECT up.test:%d\n", port)
	if got, err := io.ReadAll(rc); len(got) != 0 {
		t.Fatalf("raw line on a TCP door answered %q (%v)", got, err)
	}
}
