package door

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// expectClosed asserts that the server closes c without answering.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 64))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: read %d bytes, err %v; want the server to close it", what, n, err)
	}
}

// expectSettings asserts that the server answered c's HTTP/2 preface with
// its SETTINGS frame: the connection was taken.
func expectSettings(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [9]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("%s: no SETTINGS from the server: %v", what, err)
	}
	if hdr[3] != 0x4 {
		t.Fatalf("%s: first frame type %d, want SETTINGS", what, hdr[3])
	}
	_ = c.SetReadDeadline(time.Time{})
}

func dialUnix(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestGRPCConnectionCeiling: a guest cannot hold more gRPC connections
// open on one door than its ceiling (each costs the daemon its buffers);
// the one beyond is closed at once, and refused in the audit log; a slot
// freed is usable again.
func TestGRPCConnectionCeiling(t *testing.T) {
	var al auditLog
	log := al.logger()
	cfg := Config{Door: "test", Logger: log, Authorize: UnixPeers(), limits: connLimits{grpc: 4, sniffing: 4}}
	path, _ := serve(t, cfg, func(s *grpc.Server) { netv1.RegisterEgressServiceServer(s, echoGuest{log: log}) })
	var held []net.Conn
	for i := range 4 {
		c := dialUnix(t, path)
		if _, err := c.Write(http2Preface); err != nil {
			t.Fatal(err)
		}
		expectSettings(t, c, fmt.Sprintf("connection %d", i))
		held = append(held, c)
	}
	extra := dialUnix(t, path)
	_, _ = extra.Write(http2Preface)
	expectClosed(t, extra, "a connection beyond the ceiling")
	waitFor(t, "the refusal record", func() bool {
		for _, r := range al.records(t) {
			if r[KeyMethod] == ConnMethod && r[KeyAllow] == false && r[KeyReason] == ReasonTooManyConnections {
				return true
			}
		}
		return false
	})
	// A closed connection frees its slot: a real client gets through.
	_ = held[0].Close()
	waitFor(t, "a freed slot", func() bool {
		cc := dialNew(t, path)
		defer func() { _ = cc.Close() }()
		return Ping(context.Background(), cc, path) == nil
	})
}

// TestSniffCeiling: connections that never say what they are (slowloris)
// cannot pile up on a door beyond its ceiling: the next one waits in the
// kernel's backlog, unread, and is served once a slot frees.
func TestSniffCeiling(t *testing.T) {
	var al auditLog
	log := al.logger()
	cfg := Config{Door: "test", Logger: log, Authorize: UnixPeers(), Raw: echoRaw(nil), limits: connLimits{grpc: 4, sniffing: 4}}
	path, s := serve(t, cfg, func(s *grpc.Server) { netv1.RegisterEgressServiceServer(s, echoGuest{log: log}) })
	sniffs := func() int32 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.mux == nil {
			return -1
		}
		return s.mux.sniffs.Load()
	}
	var slow []net.Conn
	for range 4 {
		c := dialUnix(t, path)
		_, _ = c.Write([]byte("PRI * HT")) // like a preface, then nothing
		slow = append(slow, c)
	}
	waitFor(t, "the slow connections to be sniffed", func() bool { return sniffs() == 4 })
	extra := dialUnix(t, path)
	fmt.Fprintf(extra, "HI\n")
	br := bufio.NewReader(extra)
	_ = extra.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := br.ReadString('\n'); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection beyond the sniff ceiling was read: %q %v", line, err)
	}
	if n := sniffs(); n != 4 {
		t.Fatalf("sniffing %d connections, want the ceiling 4", n)
	}
	for _, c := range slow {
		_ = c.Close()
	}
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HI ") {
		t.Fatalf("raw once the slots freed: %q %v", line, err)
	}
}

// dialNew is dial without cleanup, for a connection the test closes.
func dialNew(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func TestDefaultConnectionCeilings(t *testing.T) {
	l := connLimits{}.withDefaults()
	if l.grpc != maxGRPCConns || l.sniffing != maxSniffing || maxGRPCConns <= 0 || maxSniffing <= 0 {
		t.Fatalf("defaults = %+v", l)
	}
}
