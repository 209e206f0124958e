// Package door is the door runtime: what every door daemon uses to serve gRPC
// over a unix socket (or loopback TCP), to know who is calling, to authorize
// and audit each call, and to mint launch-scoped sockets that are revoked when
// their launch ends. No daemon writes its own socket handling.
//
// The model: a daemon serves a control socket (never mounted into a guest)
// through which the host-side launcher mints doors. A minted door is a fresh
// socket bound server-side to a launch id, an account and caveats; the guest
// API served on it sees those values through BindingFrom, never values the
// caller claims. Possessing the socket is the grant. A door minted through
// the control service lives while a lease (HoldLease) holds it: one no
// lease claims within MinterConfig.LeaseGrace (a minute) is revoked, so a
// launcher that dies between mint and lease leaves no door behind.
//
// Who may reach what: control sockets live in a 0700 directory, are 0600 and
// admit only the daemon's own uid (SameUser). Minted sockets live in a 0700
// directory of the daemon's and are made connectable by the box's user as the
// container runtime maps it (see grantAccess); the bind mount is the grant.
// A TCP door (for hosts that cannot share unix sockets) listens on loopback
// only and admits only its per-launch bearer token.
//
// Every call gets one authorization decision (nil authorizer: deny) and one
// audit record with the same fields (door, method, account, launch, peer,
// target, allow, reason); account and launch come from the door's binding,
// the peer from SO_PEERCRED. A door may also serve raw connections beside
// gRPC (RawHandler) for bulk byte streams, under the same authorization,
// binding and audit.
//
// A door bounds what a guest can hold open on it: at most 128 gRPC
// connections (one beyond is closed at once and audited under ConnMethod
// with ReasonTooManyConnections) and 128 connections still saying what they
// are, each for at most rawDeadline (the next waits, unread, in the
// kernel's backlog). Revocation closes every connection of the door, raw
// ones included.
//
// Refusals, the allowed calls of the methods a door declares informational
// (Config.Informational) and the records the runtime writes for calls their
// handler did not audit are budgeted per launch, each kind in its own
// bucket (AuditBudget: a burst of 100, then 20 a second), so a guest looping
// on cheap calls cannot fill the host's journal: beyond the budget they are
// counted per method and reason and reported by audit_suppressed summary
// records, at most once a second and when the door closes. Allowed calls of
// the other methods are always written.
package door
