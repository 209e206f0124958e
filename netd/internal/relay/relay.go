// Package relay is the in-box half of the net door: an HTTP forward proxy
// on loopback (what HTTPS_PROXY and HTTP_PROXY point at) that carries each
// client connection to netd as one raw door connection (package rawtunnel)
// on a unix door, or as one gRPC Tunnel stream. It parses request
// heads strictly and refuses what it cannot carry, but it decides nothing
// about destinations: netd does.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxHead     = 16 << 10
	DefaultHeadTimeout = 10 * time.Second
	// DefaultVerdictTimeout bounds the wait for netd's verdict (it includes
	// netd's own upstream connect timeout).
	DefaultVerdictTimeout = 60 * time.Second
	// chunkSize keeps one Data message within grpc-go's 32 KiB buffer
	// tier (see the server's chunkSize).
	chunkSize = 32<<10 - 64
	// bigChunk is the read size of a tunnel that is moving bulk data (a read
	// filled the small buffer): fewer, larger messages carry 30-40% more
	// through the gRPC stream, while idle tunnels keep only the small buffer.
	bigChunk = 256 << 10
)

// DialOptions are the gRPC client options the relay's door connection
// should use: large flow-control windows and I/O buffers, so that one
// tunnel is not held to a fraction of loopback throughput.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(4 << 20),
		grpc.WithInitialConnWindowSize(16 << 20),
		grpc.WithWriteBufferSize(256 << 10),
		grpc.WithReadBufferSize(256 << 10),
	}
}

// Config configures a Relay.
type Config struct {
	// Door is the net door's EgressService client.
	Door netv1.EgressServiceClient
	// DoorName names the door in errors, e.g. its socket path.
	DoorName string
	// RawDoor, when set, is the net door's unix socket path: tunnels are
	// carried as raw connections on it (package rawtunnel), and Door is the
	// fallback for a request the raw line cannot carry or a door that
	// closes the connection without a verdict (a netd without raw tunnels).
	RawDoor string
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// MaxHead caps a request head; 0 means DefaultMaxHead.
	MaxHead int
	// HeadTimeout bounds the wait for a complete head; 0 means DefaultHeadTimeout.
	HeadTimeout time.Duration
	// VerdictTimeout bounds the wait for netd's verdict; 0 means DefaultVerdictTimeout.
	VerdictTimeout time.Duration
}

// Relay is the proxy.
type Relay struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// New returns a relay.
func New(cfg Config) *Relay {
	if cfg.MaxHead <= 0 {
		cfg.MaxHead = DefaultMaxHead
	}
	if cfg.HeadTimeout <= 0 {
		cfg.HeadTimeout = DefaultHeadTimeout
	}
	if cfg.VerdictTimeout <= 0 {
		cfg.VerdictTimeout = DefaultVerdictTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg, log: log, conns: map[net.Conn]struct{}{}}
}

// Listen listens on a loopback TCP address; anything else is refused: the
// relay is for the box's own processes only.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("relay listen %q: %w", addr, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.IsLoopback() {
		return nil, fmt.Errorf("relay listen %q: must be a loopback ip address", addr)
	}
	// No TCP keepalive on accepted connections: every client is on this
	// host, whose kernel ends a dead client's connection itself, and the
	// keepalive options cost four setsockopt calls on every tunnel's setup.
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay listen: %w", err)
	}
	return l, nil
}

// Serve accepts connections on l until ctx is done, then closes l and
// every open connection and waits for their handlers.
func (r *Relay) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		_ = l.Close()
		r.mu.Lock()
		for c := range r.conns {
			_ = c.Close()
		}
		r.mu.Unlock()
	})
	defer stop()
	var tempDelay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				r.wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				// Out of descriptors or a transient failure: back off, keep serving.
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				r.log.Warn("relay accept", slog.String("error", err.Error()))
				select {
				case <-time.After(tempDelay):
				case <-ctx.Done():
				}
				continue
			}
			r.wg.Wait()
			return fmt.Errorf("relay accept: %w", err)
		}
		tempDelay = 0
		r.mu.Lock()
		r.conns[c] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() {
				r.mu.Lock()
				delete(r.conns, c)
				r.mu.Unlock()
				_ = c.Close()
			}()
			r.ServeConn(ctx, c)
		}()
	}
}

