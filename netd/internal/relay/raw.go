package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/bounded-systems/claude-box/netd/internal/rawtunnel"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// rawLine is the request line of a tunnel, or an error when the line
// cannot carry it (the gRPC stream then does).
func rawLine(o *netv1.Open) (string, error) {
	req := rawtunnel.Request{Verb: rawtunnel.VerbConnect, Target: o.GetTarget()}
	if o.GetVerb() == netv1.Verb_VERB_HTTP {
		req.Verb, req.HostHeader = rawtunnel.VerbHTTP, o.GetHostHeader()
	}
	return req.Line()
}

// decisions maps a verdict line's decision to net/v1's, so both transports
// answer the client alike; anything else (bad_request) is a 502.
var decisions = map[string]netv1.Decision{
	rawtunnel.DecisionAllow:       netv1.Decision_DECISION_ALLOW,
	rawtunnel.DecisionDeny:        netv1.Decision_DECISION_DENY,
	rawtunnel.DecisionBadTarget:   netv1.Decision_DECISION_BAD_TARGET,
	rawtunnel.DecisionUnreachable: netv1.Decision_DECISION_UNREACHABLE,
	rawtunnel.DecisionTimeout:     netv1.Decision_DECISION_TIMEOUT,
	rawtunnel.DecisionLimited:     netv1.Decision_DECISION_LIMITED,
}

// rawBuf is the read buffer of a raw door connection. It only has to hold
// a verdict line (ReadVerdict reads longer ones in pieces): the bytes after
// it are spliced from the door to the client by the kernel, never copied
// through this buffer, so a small one costs no throughput and saves
// allocating and zeroing a large one on every tunnel.
const rawBuf = 1 << 10

// serveRaw carries a tunnel on a raw door connection. It returns false,
// having written nothing to c, when the door closed the connection without
// a verdict line (a netd that does not serve raw tunnels): the caller then
// tries the gRPC stream.
func (r *Relay) serveRaw(ctx context.Context, c net.Conn, line string, early []byte, body io.Reader, connect bool) bool {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, r.cfg.VerdictTimeout)
	dc, err := d.DialContext(dctx, "unix", r.cfg.RawDoor)
	cancel()
	if err != nil {
		r.log.Warn("net door unavailable", slog.String("door", r.cfg.DoorName), slog.String("error", err.Error()))
		writeStatus(c, 502, ReasonDoorDown, fmt.Sprintf("netd relay: the net door is not answering at %s; is netd serve running?", r.cfg.DoorName))
		return true
	}
	defer dc.Close()
	stop := context.AfterFunc(ctx, func() { _ = dc.Close() })
	defer stop()
	_ = dc.SetDeadline(time.Now().Add(r.cfg.VerdictTimeout))
	br := bufio.NewReaderSize(dc, rawBuf)
	v, err := writeLine(dc, line, br)
	var ne net.Error
	switch {
	case errors.Is(err, rawtunnel.ErrNoVerdict):
		r.log.Debug("net door closed a raw tunnel without a verdict; using grpc", slog.String("door", r.cfg.DoorName))
		return false
	case errors.As(err, &ne) && ne.Timeout():
		writeStatus(c, statusOf(netv1.Decision_DECISION_TIMEOUT), "verdict_timeout", "netd: netd did not answer in time")
		return true
	case err != nil:
		r.log.Warn("net door unavailable", slog.String("door", r.cfg.DoorName), slog.String("error", err.Error()))
		writeStatus(c, 502, ReasonDoorDown, fmt.Sprintf("netd relay: the net door is not answering at %s; is netd serve running?", r.cfg.DoorName))
		return true
	}
	_ = dc.SetDeadline(time.Time{})
	if v.Decision != rawtunnel.DecisionAllow {
		// Whatever the client sent after this head is dropped with the connection.
		writeStatus(c, statusOf(decisions[v.Decision]), v.Reason, "netd: "+v.Message)
		return true
	}
	if connect {
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return true
		}
	}
	if len(early) > 0 {
		if _, err := dc.Write(early); err != nil {
			return true
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if body == nil {
			return
		}
		_, err := io.Copy(dc, body)
		switch {
		case err != nil:
			// The client is gone: tear the tunnel down now.
			_ = dc.Close()
		case connect:
			// The client half-closed a tunnel: half-close upstream too.
			// (The end of an HTTP request body is not the client's EOF.)
			if cw, ok := dc.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		}
	}()
	// Plain io.Copy: between the unix door and the TCP client the kernel
	// splices, so the bytes are not copied through the relay at all.
	_, _ = io.Copy(c, br)
	_ = dc.Close()
	_ = c.Close()
	<-done
	return true
}

// writeLine sends the request line and reads the verdict line.
func writeLine(dc net.Conn, line string, br *bufio.Reader) (rawtunnel.Verdict, error) {
	if _, err := io.WriteString(dc, line+"\n"); err != nil {
		// A door that refused the connection may have closed it already;
		// whether a verdict came decides.
		if v, rerr := rawtunnel.ReadVerdict(br); rerr == nil {
			return v, nil
		}
		return rawtunnel.Verdict{}, fmt.Errorf("%w: %w", rawtunnel.ErrNoVerdict, err)
	}
	return rawtunnel.ReadVerdict(br)
}
