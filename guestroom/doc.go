// Package guestroom is a guest-agnostic capability engine: it turns a
// catalog of doors and named rooms into grants, checks caveats, and renders
// the rulebook and manifest that tell a guest exactly what it may and may
// not do. It performs no I/O and reads no clock; the door runtime that
// serves doors over sockets lives in package door.
//
// # Doors, rooms and grants
//
// A [Door] is one capability: a name, the flag that asks for it, the socket
// a guest reaches it on (and the env var naming that socket), a default
// host socket, and three texts for the rulebook (what it grants, how to use
// it, what its absence means). A [Catalog] holds the known doors in order
// and the [Rooms] built from them; a name outside the catalog resolves to a
// [GenericDoor]. Users name doors as specs ([ParseDoorSpec]):
//
//	NAME | NAME@/host/sock | NAME:k=v:k2=v2@/host/sock | NAME=/host/sock
//
// [Catalog.Grant] assembles rooms and specs into [Grant]s, and
// [Catalog.Denied] lists every catalog door left out, in catalog order.
//
// # Caveats and attenuation
//
// A [Caveat] narrows a door; caveats are append-only. [CheckCaveats] admits
// a request only when every caveat's verifier admits it, and a caveat with
// no verifier denies. [Attenuates] reports every way a child set of grants
// widens its parent. A [Lease] bounds grants in time (they hold strictly
// before the expiry), a [Ceiling] names caveats a grant must keep, and a
// [Provider] hands out a lease's grants only while both hold, reading time
// through an injected clock.
//
// # Authority in transit
//
// Where the kernel vouches for nobody (TCP), a [SignedGrant] carries the
// grant with an Ed25519 signature over its authority (door name, transport,
// sorted caveats, audience, expiry, nonce, key id) but not its cosmetic
// texts. [Keyring.Verify] reports, in order, [ErrUnsigned], [ErrUnknownKey],
// [ErrBadSignature], [ErrAudience] and [ErrExpired]; keys rotate by key id.
//
// # Rulebook and manifest
//
// A [Launch] is what one launch was granted and denied. [Launch.Rulebook]
// renders it for the guest (its authority is exactly what is granted) and
// [Launch.ManifestJSON] renders the same data for tools.
package guestroom
