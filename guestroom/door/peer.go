package door

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Peer is who is on the other end of a connection, as the kernel reports it.
type Peer struct {
	// UID, GID and PID from SO_PEERCRED; -1 when unknown.
	UID, GID, PID int
	// Unix is true for a unix-socket peer.
	Unix bool
	// Known is true when the kernel vouched for UID, GID and PID.
	Known bool
	// Addr is the remote address of a TCP peer.
	Addr string
}

// String renders the peer for logs: "uid=1000 pid=42" or "tcp 127.0.0.1:5555".
func (p Peer) String() string {
	switch {
	case p.Unix && p.Known:
		return "uid=" + strconv.Itoa(p.UID) + " pid=" + strconv.Itoa(p.PID)
	case p.Unix:
		return "unix unknown"
	default:
		return "tcp " + p.Addr
	}
}

// peerInfo is the credentials.AuthInfo the runtime attaches to a connection.
type peerInfo struct {
	credentials.CommonAuthInfo
	peer Peer
}

func (peerInfo) AuthType() string { return "peercred" }

// peerCreds is transport credentials that add no security of their own but
// record who the kernel says is connected.
type peerCreds struct{}

func (peerCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, peerInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	p := Peer{UID: -1, GID: -1, PID: -1}
	inner := c
	if lc, ok := c.(*limitedConn); ok {
		inner = lc.Conn
	}
	switch conn := inner.(type) {
	case *sniffedConn:
		p = conn.peer
	case *net.UnixConn:
		got, ok := unixPeer(conn)
		if !ok {
			return nil, nil, fmt.Errorf("read peer credentials: unavailable")
		}
		p = got
	default:
		p.Addr = c.RemoteAddr().String()
	}
	return c, peerInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}, peer: p}, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (peerCreds) Clone() credentials.TransportCredentials { return peerCreds{} }

func (peerCreds) OverrideServerName(string) error { return nil }

type rawPeerKey struct{}

func withPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, rawPeerKey{}, p)
}

// PeerFrom returns the kernel-reported peer of the call in ctx.
func PeerFrom(ctx context.Context) (Peer, bool) {
	if rp, ok := ctx.Value(rawPeerKey{}).(Peer); ok {
		return rp, true
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return Peer{}, false
	}
	info, ok := p.AuthInfo.(peerInfo)
	if !ok {
		return Peer{}, false
	}
	return info.peer, true
}
