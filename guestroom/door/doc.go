// Package door is the door runtime: what every door daemon uses to serve gRPC
// over a unix socket (or loopback TCP), to know who is calling, to authorize
// and audit each call, and to mint launch-scoped sockets that are revoked when
// their launch ends. No daemon writes its own socket handling.
//
// The model: a daemon serves a control socket (never mounted into a guest)
// through which the host-side launcher mints doors. A minted door is a fresh
// socket bound server-side to a launch id, an account and caveats; the guest
// API served on it sees those values through BindingFrom, never values the
// caller claims. Possessing the socket is the grant.
package door
