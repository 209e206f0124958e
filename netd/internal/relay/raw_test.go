package relay

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	"github.com/bounded-systems/claude-box/netd/internal/server"
)

var echoSpec = egress.Spec{Allow: []string{"echo.test"}, Resolve: []string{"echo.test=127.0.0.1"}, AllowPrivate: []string{"127.0.0.1/32"}}

// echoThrough opens a CONNECT tunnel through the relay and echoes msg.
func echoThrough(t *testing.T, addr, msg string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, connect("echo.test:443")+msg); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("status %q %v", line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("head end %q %v", blank, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q %v", got, err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close %q %v", rest, err)
	}
}

// waitTunnels waits for want tunnel audit records and returns them
// counted by transport.
func waitTunnels(t *testing.T, s *stack, want int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := map[string]int{}
		if logs := s.logs.String(); logs != "" {
			n, _ = transportCounts(t, logs)
		}
		total := 0
		for _, k := range n {
			total += k
		}
		if total >= want {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel records %v, want %d", n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A relay pointed at a netd whose doors do not serve raw tunnels carries
// every tunnel on the gRPC stream instead, with the same answers.
func TestRawFallsBackToGRPC(t *testing.T) {
	s := newStack(t, stackOpts{echo: true, spec: echoSpec, noRawServer: true})
	echoThrough(t, s.relayAddr, "ping")
	if got := roundTrip(t, s.relayAddr, connect("evil.test:443"), 0); got.status != 403 || got.reason != dest.ReasonNotAllowlisted {
		t.Fatalf("denied: %+v", got)
	}
	n := waitTunnels(t, s, 2)
	if n[server.TransportRaw] != 0 || n[server.TransportGRPC] != 2 {
		t.Fatalf("tunnels by transport %v", n)
	}
}

// The default raw path carries bytes both ways with half-close, and the
// tunnel is recorded as raw.
func TestRawEchoThroughRelay(t *testing.T) {
	s := newStack(t, stackOpts{echo: true, spec: echoSpec})
	echoThrough(t, s.relayAddr, strings.Repeat("x", 1<<20))
	n := waitTunnels(t, s, 1)
	if n[server.TransportRaw] != 1 || n[server.TransportGRPC] != 0 {
		t.Fatalf("tunnels by transport %v", n)
	}
}

// A raw door that is gone is a clean 502 naming the door, as on gRPC.
func TestRawDoorDown(t *testing.T) {
	s := newStack(t, stackOpts{echo: true, spec: echoSpec})
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.minter.Close(sctx)
	got := roundTrip(t, s.relayAddr, connect("echo.test:443"), 0)
	if got.status != 502 || got.reason != ReasonDoorDown || !strings.Contains(got.body, s.door) {
		t.Fatalf("got %+v", got)
	}
}

// Closing netd's doors (revocation, shutdown) cuts a raw tunnel that is
// open through the relay: the client sees its connection end.
func TestRawTunnelCutThroughRelay(t *testing.T) {
	s := newStack(t, stackOpts{echo: true, spec: echoSpec})
	c, err := net.Dial("tcp", s.relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, connect("echo.test:443")+"ping"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	want := "HTTP/1.1 200 Connection established\r\n\r\nping"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("got %q %v", got, err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	s.minter.Close(sctx)
	if rest, err := io.ReadAll(br); len(rest) != 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
		t.Fatalf("after the door closed: %q %v", rest, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the tunnel took %v to end", el)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.srv.Counters()[server.CounterTunnelsOpen] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("netd still holds the tunnel")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
