package relay

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	"github.com/bounded-systems/claude-box/netd/internal/server"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// upstream is a loopback HTTP-ish server that counts connections and
// records every request head it is sent, then answers 200 "ok" and closes.
type upstream struct {
	l     net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	heads []string
	// echo makes it copy bytes back instead of answering HTTP.
	echo bool
}

func newUpstream(t testing.TB, echo bool) *upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{l: l, echo: echo}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go u.handle(c)
		}
	}()
	return u
}

func (u *upstream) handle(c net.Conn) {
	defer c.Close()
	if u.echo {
		// A plain loop, not io.Copy: TCP-to-TCP io.Copy splices through
		// pooled pipes whose fds are only released by the GC, which would
		// blur the fd baseline of the load test.
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	// Read whatever else arrives briefly: a pipelined request would show here.
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	rest, _ := io.ReadAll(br)
	u.mu.Lock()
	u.heads = append(u.heads, head.String()+string(rest))
	u.mu.Unlock()
	_, _ = io.WriteString(c, upstreamReply)
}

// upstreamReply is what the (non-echo) upstream answers every request.
const upstreamReply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.heads...)
}

// stack is relay → door (a real standing door of the runtime) → server →
// egress engine, whose dial is redirected to the test upstream after it
// records the exact address it was asked to dial.
type stack struct {
	relayAddr string
	door      string
	up        *upstream
	srv       *server.Server
	eng       *egress.Engine
	minter    *door.Minter
	logs      *syncBuffer

	mu     sync.Mutex
	dialed []string
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

func (s *stack) dialedAddrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.dialed...)
}

func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "netd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

type stackOpts struct {
	spec    egress.Spec
	limits  server.Limits
	echo    bool
	relay   Config
	timeout time.Duration
	// grpcOnly carries tunnels on gRPC streams instead of raw connections.
	grpcOnly bool
	// noRawServer leaves raw tunnels out of netd's doors (an older netd).
	noRawServer bool
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	s := &stack{up: newUpstream(t, o.echo), logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	pol, err := egress.Compile(o.spec)
	if err != nil {
		t.Fatal(err)
	}
	upAddr := s.up.l.Addr().String()
	var d net.Dialer
	timeout := o.timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	s.eng = egress.NewEngine(pol, egress.Options{
		Resolver:       &dest.Static{}, // no real DNS, ever
		ConnectTimeout: timeout,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			s.mu.Lock()
			s.dialed = append(s.dialed, address)
			s.mu.Unlock()
			switch {
			case strings.HasPrefix(address, "127.0.0.9:"): // "down.test": refused
				return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", errRefused)}
			case strings.HasPrefix(address, "127.0.0.10:"): // "slow.test": never answers
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return d.DialContext(ctx, network, upAddr)
		},
	})
	s.srv = server.New(s.eng, log, o.limits)
	dir := shortDir(t)
	raw := s.srv.Raw
	if o.noRawServer {
		raw = nil
	}
	m, err := door.NewMinter(door.MinterConfig{Door: server.DoorName, Dir: filepath.Join(dir, "doors"), Logger: log,
		Register: s.srv.Register, Raw: raw, Counters: s.srv.Counters,
		Validate: func(b door.Binding) error { return egress.ValidateCaveats(b.Caveats) }})
	if err != nil {
		t.Fatal(err)
	}
	s.minter = m
	s.srv.Serving(m)
	s.door = filepath.Join(dir, "netd.sock")
	if err := m.Standing(s.door, door.Binding{Account: "default", LaunchID: door.StandingDoorID}); err != nil {
		t.Fatal(err)
	}
	cc, err := door.Dial(s.door)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.relay
	cfg.Door = netv1.NewEgressServiceClient(cc)
	cfg.DoorName = s.door
	if !o.grpcOnly {
		cfg.RawDoor = s.door
	}
	cfg.Logger = log
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.relayAddr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = New(cfg).Serve(ctx, l)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cc.Close()
		sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer c2()
		m.Close(sctx)
	})
	return s
}

type refusedErr struct{}

func (refusedErr) Error() string { return "connection refused" }

var errRefused = refusedErr{}

// response is what a client read back from the relay.
type response struct {
	status int
	reason string
	body   string
}

// roundTrip sends raw, reads the status line and headers, and for a
// refusal (or any response with a body) the body.
func roundTrip(t testing.TB, addr string, raw string, pause time.Duration) response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if pause > 0 {
		half := len(raw) / 2
		if _, err := io.WriteString(c, raw[:half]); err != nil {
			t.Fatal(err)
		}
		// A slow client, not a wait for a condition: the pause is the input.
		time.Sleep(pause)
		raw = raw[half:]
	}
	_, _ = io.WriteString(c, raw) // the relay may already have answered and closed
	return readResponse(t, bufio.NewReader(c))
}

func readResponse(t testing.TB, br *bufio.Reader) response {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		return response{status: -1, body: err.Error()}
	}
	var r response
	parts := strings.SplitN(strings.TrimSpace(line), " ", 3)
	if len(parts) < 2 {
		t.Fatalf("status line %q", line)
	}
	for _, ch := range parts[1] {
		r.status = r.status*10 + int(ch-'0')
	}
	cl := -1
	for {
		h, err := br.ReadString('\n')
		if err != nil || h == "\r\n" {
			break
		}
		name, value, _ := strings.Cut(strings.TrimSpace(h), ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case strings.ToLower(ReasonHeader):
			r.reason = value
		case "content-length":
			cl = 0
			for _, ch := range value {
				cl = cl*10 + int(ch-'0')
			}
		}
	}
	if cl > 0 {
		b := make([]byte, cl)
		n, _ := io.ReadFull(br, b)
		r.body = string(b[:n])
	}
	return r
}
