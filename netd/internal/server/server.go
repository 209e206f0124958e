// Package server adapts the egress engine to the wire: it serves
// claudebox.net.v1.EgressService and raw tunnels (package rawtunnel) on a
// net door, decides and records a tunnel in one place for both transports,
// converts between proto and domain types, maps errors to gRPC status in
// one function, enforces the per-launch and global tunnel caps and idle
// timeouts, audits one record per decision, and keeps the counters netd
// status reports.
package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// Audit attribute keys netd adds to the runtime's fixed ones.
const (
	KeyHost      = "host"
	KeyPort      = "port"
	KeyVerb      = "verb"
	KeyVerdict   = "verdict"
	KeyRule      = "rule"
	KeyAddr      = "addr"
	KeyBytesUp   = "bytes_up"
	KeyBytesDown = "bytes_down"
	KeyDuration  = "duration_ms"
	KeyWhy       = "why"
)

// Defaults for Limits fields left zero.
const (
	DefaultMaxTunnels   = 4096
	DefaultMaxPerLaunch = 1024
	DefaultIdleTimeout  = 10 * time.Minute
	DefaultOpenTimeout  = 30 * time.Second
	// chunkSize keeps one Data message (payload plus its few bytes of proto
	// framing) within grpc-go's 32 KiB buffer tier: a byte more and every
	// message takes (and zeroes) a 1 MiB buffer, a tenfold throughput loss.
	chunkSize = 32<<10 - 64
	// bigChunk is the read size of a tunnel that is moving bulk data (a read
	// filled the small buffer): fewer, larger messages carry 30-40% more
	// through the gRPC stream, while idle tunnels keep only the small buffer.
	bigChunk = 256 << 10
)

// Limits bound what boxes can hold open.
type Limits struct {
	// MaxTunnels caps open tunnels across all launches.
	MaxTunnels int
	// MaxPerLaunch caps open tunnels of one launch, so a flood from one box
	// cannot starve another.
	MaxPerLaunch int
	// IdleTimeout closes a tunnel with no bytes either way for this long.
	IdleTimeout time.Duration
	// OpenTimeout bounds the wait for a tunnel's first message (its Open).
	OpenTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxTunnels <= 0 {
		l.MaxTunnels = DefaultMaxTunnels
	}
	if l.MaxPerLaunch <= 0 {
		l.MaxPerLaunch = DefaultMaxPerLaunch
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.OpenTimeout <= 0 {
		l.OpenTimeout = DefaultOpenTimeout
	}
	return l
}

// Server serves EgressService.
type Server struct {
	netv1.UnimplementedEgressServiceServer
	eng *egress.Engine
	log *slog.Logger
	lim Limits

	mu        sync.Mutex
	open      int
	perLaunch map[string]int
	decisions map[string]int64 // by counter key

	tunnelsTotal atomic.Int64
	bytesUp      atomic.Int64
	bytesDown    atomic.Int64

	// minter serves the doors (see Serving); stopping is set by Stopping.
	minter   atomic.Pointer[door.Minter]
	stopping atomic.Bool
}

// New returns a server deciding with eng.
func New(eng *egress.Engine, log *slog.Logger, lim Limits) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{eng: eng, log: log, lim: lim.withDefaults(), perLaunch: map[string]int{}, decisions: map[string]int64{}}
}

// Register serves the EgressService on g (every minted door's server).
func (s *Server) Register(g *grpc.Server) { netv1.RegisterEgressServiceServer(g, s) }

// CheckTarget explains a decision without dialing.
func (s *Server) CheckTarget(ctx context.Context, req *netv1.CheckTargetRequest) (*netv1.CheckTargetResponse, error) {
	b, _ := door.BindingFrom(ctx)
	verb := req.GetVerb()
	if verb == netv1.Verb_VERB_UNSPECIFIED {
		verb = netv1.Verb_VERB_CONNECT
	}
	d := s.eng.Check(ctx, egress.Request{Target: req.GetTarget(), Verb: fromVerb(verb), Caveats: b.Caveats, Profiles: egress.BoundProfiles(b.Bindings)})
	s.audit(ctx, "CheckTarget", req.GetTarget(), verb, d, nil)
	resp := &netv1.CheckTargetResponse{Verdict: toVerdict(d)}
	if d.Verdict == egress.Allow {
		resp.MatchedEntry = d.Rule
	}
	for _, a := range d.Addrs {
		resp.Addresses = append(resp.Addresses, describeAddr(a))
	}
	return resp, nil
}

