package egressdoor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
	"github.com/bounded-systems/claude-box/scoutd/internal/scouttest"
)

// fakeNetd is a net door that allows exactly the targets in allow, dialing
// them on 127.0.0.1, and denies everything else with a private_address
// verdict. It records every target it was asked for.
type fakeNetd struct {
	netv1.UnimplementedEgressServiceServer
	allow map[string]string // target -> 127.0.0.1:port
	mu    sync.Mutex
	asked []string
}

func (f *fakeNetd) Tunnel(st grpc.BidiStreamingServer[netv1.TunnelRequest, netv1.TunnelResponse]) error {
	m, err := st.Recv()
	if err != nil {
		return err
	}
	t := m.GetOpen().GetTarget()
	f.mu.Lock()
	f.asked = append(f.asked, t)
	f.mu.Unlock()
	addr, ok := f.allow[t]
	if !ok || m.GetOpen().GetVerb() != netv1.Verb_VERB_CONNECT {
		return st.Send(&netv1.TunnelResponse{Verdict: &netv1.Verdict{Decision: netv1.Decision_DECISION_DENY, Reason: dest.ReasonPrivateAddress, Message: "no"}})
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return st.Send(&netv1.TunnelResponse{Verdict: &netv1.Verdict{Decision: netv1.Decision_DECISION_UNREACHABLE, Reason: dest.ReasonUnreachable}})
	}
	defer func() { _ = c.Close() }()
	if err := st.Send(&netv1.TunnelResponse{Verdict: &netv1.Verdict{Decision: netv1.Decision_DECISION_ALLOW}}); err != nil {
		return err
	}
	go func() {
		for {
			m, err := st.Recv()
			if err != nil || m.GetCloseWrite() {
				_ = c.(*net.TCPConn).CloseWrite()
				return
			}
			if _, err := c.Write(m.GetData()); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if serr := st.Send(&netv1.TunnelResponse{Data: append([]byte(nil), buf[:n]...)}); serr != nil {
				return serr
			}
		}
		if err != nil {
			return nil
		}
	}
}

func TestFetchThroughEgressDoor(t *testing.T) {
	ca := scouttest.NewCA(t, "content.test", "blocked.test")
	body := bytes.Repeat([]byte("through netd "), 50000)
	_, port := ca.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) }))

	fake := &fakeNetd{allow: map[string]string{"content.test:" + port: "127.0.0.1:" + port}}
	sock := filepath.Join(t.TempDir(), "netd.sock")
	l, err := door.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	netv1.RegisterEgressServiceServer(g, fake)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	cc, err := door.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })

	al, _ := dest.ParseAllowlist("content.test:" + port + ",blocked.test:" + port)
	// No resolver and no address policy: with an egress door scoutd resolves
	// nothing itself; netd does.
	s, err := scout.New(scout.Config{Allow: al, Dialer: New(cc, "/run/netd-door.sock"), RootCAs: ca.Pool, GitHubAPI: "https://api.test"})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, dg, err := s.Fetch(context.Background(), scout.FetchRequest{URL: "https://content.test:" + port + "/"}, writer{&got})
	if err != nil {
		t.Fatalf("Fetch through netd: %v", err)
	}
	if !bytes.Equal(got.Bytes(), body) || dg.Size != int64(len(body)) {
		t.Errorf("body differs: %d bytes", got.Len())
	}

	_, _, err = s.Fetch(context.Background(), scout.FetchRequest{URL: "https://blocked.test:" + port + "/"}, writer{io.Discard})
	var se *scout.Error
	if !errors.As(err, &se) || se.Reason != dest.ReasonPrivateAddress {
		t.Fatalf("netd denial = %v, want %s", err, dest.ReasonPrivateAddress)
	}
	_, _, err = s.Fetch(context.Background(), scout.FetchRequest{URL: "https://evil.test:" + port + "/"}, writer{io.Discard})
	if !errors.As(err, &se) || se.Reason != dest.ReasonNotAllowlisted {
		t.Fatalf("scoutd denial = %v, want not_allowlisted", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if strings.Contains(strings.Join(fake.asked, ","), "evil.test") {
		t.Errorf("scoutd asked netd for a host its own allowlist refuses: %v", fake.asked)
	}
}

type writer struct{ io.Writer }

func (writer) WriteHead(scout.Head) error { return nil }

// stallNetd allows every tunnel, reads the first data message, then reads
// nothing more: like a netd whose upstream stopped reading. It reports
// when a tunnel's first bytes arrived and when its stream ended.
type stallNetd struct {
	netv1.UnimplementedEgressServiceServer
	started chan struct{}
	ended   chan struct{}
}

func (f *stallNetd) Tunnel(st grpc.BidiStreamingServer[netv1.TunnelRequest, netv1.TunnelResponse]) error {
	defer close(f.ended)
	if _, err := st.Recv(); err != nil {
		return err
	}
	if err := st.Send(&netv1.TunnelResponse{Verdict: &netv1.Verdict{Decision: netv1.Decision_DECISION_ALLOW}}); err != nil {
		return err
	}
	if _, err := st.Recv(); err != nil {
		return err
	}
	close(f.started)
	<-st.Context().Done()
	return nil
}

// stalledTunnel opens a tunnel through a stallNetd.
func stalledTunnel(t *testing.T) (net.Conn, *stallNetd) {
	t.Helper()
	f := &stallNetd{started: make(chan struct{}), ended: make(chan struct{})}
	sock := filepath.Join(t.TempDir(), "netd.sock")
	l, err := door.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	netv1.RegisterEgressServiceServer(g, f)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	cc, err := door.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	c, err := New(cc, "/run/netd-door.sock").DialContext(context.Background(), "tcp", "stall.test:443")
	if err != nil {
		t.Fatal(err)
	}
	// The server stops first, so that a Write still blocked when a test
	// fails ends, and closing the conn cannot hang the cleanup.
	t.Cleanup(func() {
		g.Stop()
		_ = c.Close()
	})
	return c, f
}

// stallBytes is more than gRPC's flow-control windows (the BDP estimator
// grows them to 16 MiB at most), so a Write of it blocks in Send.
const stallBytes = 32 << 20

type writeResult struct {
	n   int
	err error
}

// within waits for ch, failing the test if it takes longer than d.
func within[T any](t *testing.T, d time.Duration, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %s", what, d)
		var zero T
		return zero
	}
}

