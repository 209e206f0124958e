//go:build !linux

package door

import "net"

// unixPeer reports the peer as an unknown unix peer where SO_PEERCRED does
// not exist; authorizers that need a uid deny it.
func unixPeer(c *net.UnixConn) (Peer, bool) {
	return Peer{UID: -1, GID: -1, PID: -1, Unix: true}, true
}