// acquire takes a tunnel slot for launch; release gives it back.
func (s *Server) acquire(launch string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open >= s.lim.MaxTunnels || s.perLaunch[launch] >= s.lim.MaxPerLaunch {
		return nil, false
	}
	s.open++
	s.perLaunch[launch]++
	return func() {
		s.mu.Lock()
		s.open--
		if s.perLaunch[launch]--; s.perLaunch[launch] <= 0 {
			delete(s.perLaunch, launch)
		}
		s.mu.Unlock()
	}, true
}

// Tunnel carries one client connection: Open, Verdict, then bytes.
func (s *Server) Tunnel(stream netv1.EgressService_TunnelServer) error {
	ctx := stream.Context()
	// The slot is taken before the first message is read: a stream waiting
	// for its Open holds server resources too, so a box that opens streams
	// and never sends anything is held to its cap like any other.
	release, ok := s.acquire(launchOf(ctx))
	if !ok {
		// Read the Open briefly, so the record names the target and a client
		// sending it gets its verdict rather than a closed stream; a silent
		// stream is answered after limitedOpenWait.
		first, _ := s.recvFirst(stream, limitedOpenWait)
		a := askOf(first.GetOpen())
		d := limited()
		s.record(ctx, TransportGRPC, a, d, nil)
		return toStatus(stream.Send(&netv1.TunnelResponse{Verdict: toVerdict(d)}))
	}
	defer release()
	first, err := s.recvFirst(stream, s.lim.OpenTimeout)
	if err == nil && first.GetOpen() == nil {
		err = errNoOpen
	}
	if err != nil {
		return s.noOpen(ctx, err)
	}
	a := askOf(first.GetOpen())
	conn, d := s.dial(ctx, a)
	if d.Verdict != egress.Allow {
		s.record(ctx, TransportGRPC, a, d, nil)
		return toStatus(stream.Send(&netv1.TunnelResponse{Verdict: toVerdict(d)}))
	}
	defer conn.Close()
	t := s.opened(ctx, TransportGRPC, a, d)
	var up, down int64
	err = stream.Send(&netv1.TunnelResponse{Verdict: toVerdict(d)})
	if err == nil {
		up, down, err = s.pump(ctx, t, stream, conn, first.GetData())
	} else {
		s.sideEnded(ctx, t, EndClientClosed, err)
	}
	s.closed(ctx, t, up, down)
	return toStatus(err)
}

// Transports a tunnel can arrive on, as its audit record names them.
const (
	TransportGRPC = "grpc"
	TransportRaw  = "raw"
)

// KeyTransport is the audit attribute naming a tunnel's transport.
const KeyTransport = "transport"

// ask is what a box asked a tunnel for, whichever transport carried it.
type ask struct {
	target     string
	verb       netv1.Verb
	hostHeader string
}

func askOf(o *netv1.Open) ask {
	return ask{target: o.GetTarget(), verb: o.GetVerb(), hostHeader: o.GetHostHeader()}
}

func launchOf(ctx context.Context) string {
	b, _ := door.BindingFrom(ctx)
	return b.LaunchID
}

// limited is the decision for a tunnel over its launch's or the global cap.
func limited() egress.Decision {
	return egress.Decision{Verdict: egress.Limited, Reason: egress.ReasonLimited, Rule: "tunnel_cap"}
}

// dial decides a tunnel under the door's binding (its caveats and bound
// profiles) and, on allow, dials the checked address. It is the one place
// either transport decides, so the two cannot drift. The caller holds a slot.
func (s *Server) dial(ctx context.Context, a ask) (net.Conn, egress.Decision) {
	b, _ := door.BindingFrom(ctx)
	req := egress.Request{Target: a.target, Verb: fromVerb(a.verb), HostHeader: a.hostHeader, Caveats: b.Caveats, Profiles: egress.BoundProfiles(b.Bindings)}
	conn, d := s.eng.Connect(ctx, req)
	if d.Verdict == egress.Allow {
		s.tunnelsTotal.Add(1)
	}
	return conn, d
}

// methodTunnel is the method a tunnel is audited under, whichever
// transport carried it.
const methodTunnel = "Tunnel"