// ServeConn handles one client connection: one request head, one decision.
func (r *Relay) ServeConn(ctx context.Context, c net.Conn) {
	raw, rest, err := readHead(c, r.cfg.MaxHead, time.Now().Add(r.cfg.HeadTimeout))
	if err != nil {
		r.refuseLocal(c, err)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	h, err := parseHead(raw)
	if err != nil {
		r.refuseLocal(c, err)
		return
	}
	open := &netv1.Open{Target: h.target}
	var fwd []byte
	switch {
	case h.method == "CONNECT":
		open.Verb = netv1.Verb_VERB_CONNECT
	case strings.Contains(h.target, "://"):
		open.Verb = netv1.Verb_VERB_HTTP
		open.HostHeader = h.host
		if fwd, err = originHead(h); err != nil {
			r.refuseLocal(c, err)
			return
		}
	case strings.HasPrefix(h.target, "/"):
		r.refuseLocal(c, badHead(ReasonOriginForm, "origin-form request: a proxy needs an absolute URL or CONNECT"))
		return
	default:
		r.refuseLocal(c, badHead(ReasonBadRequest, "unsupported request target form"))
		return
	}
	var early []byte
	var body io.Reader
	if open.Verb == netv1.Verb_VERB_CONNECT {
		early, body = rest, c
	} else {
		early, body = fwd, requestBody(h, rest, c)
	}
	if r.cfg.RawDoor != "" {
		if line, err := rawLine(open); err == nil && r.serveRaw(ctx, c, line, early, body, open.Verb == netv1.Verb_VERB_CONNECT) {
			return
		}
	}
	r.serveGRPC(ctx, c, open, early, body)
}

// serveGRPC carries a tunnel as an EgressService.Tunnel stream.
func (r *Relay) serveGRPC(ctx context.Context, c net.Conn, open *netv1.Open, early []byte, body io.Reader) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, v, err := r.open(ctx, open)
	if code := status.Code(err); code == codes.PermissionDenied || code == codes.Unauthenticated {
		r.log.Warn("net door refused the relay", slog.String("door", r.cfg.DoorName), slog.String("error", err.Error()))
		writeStatus(c, 502, ReasonDoorRefused, fmt.Sprintf("netd relay: the net door at %s refused this relay (%s); is its token right?", r.cfg.DoorName, status.Convert(err).Message()))
		return
	}
	if err != nil {
		r.log.Warn("net door unavailable", slog.String("door", r.cfg.DoorName), slog.String("error", err.Error()))
		writeStatus(c, 502, ReasonDoorDown, fmt.Sprintf("netd relay: the net door is not answering at %s; is netd serve running?", r.cfg.DoorName))
		return
	}
	if v.GetDecision() != netv1.Decision_DECISION_ALLOW {
		// Whatever the client sent after this head is dropped with the connection.
		writeStatus(c, statusOf(v.GetDecision()), v.GetReason(), "netd: "+v.GetMessage())
		return
	}
	if open.Verb == netv1.Verb_VERB_CONNECT {
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
	}
	if err := sendData(stream, early); err != nil {
		return
	}
	r.pump(cancel, c, stream, body)
}

// requestBody is what follows an HTTP request head upstream: exactly its
// body, never a request pipelined after it.
func requestBody(h *head, rest []byte, c net.Conn) io.Reader {
	all := io.MultiReader(strings.NewReader(string(rest)), c)
	switch {
	case h.chunked:
		return newChunkedBody(all)
	case h.contentLength > 0:
		return io.LimitReader(all, h.contentLength)
	}
	return nil
}

func sendData(stream netv1.EgressService_TunnelClient, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	return stream.Send(&netv1.TunnelRequest{Data: p})
}