// TestCloseEndsABlockedWrite: Close returns while a Write is blocked on
// flow control (netd not reading), the Write fails with net.ErrClosed, and
// netd sees the stream end. Close used to wait for the write lock first,
// which the blocked Write held forever.
func TestCloseEndsABlockedWrite(t *testing.T) {
	c, f := stalledTunnel(t)
	wrote := make(chan writeResult, 1)
	go func() {
		n, err := c.Write(make([]byte, stallBytes))
		wrote <- writeResult{n, err}
	}()
	within(t, 5*time.Second, f.started, "netd receiving the first bytes")
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := within(t, 5*time.Second, closed, "Close with a Write blocked"); err != nil {
		t.Errorf("Close = %v", err)
	}
	r := within(t, 5*time.Second, wrote, "the blocked Write after Close")
	if !errors.Is(r.err, net.ErrClosed) || r.n >= stallBytes {
		t.Errorf("blocked Write after Close = %d, %v; want a short write and net.ErrClosed", r.n, r.err)
	}
	within(t, 5*time.Second, f.ended, "netd's end of the stream")
}

// TestWriteDeadlineCutsABlockedWrite: a write deadline that passes while
// Write is blocked on flow control ends it with os.ErrDeadlineExceeded, and
// ends the tunnel: later writes fail the same way and netd sees the stream
// end.
func TestWriteDeadlineCutsABlockedWrite(t *testing.T) {
	c, f := stalledTunnel(t)
	wrote := make(chan writeResult, 1)
	go func() {
		n, err := c.Write(make([]byte, stallBytes))
		wrote <- writeResult{n, err}
	}()
	within(t, 5*time.Second, f.started, "netd receiving the first bytes")
	if err := c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	r := within(t, 5*time.Second, wrote, "the blocked Write past its deadline")
	if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n >= stallBytes {
		t.Errorf("blocked Write past its deadline = %d, %v; want a short write and os.ErrDeadlineExceeded", r.n, r.err)
	}
	within(t, 5*time.Second, f.ended, "netd's end of the stream")
	// A new deadline does not revive a tunnel cut midway through a write.
	_ = c.SetWriteDeadline(time.Time{})
	if n, err := c.Write([]byte("more")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Write after the cut = %d, %v; want 0, os.ErrDeadlineExceeded", n, err)
	}
}
