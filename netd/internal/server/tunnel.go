package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
)

// DoorName is the name netd serves its doors under (door.MinterConfig.Door).
const DoorName = "net"

// TunnelClosedMsg is the message of the record an allowed tunnel leaves
// when it closes. It is accounting, not a decision: the decision is the
// tunnel's audit record (door.AuditMsg), written when the upstream dial
// succeeded, before a byte moved.
const TunnelClosedMsg = "tunnel_closed"

// Keys of a tunnel's open and close records.
const (
	// KeyTunnel is the tunnel's id, in both its audit record and its
	// close record, so the two join.
	KeyTunnel = "tunnel_id"
	// KeyEnd says how a tunnel ended (one of the End values).
	KeyEnd = "end"
)

// How a tunnel ended, as its close record names it: whichever happened
// first.
const (
	// EndClientClosed: the box's side ended first. Its client closed or
	// half-closed the tunnel, or the relay's connection or stream broke.
	EndClientClosed = "client_closed"
	// EndUpstreamClosed: the upstream ended first. It closed or reset the
	// connection, or a write to it failed.
	EndUpstreamClosed = "upstream_closed"
	// EndIdleTimeout: no bytes moved either way for the idle timeout.
	EndIdleTimeout = "idle_timeout"
	// EndRevoked: the launch's door was revoked (the launch ended, its
	// lease or TTL ran out), which cuts its tunnels.
	EndRevoked = "revoked"
	// EndShutdown: netd stopped.
	EndShutdown = "shutdown"
)

// tunnel is one allowed tunnel, from its audit record to its close record.
type tunnel struct {
	id        string
	transport string
	a         ask
	d         egress.Decision
	start     time.Time

	mu  sync.Mutex
	end string
}

// ended records how t ended, unless something ended it first.
func (t *tunnel) ended(why string) {
	t.mu.Lock()
	if t.end == "" {
		t.end = why
	}
	t.mu.Unlock()
}

func (t *tunnel) endReason() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.end
}

// newTunnelID is a random id: ids from before a restart stay distinct.
func newTunnelID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// opened writes the audit record of a tunnel whose upstream dial succeeded
// (the decision, with the tunnel's id) and returns the tunnel. It is written
// before the verdict reaches the box, so a tunnel netd never gets to close
// (a crash, SIGKILL) is on record anyway.
func (s *Server) opened(ctx context.Context, transport string, a ask, d egress.Decision) *tunnel {
	t := &tunnel{id: newTunnelID(), transport: transport, a: a, d: d, start: time.Now()}
	s.record(ctx, transport, a, d, t)
	return t
}

// closed writes a tunnel's close record: what only its end knows (bytes
// each way, duration, how it ended) with the fields that identify it. It
// is not a decision, so it is neither budgeted nor counted as one.
func (s *Server) closed(ctx context.Context, t *tunnel, up, down int64) {
	b, _ := door.BindingFrom(ctx)
	p, _ := door.PeerFrom(ctx)
	attrs := []slog.Attr{
		slog.String(door.KeyDoor, DoorName),
		slog.String(door.KeyMethod, methodTunnel),
		slog.String(door.KeyAccount, b.Account),
		slog.String(door.KeyLaunch, b.LaunchID),
		slog.String(door.KeyPeer, p.String()),
		slog.String(door.KeyTarget, bounded(redactTarget(t.a.target))),
		slog.String(KeyTunnel, t.id),
		slog.String(KeyTransport, t.transport),
		slog.String(KeyVerb, verbName(t.a.verb)),
		slog.String(KeyHost, t.d.Target.Host),
		slog.Int(KeyPort, int(t.d.Target.Port)),
	}
	if t.d.Addr.IsValid() {
		attrs = append(attrs, slog.String(KeyAddr, t.d.Addr.String()))
	}
	attrs = append(attrs,
		slog.String(KeyEnd, t.endReason()),
		slog.Int64(KeyBytesUp, up),
		slog.Int64(KeyBytesDown, down),
		slog.Int64(KeyDuration, time.Since(t.start).Milliseconds()))
	s.log.LogAttrs(ctx, slog.LevelInfo, TunnelClosedMsg, attrs...)
}

// sideEnded records that one side of t (EndClientClosed or
// EndUpstreamClosed) ended with err. A clean end (nil or EOF) is that
// side's doing; an error may be the door runtime cutting the tunnel
// (revocation, shutdown), which is recorded instead.
func (s *Server) sideEnded(ctx context.Context, t *tunnel, side string, err error) {
	if t.endReason() != "" {
		return // the other side, the idle timer or a cut came first
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if why, ok := s.cut(ctx, t); ok {
			side = why
		}
	}
	t.ended(side)
}

// cut reports whether the door runtime cut t, and why. A raw tunnel's
// context ends only when its door is revoked or its server stops; a gRPC
// stream's also ends when the client goes away, so for those the door's
// liveness decides (the runtime forgets a door before it cuts its calls).
func (s *Server) cut(ctx context.Context, t *tunnel) (string, bool) {
	if (t.transport == TransportRaw && ctx.Err() != nil) || !s.doorLive(ctx) {
		if s.stopping.Load() {
			return EndShutdown, true
		}
		return EndRevoked, true
	}
	return "", false
}

// doorLive reports whether the door of the call in ctx is still served;
// true when the server does not know its minter (see Serving).
func (s *Server) doorLive(ctx context.Context) bool {
	m := s.minter.Load()
	if m == nil {
		return true
	}
	b, _ := door.BindingFrom(ctx)
	for _, d := range m.Live() {
		if d.DoorID == b.DoorID {
			return true
		}
	}
	return false
}

// Serving tells the server which minter serves its doors, so that a gRPC
// tunnel its door's revocation cuts is recorded as revoked rather than as
// closed by its client. Call it before the minter serves a door.
func (s *Server) Serving(m *door.Minter) { s.minter.Store(m) }

// Stopping marks netd as stopping: tunnels the door runtime cuts from now
// on end with EndShutdown rather than EndRevoked. Call it before closing
// the minter.
func (s *Server) Stopping() { s.stopping.Store(true) }