// open starts a tunnel stream and waits for its verdict.
func (r *Relay) open(ctx context.Context, o *netv1.Open) (netv1.EgressService_TunnelClient, *netv1.Verdict, error) {
	stream, err := r.cfg.Door.Tunnel(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := stream.Send(&netv1.TunnelRequest{Open: o}); err != nil {
		_, rerr := stream.Recv()
		return nil, nil, errors.Join(err, rerr)
	}
	type result struct {
		resp *netv1.TunnelResponse
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := stream.Recv()
		ch <- result{resp, err}
	}()
	t := time.NewTimer(r.cfg.VerdictTimeout)
	defer t.Stop()
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, nil, res.err
		}
		if res.resp.GetVerdict() == nil {
			return nil, nil, errors.New("netd sent data before a verdict")
		}
		return stream, res.resp.GetVerdict(), nil
	case <-t.C:
		return nil, &netv1.Verdict{Decision: netv1.Decision_DECISION_TIMEOUT, Reason: "verdict_timeout", Message: "netd did not answer in time"}, nil
	}
}

// pump copies client bytes (from body) up the stream and stream bytes down
// to the client until either side ends.
func (r *Relay) pump(cancel context.CancelFunc, c net.Conn, stream netv1.EgressService_TunnelClient, body io.Reader) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if body == nil {
			return
		}
		// One buffer per direction: Send has marshalled the message by the
		// time it returns (no stats handler keeps it), so it can be reused.
		buf := make([]byte, chunkSize)
		for {
			n, err := body.Read(buf)
			if n > 0 {
				if serr := stream.Send(&netv1.TunnelRequest{Data: buf[:n]}); serr != nil {
					return
				}
				if n == len(buf) && len(buf) < bigChunk {
					buf = make([]byte, bigChunk)
				}
			}
			switch {
			case err == nil:
			case errors.Is(err, io.EOF):
				// The client half-closed a tunnel: half-close upstream too.
				// (The end of an HTTP request body is not the client's EOF.)
				if body == io.Reader(c) {
					_ = stream.CloseSend()
				}
				return
			default:
				// The client is gone: tear the tunnel down now rather than
				// at the upstream's leisure.
				cancel()
				return
			}
		}
	}()
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		if p := resp.GetData(); len(p) > 0 {
			if _, err := c.Write(p); err != nil {
				break
			}
		}
	}
	cancel()
	_ = c.Close()
	<-done
}

// refuseLocal answers a head the relay cannot carry to netd.
func (r *Relay) refuseLocal(c net.Conn, err error) {
	var eh *errHead
	if !errors.As(err, &eh) {
		return // the client went away
	}
	writeStatus(c, eh.status, eh.reason, "netd relay: "+eh.msg)
}

func statusOf(d netv1.Decision) int {
	switch d {
	case netv1.Decision_DECISION_DENY:
		return 403
	case netv1.Decision_DECISION_BAD_TARGET:
		return 400
	case netv1.Decision_DECISION_TIMEOUT:
		return 504
	case netv1.Decision_DECISION_LIMITED:
		return 429
	}
	return 502
}

var statusText = map[int]string{
	400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 429: "Too Many Requests",
	431: "Request Header Fields Too Large", 502: "Bad Gateway", 504: "Gateway Timeout",
}

// ReasonHeader carries the machine-stable reason of a refusal.
const ReasonHeader = "X-Netd-Reason"

// writeStatus writes a short plain-text refusal and nothing else.
func writeStatus(c net.Conn, code int, reason, msg string) {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	body := msg + "\n"
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n%s: %s\r\n\r\n%s",
		code, statusText[code], len(body), ReasonHeader, sanitize(reason), body)
	linger(c)
}

// linger half-closes c and discards what the client still sends for a
// moment, so that closing does not reset the connection before the client
// has read the refusal. Discarded bytes go nowhere.
func linger(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	_ = cw.CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.CopyN(io.Discard, c, 256<<10)
}

// sanitize keeps a header value to one safe line.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return -1
		}
		return r
	}, s)
}
