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
	"sync"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

func echoServer(t *testing.T) int {
	t.Helper()
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
						return
					}
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

type fixture struct {
	srv   *Server
	m     *door.Minter
	port  int
	doors map[string]netv1.EgressServiceClient
	paths map[string]string // door socket by launch
	logs  *syncBuffer
}

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

func newFixture(t *testing.T, lim Limits) *fixture {
	t.Helper()
	return newFixtureOn(t, lim, echoServer(t))
}

// newFixtureOn serves doors a and b (launches "a" and "b", caveat
// echo.test:port) whose policy admits echo.test:port, at 127.0.0.1.
func newFixtureOn(t *testing.T, lim Limits, port int) *fixture {
	t.Helper()
	p, err := egress.Compile(egress.Spec{Allow: []string{"echo.test:" + itoa(port)}, Resolve: []string{"echo.test=127.0.0.1"}, AllowPrivate: []string{"127.0.0.1/32"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{port: port, doors: map[string]netv1.EgressServiceClient{}, paths: map[string]string{}, logs: &syncBuffer{}}
	f.srv = New(egress.NewEngine(p, egress.Options{Resolver: &dest.Static{}}), slog.New(slog.NewJSONHandler(f.logs, nil)), lim)
	dir, err := os.MkdirTemp("/tmp", "netds")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f.m, err = door.NewMinter(door.MinterConfig{Door: DoorName, Dir: filepath.Join(dir, "d"), Register: f.srv.Register, Raw: f.srv.Raw,
		Logger:        slog.New(slog.NewJSONHandler(f.logs, nil)), // the runtime records too, as in netd serve
		Validate:      func(b door.Binding) error { return egress.ValidateCaveats(b.Caveats) },
		Informational: Informational()})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Serving(f.m)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.m.Close(ctx)
	})
	for _, launch := range []string{"a", "b"} {
		md, err := f.m.Mint(context.Background(), door.MintRequest{LaunchID: launch, Account: "acct", PeerUID: -1,
			Caveats: []guestroom.Caveat{{Key: "host", Value: "echo.test:" + itoa(port)}}})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := door.Dial(md.SocketPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		f.doors[launch] = netv1.NewEgressServiceClient(cc)
		f.paths[launch] = md.SocketPath
	}
	return f
}

func itoa(p int) string { return dest.Target{Port: uint16(p)}.String()[1:] }

// open starts a tunnel on a launch's door and returns its verdict.
func (f *fixture) open(t *testing.T, ctx context.Context, launch string) (netv1.EgressService_TunnelClient, *netv1.Verdict) {
	t.Helper()
	st, err := f.doors[launch].Tunnel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&netv1.TunnelRequest{Open: &netv1.Open{Target: "echo.test:" + itoa(f.port), Verb: netv1.Verb_VERB_CONNECT}}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return st, resp.GetVerdict()
}

func TestTunnelCaps(t *testing.T) {
	f := newFixture(t, Limits{MaxTunnels: 3, MaxPerLaunch: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	want := func(v *netv1.Verdict, d netv1.Decision) {
		t.Helper()
		if v.GetDecision() != d {
			t.Fatalf("verdict %v (%s), want %v", v.GetDecision(), v.GetReason(), d)
		}
	}
	a1, v := f.open(t, ctx, "a")
	want(v, netv1.Decision_DECISION_ALLOW)
	_, v = f.open(t, ctx, "a")
	want(v, netv1.Decision_DECISION_ALLOW)
	_, v = f.open(t, ctx, "a")
	want(v, netv1.Decision_DECISION_LIMITED)
	if v.GetReason() != egress.ReasonLimited {
		t.Fatalf("reason %s", v.GetReason())
	}
	// Launch a's flood does not starve launch b.
	_, v = f.open(t, ctx, "b")
	want(v, netv1.Decision_DECISION_ALLOW)
	// The global cap holds across launches.
	_, v = f.open(t, ctx, "b")
	want(v, netv1.Decision_DECISION_LIMITED)
	// Closing a tunnel frees its slot.
	if err := a1.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := a1.Recv(); err != nil {
			break
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.srv.Counters()[CounterTunnelsOpen] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("open tunnels %d", f.srv.Counters()[CounterTunnelsOpen])
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, v = f.open(t, ctx, "a")
	want(v, netv1.Decision_DECISION_ALLOW)
	if n := f.srv.Counters()[DecisionKey("limited", egress.ReasonLimited)]; n != 2 {
		t.Fatalf("limited counter %d", n)
	}
}

func TestTunnelDataAndIdleTimeout(t *testing.T) {
	f := newFixture(t, Limits{IdleTimeout: time.Second}) // long enough that a loaded machine does not idle the echo out
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, v := f.open(t, ctx, "a")
	if v.GetDecision() != netv1.Decision_DECISION_ALLOW || v.GetHost() != "echo.test" {
		t.Fatalf("verdict %v", v)
	}
	if err := st.Send(&netv1.TunnelRequest{Data: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil || string(resp.GetData()) != "ping" {
		t.Fatalf("echo %q %v", resp.GetData(), err)
	}
	// Then silence: the idle timeout ends the tunnel.
	start := time.Now()
	_, err = st.Recv()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("idle tunnel ended with %v, want EOF", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("idle timeout took %v", el)
	}
	c := f.srv.Counters()
	if c[CounterBytesUp] != 4 || c[CounterBytesDown] != 4 || c[CounterTunnelsTotal] != 1 {
		t.Fatalf("counters %v", c)
	}
}

func TestTunnelProtocolErrors(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := f.doors["a"].Tunnel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&netv1.TunnelRequest{Data: []byte("no open")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err == nil || !strings.Contains(err.Error(), "open") {
		t.Fatalf("missing open: %v", err)
	}
	resp, err := f.doors["a"].CheckTarget(ctx, &netv1.CheckTargetRequest{Target: "echo.test:443"})
	if err != nil || resp.GetVerdict().GetReason() != dest.ReasonPortNotAllowed || resp.GetVerdict().GetRule() != "allowlist" {
		t.Fatalf("check: %v %v", resp, err)
	}
	resp, err = f.doors["a"].CheckTarget(ctx, &netv1.CheckTargetRequest{Target: "echo.test:" + itoa(f.port)})
	if err != nil || resp.GetVerdict().GetDecision() != netv1.Decision_DECISION_ALLOW || len(resp.GetAddresses()) != 1 ||
		resp.GetAddresses()[0] != "127.0.0.1 (loopback)" || resp.GetMatchedEntry() != "echo.test:"+itoa(f.port) {
		t.Fatalf("check: %v %v", resp, err)
	}
}

func TestWritePrometheus(t *testing.T) {
	var b bytes.Buffer
	if err := WritePrometheus(&b, "netd_", map[string]int64{DecisionKey("deny", "not_allowlisted"): 3, CounterTunnelsOpen: 1}); err != nil {
		t.Fatal(err)
	}
	want := "# TYPE netd_decisions_total counter\nnetd_decisions_total{verdict=\"deny\",reason=\"not_allowlisted\"} 3\n# TYPE netd_tunnels_open gauge\nnetd_tunnels_open 1\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRedactTarget(t *testing.T) {
	for in, want := range map[string]string{
		"api.example.com:443":                   "api.example.com:443",
		"http://plain.test/hook/SECRET?token=x": "http://plain.test/…",
		"http://plain.test?token=x":             "http://plain.test/…",
		"http://plain.test":                     "http://plain.test",
		"http://u:pw@plain.test/":               "http://…@plain.test/…",
		"user:pw@evil.com:443":                  "…@evil.com:443",
	} {
		if got := redactTarget(in); got != want {
			t.Errorf("redactTarget(%q) = %q, want %q", in, got, want)
		}
	}
}