// record writes the one audit record of a tunnel's decision (a refusal, a
// failed dial, or, with t, the tunnel it opened) and counts the decision;
// both transports record through it.
func (s *Server) record(ctx context.Context, transport string, a ask, d egress.Decision, t *tunnel) {
	extra := []slog.Attr{slog.String(KeyTransport, transport)}
	if t != nil {
		extra = append(extra, slog.String(KeyTunnel, t.id))
	}
	s.audit(ctx, methodTunnel, a.target, a.verb, d, extra)
}

// limitedOpenWait bounds the wait for the Open of a stream that is over its
// cap: such streams hold no slot, so they are kept only briefly.
const limitedOpenWait = time.Second

// recvFirst reads a tunnel's first message, waiting at most wait. On
// timeout the handler returns, which cancels the stream and ends the
// pending Recv.
func (s *Server) recvFirst(stream netv1.EgressService_TunnelServer, wait time.Duration) (*netv1.TunnelRequest, error) {
	type result struct {
		m   *netv1.TunnelRequest
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := stream.Recv()
		ch <- result{m, err}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-t.C:
		return nil, errOpenTimeout
	}
}

// pump copies bytes both ways until the upstream closes, the client's
// stream fails, or the tunnel is idle for too long, and records on t how
// it ended. It returns the bytes carried each way.
func (s *Server) pump(ctx context.Context, t *tunnel, stream netv1.EgressService_TunnelServer, conn net.Conn, early []byte) (up, down int64, err error) {
	idle := newIdleWatch(s.lim.IdleTimeout, func() { t.ended(EndIdleTimeout); _ = conn.Close() })
	defer idle.stop()
	var upN atomic.Int64
	write := func(p []byte) error {
		idle.touch()
		n, err := conn.Write(p)
		upN.Add(int64(n))
		s.bytesUp.Add(int64(n))
		return err
	}
	if len(early) > 0 {
		if err := write(early); err != nil {
			s.sideEnded(ctx, t, EndUpstreamClosed, err)
			return upN.Load(), 0, nil
		}
	}
	upErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				t.ended(EndClientClosed)
				closeWrite(conn)
				upErr <- nil
				return
			}
			if err != nil {
				s.sideEnded(ctx, t, EndClientClosed, err)
				_ = conn.Close()
				upErr <- err
				return
			}
			if p := m.GetData(); len(p) > 0 {
				if err := write(p); err != nil {
					s.sideEnded(ctx, t, EndUpstreamClosed, err)
					_ = conn.Close()
					upErr <- nil
					return
				}
			}
			if m.GetCloseWrite() {
				t.ended(EndClientClosed)
				closeWrite(conn)
			}
		}
	}()
	// One buffer: Send has marshalled the message by the time it returns.
	buf := make([]byte, chunkSize)
	for {
		n, rerr := conn.Read(buf)
		if n > 0 {
			idle.touch()
			if serr := stream.Send(&netv1.TunnelResponse{Data: buf[:n]}); serr != nil {
				s.sideEnded(ctx, t, EndClientClosed, serr)
				err = serr
				break
			}
			if n == len(buf) && len(buf) < bigChunk {
				buf = make([]byte, bigChunk)
			}
			down += int64(n)
			s.bytesDown.Add(int64(n))
		}
		if rerr != nil {
			s.sideEnded(ctx, t, EndUpstreamClosed, rerr)
			break
		}
	}
	_ = conn.Close()
	select {
	case e := <-upErr:
		if err == nil && e != nil && status.Code(e) != codes.Canceled {
			err = e
		}
	default:
	}
	return upN.Load(), down, err
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// idleWatch calls f once nothing has touched it for d.
type idleWatch struct {
	d    time.Duration
	last atomic.Int64
	t    *time.Timer
	f    func()
}

func newIdleWatch(d time.Duration, f func()) *idleWatch {
	w := &idleWatch{d: d, f: f}
	w.touch()
	w.t = time.AfterFunc(d, w.fire)
	return w
}

func (w *idleWatch) touch() { w.last.Store(time.Now().UnixNano()) }

func (w *idleWatch) fire() {
	quiet := time.Since(time.Unix(0, w.last.Load()))
	if quiet >= w.d {
		w.f()
		return
	}
	w.t.Reset(w.d - quiet)
}

func (w *idleWatch) stop() { w.t.Stop() }

