package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	"github.com/bounded-systems/claude-box/netd/internal/rawtunnel"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// rawBuf is the copy buffer of a raw tunnel that moves bulk data, each way.
const rawBuf = 256 << 10

// rawFirstBuf is the first copy buffer of a raw tunnel, each way: small, so
// that setting up a tunnel (most carry a TLS handshake and a request) does
// not allocate and zero large buffers; a read that fills it switches to
// rawBuf.
const rawFirstBuf = 4 << 10

// verdictWriteTimeout bounds writing a verdict line to the relay.
const verdictWriteTimeout = 5 * time.Second

// Raw serves one raw tunnel (rawtunnel.Version) on a unix door: the same
// decision, caps, counters and audit record as Tunnel, without gRPC framing.
// It is the door runtime's RawHandler (door.MinterConfig.Raw).
func (s *Server) Raw(ctx context.Context, line string, c net.Conn) {
	defer c.Close()
	// Revocation (or the door's server stopping) cuts the tunnel.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	req, err := rawtunnel.Parse(line)
	if err != nil {
		door.Audit(ctx, s.log, door.Record{Method: door.RawMethod, Reason: rawtunnel.ReasonBadLine,
			Attrs: []slog.Attr{slog.String(KeyWhy, bounded(err.Error()))}})
		writeVerdict(c, rawtunnel.Verdict{Decision: rawtunnel.DecisionBadRequest, Reason: rawtunnel.ReasonBadLine, Message: err.Error()})
		return
	}
	a := ask{target: req.Target, verb: netv1.Verb_VERB_CONNECT, hostHeader: req.HostHeader}
	if req.Verb == rawtunnel.VerbHTTP {
		a.verb = netv1.Verb_VERB_HTTP
	}
	release, ok := s.acquire(launchOf(ctx))
	if !ok {
		d := limited()
		s.record(ctx, TransportRaw, a, d, nil)
		writeVerdict(c, toRawVerdict(d))
		return
	}
	defer release()
	conn, d := s.dial(ctx, a)
	if d.Verdict != egress.Allow {
		s.record(ctx, TransportRaw, a, d, nil)
		writeVerdict(c, toRawVerdict(d))
		return
	}
	defer conn.Close()
	stopUp := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stopUp()
	t := s.opened(ctx, TransportRaw, a, d)
	var up, down int64
	if err := writeVerdict(c, toRawVerdict(d)); err == nil {
		up, down = s.copyBoth(ctx, t, c, conn)
	} else {
		s.sideEnded(ctx, t, EndClientClosed, err)
	}
	s.closed(ctx, t, up, down)
}

// writeVerdict writes a verdict line within verdictWriteTimeout.
func writeVerdict(c net.Conn, v rawtunnel.Verdict) error {
	_ = c.SetWriteDeadline(time.Now().Add(verdictWriteTimeout))
	err := v.Write(c)
	_ = c.SetWriteDeadline(time.Time{})
	return err
}

func toRawVerdict(d egress.Decision) rawtunnel.Verdict {
	return rawtunnel.Verdict{
		Decision: d.Verdict.String(),
		Reason:   d.Reason,
		Rule:     d.Rule,
		Message:  d.Message(),
		Host:     d.Target.Host,
		Port:     d.Target.Port,
	}
}

// copyBoth copies bytes between the relay's connection and the upstream
// until the upstream ends, either connection fails, or nothing moves for
// the idle timeout, and records on t how it ended. The relay's EOF
// half-closes the upstream; the upstream's end closes the tunnel (as
// Tunnel's pump does). It returns the bytes carried each way.
func (s *Server) copyBoth(ctx context.Context, t *tunnel, c, up net.Conn) (upN, downN int64) {
	closeAll := func() { _ = c.Close(); _ = up.Close() }
	idle := newIdleWatch(s.lim.IdleTimeout, func() { t.ended(EndIdleTimeout); closeAll() })
	defer idle.stop()
	var upCount atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		rerr, werr := copyCounted(up, c, idle, &upCount, &s.bytesUp)
		switch {
		case werr != nil:
			s.sideEnded(ctx, t, EndUpstreamClosed, werr)
		case rerr != nil:
			s.sideEnded(ctx, t, EndClientClosed, rerr)
		default:
			t.ended(EndClientClosed)
			closeWrite(up)
			return
		}
		closeAll()
	}()
	var downCount atomic.Int64
	rerr, werr := copyCounted(c, up, idle, &downCount, &s.bytesDown)
	if werr != nil {
		s.sideEnded(ctx, t, EndClientClosed, werr)
	} else {
		s.sideEnded(ctx, t, EndUpstreamClosed, rerr)
	}
	closeAll()
	<-done
	return upCount.Load(), downCount.Load()
}

// copyCounted copies src to dst, touching idle and adding to both counters
// as bytes move, until reading src fails (rerr; nil at a clean EOF) or
// writing dst does (werr).
func copyCounted(dst io.Writer, src io.Reader, idle *idleWatch, n, total *atomic.Int64) (rerr, werr error) {
	buf := make([]byte, rawFirstBuf)
	for {
		r, err := src.Read(buf)
		if r > 0 {
			idle.touch()
			w, err := dst.Write(buf[:r])
			n.Add(int64(w))
			total.Add(int64(w))
			if err != nil {
				return nil, err
			}
			if r == len(buf) && len(buf) < rawBuf {
				buf = make([]byte, rawBuf)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}
