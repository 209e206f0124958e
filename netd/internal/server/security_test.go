package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A box that opens streams and never sends Open must not hold unbounded
// server resources: waiting streams count against the launch's cap, so
// the launch's next tunnel is limited, not allowed.
func TestTunnelStreamsWithoutOpenCountAgainstTheCap(t *testing.T) {
	f := newFixture(t, Limits{MaxPerLaunch: 2, OpenTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		if _, err := f.doors["a"].Tunnel(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two waiting streams", func() bool { return f.srv.Counters()[CounterTunnelsOpen] == 2 })
	_, v := f.open(t, ctx, "a")
	if v.GetDecision() != netv1.Decision_DECISION_LIMITED || v.GetReason() != egress.ReasonLimited {
		t.Fatalf("third stream of a launch with two silent ones: %v (%s), want limited", v.GetDecision(), v.GetReason())
	}
	// Another launch is not starved by a's silent streams.
	if _, v := f.open(t, ctx, "b"); v.GetDecision() != netv1.Decision_DECISION_ALLOW {
		t.Fatalf("launch b: %v (%s)", v.GetDecision(), v.GetReason())
	}
}

// A stream that never sends Open is closed after the open timeout and
// gives its slot back.
func TestTunnelOpenTimeout(t *testing.T) {
	f := newFixture(t, Limits{OpenTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := f.doors["a"].Tunnel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	if status.Code(err) != codes.DeadlineExceeded || ctx.Err() != nil {
		t.Fatalf("silent stream ended with %v, want DeadlineExceeded from the server", err)
	}
	waitFor(t, "the slot to be released", func() bool { return f.srv.Counters()[CounterTunnelsOpen] == 0 })
}

// Revoking a launch's door cuts its open tunnels at once: no more bytes
// flow either way and the upstream connection is closed.
func TestRevokeCutsOpenTunnel(t *testing.T) {
	var upstreamClosed atomic.Bool
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
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
						upstreamClosed.Store(true)
						return
					}
				}
			}()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	p, err := egress.Compile(egress.Spec{Allow: []string{"echo.test:" + itoa(port)}, Resolve: []string{"echo.test=127.0.0.1"}, AllowPrivate: []string{"127.0.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(egress.NewEngine(p, egress.Options{Resolver: &dest.Static{}}), slog.New(slog.DiscardHandler), Limits{})
	dir, err := os.MkdirTemp("/tmp", "netdr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m, err := door.NewMinter(door.MinterConfig{Door: "net", Dir: filepath.Join(dir, "d"), Register: srv.Register,
		Validate: func(b door.Binding) error { return egress.ValidateCaveats(b.Caveats) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	md, err := m.Mint(context.Background(), door.MintRequest{LaunchID: "r", Account: "acct", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := door.Dial(md.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := netv1.NewEgressServiceClient(cc).Tunnel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&netv1.TunnelRequest{Open: &netv1.Open{Target: "echo.test:" + itoa(port), Verb: netv1.Verb_VERB_CONNECT}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := st.Recv(); err != nil || resp.GetVerdict().GetDecision() != netv1.Decision_DECISION_ALLOW {
		t.Fatalf("open: %v %v", resp, err)
	}
	if err := st.Send(&netv1.TunnelRequest{Data: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	if resp, err := st.Recv(); err != nil || string(resp.GetData()) != "ping" {
		t.Fatalf("echo: %v %v", resp, err)
	}
	if !m.Revoke(md.DoorID) {
		t.Fatal("revoke: door was not live")
	}
	for {
		_, err := st.Recv()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			t.Fatalf("revoked tunnel ended with %v, want a stream error", err)
		}
		break
	}
	waitFor(t, "the upstream connection to close", upstreamClosed.Load)
	waitFor(t, "the tunnel slot to be released", func() bool { return srv.Counters()[CounterTunnelsOpen] == 0 })
}

// A box cannot write megabytes into the host's audit log with one request:
// the target as asked is recorded truncated.
func TestAuditTargetIsBounded(t *testing.T) {
	var buf bytes.Buffer
	p, err := egress.Compile(egress.Spec{Allow: []string{"echo.test"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(egress.NewEngine(p, egress.Options{Resolver: &dest.Static{}}), slog.New(slog.NewJSONHandler(&buf, nil)), Limits{})
	for _, target := range []string{strings.Repeat("a", 1<<20) + ":443", "http://x.test/" + strings.Repeat("b", 1<<20)} {
		buf.Reset()
		verb := netv1.Verb_VERB_CONNECT
		if strings.HasPrefix(target, "http") {
			verb = netv1.Verb_VERB_HTTP
		}
		if _, err := srv.CheckTarget(context.Background(), &netv1.CheckTargetRequest{Target: target, Verb: verb}); err != nil {
			t.Fatal(err)
		}
		if n := buf.Len(); n == 0 || n > 4096 {
			t.Fatalf("audit record of a %d-byte target is %d bytes", len(target), n)
		}
	}
}
