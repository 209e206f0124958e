package door

import (
	"context"
	"net"
	"sync"
)

// Connection ceilings of every door server. A guest that opens connections
// and never uses them must not exhaust the daemon that serves every launch:
// each gRPC connection holds its read and write buffers (writeBuffer each)
// from the handshake on, and each connection still saying what it is holds
// a goroutine, a buffer and a descriptor for up to rawDeadline. Clients use
// one gRPC connection each; raw connections (a tunnel each) are bounded by
// their handlers.
const (
	// maxGRPCConns bounds the open gRPC connections of one door.
	maxGRPCConns = 128
	// maxSniffing bounds the connections of one door still being told
	// apart (gRPC or raw); the next one is not accepted until one is.
	maxSniffing = 128
	// maxControlConns bounds the connections of a control socket, which
	// holds one per live launch (its lease).
	maxControlConns = 4096
)

// ConnMethod is the method name under which a refused connection is audited.
const ConnMethod = "connect"

// ReasonTooManyConnections is the reason of a connection refused because
// its door holds as many as its ceiling allows.
const ReasonTooManyConnections = "too_many_connections"

// connLimits are a server's connection ceilings; zero means the default.
type connLimits struct {
	grpc, sniffing int
}

func (l connLimits) withDefaults() connLimits {
	if l.grpc <= 0 {
		l.grpc = maxGRPCConns
	}
	if l.sniffing <= 0 {
		l.sniffing = maxSniffing
	}
	return l
}

// refuseConn closes c, refused for being beyond a ceiling, and audits the
// refusal (budgeted as a refusal). A peer the kernel does not vouch for (a
// TCP door's, which anything on the host's loopback can be) is not charged
// to the launch.
func (s *Server) refuseConn(c net.Conn, p Peer) {
	_ = c.Close()
	ctx, cs := s.begin(withPeer(context.Background(), p), ConnMethod)
	cs.unauthorized.Store(!p.Known)
	Audit(ctx, s.log, Record{Method: ConnMethod, Allow: false, Reason: ReasonTooManyConnections})
}

// connPeer is who the kernel says is on c, as far as it says.
func connPeer(c net.Conn) Peer {
	switch conn := c.(type) {
	case *sniffedConn:
		return conn.peer
	case *net.UnixConn:
		if p, ok := unixPeer(conn); ok {
			return p
		}
		return Peer{UID: -1, GID: -1, PID: -1, Unix: true}
	}
	return Peer{UID: -1, GID: -1, PID: -1, Addr: c.RemoteAddr().String()}
}

// limitListener hands gRPC at most max open connections; one beyond is
// closed at once and refused.
type limitListener struct {
	net.Listener
	s    *Server
	slot chan struct{}
}

func newLimitListener(l net.Listener, s *Server, max int) *limitListener {
	return &limitListener{Listener: l, s: s, slot: make(chan struct{}, max)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slot <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slot }}, nil
		default:
			l.s.refuseConn(c, connPeer(c))
		}
	}
}

// limitedConn gives its slot back when it closes.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