// audit writes the one record of a decision and counts it.
func (s *Server) audit(ctx context.Context, method, asked string, verb netv1.Verb, d egress.Decision, extra []slog.Attr) {
	s.count(d)
	attrs := []slog.Attr{
		slog.String(KeyVerb, verbName(verb)),
		slog.String(KeyHost, d.Target.Host),
		slog.Int(KeyPort, int(d.Target.Port)),
		slog.String(KeyVerdict, d.Verdict.String()),
		slog.String(KeyRule, d.Rule),
	}
	if d.Addr.IsValid() {
		attrs = append(attrs, slog.String(KeyAddr, d.Addr.String()))
	}
	if d.Err != nil && (d.Verdict == egress.Deny || d.Verdict == egress.BadTarget) {
		attrs = append(attrs, slog.String(KeyWhy, bounded(redactIn(d.Err.Error(), asked))))
	}
	attrs = append(attrs, extra...)
	r := door.Record{Method: method, Target: bounded(redactTarget(asked)), Allow: d.Verdict == egress.Allow, Reason: d.Reason, Attrs: attrs}
	if d.Verdict == egress.Unreachable || d.Verdict == egress.Timeout {
		r.Allow, r.Err = true, d.Err
	}
	door.Audit(ctx, s.log, r)
}

// maxAuditString bounds a string the box chose in an audit record, so one
// request cannot write megabytes into the host's log.
const maxAuditString = 512

// bounded cuts s to maxAuditString bytes (on a rune boundary), marking the cut.
func bounded(s string) string { return door.Clip(s, maxAuditString) }

// redactTarget keeps what a target names and drops what can carry
// credentials: userinfo (refused anyway, but logged as asked) and an
// absolute URL's path and query (tokens in query strings, webhook secrets in
// paths).
func redactTarget(asked string) string {
	scheme, rest := "", asked
	if i := strings.Index(asked, "://"); i >= 0 {
		scheme, rest = asked[:i+3], asked[i+3:]
	}
	tail := ""
	if scheme != "" {
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest, tail = rest[:j], "/…"
		}
	}
	if k := strings.LastIndex(rest, "@"); k >= 0 {
		rest = "…@" + rest[k+1:]
	}
	return scheme + rest + tail
}

// redactIn removes from msg (an error that may quote the target) the parts
// of asked that redactTarget drops.
func redactIn(msg, asked string) string {
	rest := asked
	if i := strings.Index(asked, "://"); i >= 0 {
		rest = asked[i+3:]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			msg = replaceQuoted(msg, rest[j:], "/…")
			rest = rest[:j]
		}
	}
	if k := strings.LastIndex(rest, "@"); k >= 0 {
		msg = replaceQuoted(msg, rest[:k], "…")
	}
	return msg
}

// replaceQuoted replaces secret in msg both as is and as %q would escape it.
func replaceQuoted(msg, secret, with string) string {
	if secret == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, secret, with)
	if q := strconv.Quote(secret); len(q) > 2 {
		msg = strings.ReplaceAll(msg, q[1:len(q)-1], with)
	}
	return msg
}

// ReasonNoOpen is the audit reason of a Tunnel stream that ended, stalled
// or sent data before its Open.
const ReasonNoOpen = "no_open"

// noOpen refuses a stream that never asked for a tunnel. Its record is a
// refusal whatever ended it (a half-close, a cancel, the open timeout):
// nothing was allowed, and a box looping on it is held to its launch's
// audit budget like any other refusal.
func (s *Server) noOpen(ctx context.Context, err error) error {
	if errors.Is(err, io.EOF) {
		err = errNoOpen
	}
	door.Audit(ctx, s.log, door.Record{Method: methodTunnel, Reason: ReasonNoOpen,
		Attrs: []slog.Attr{slog.String(KeyTransport, TransportGRPC), slog.String(KeyWhy, bounded(err.Error()))}})
	return toStatus(err)
}

// errNoOpen reports a tunnel whose first message carries no Open.
var errNoOpen = errors.New("first tunnel message must carry open")

// errOpenTimeout reports a tunnel whose first message did not arrive in time.
var errOpenTimeout = errors.New("no open arrived in time")

// toStatus maps every error a handler returns to a gRPC status, in one
// place. Decisions travel in-band as Verdicts; only protocol failures and
// stream breakage become status errors.
func toStatus(err error) error {
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, errNoOpen):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errOpenTimeout):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "tunnel canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "tunnel deadline exceeded")
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, "tunnel failed")
}
