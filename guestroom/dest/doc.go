// Package dest decides whether a network destination may be reached.
//
// It parses targets strictly ("host:port" authorities and absolute http(s)
// URLs) into a canonical form, matches them against allowlist entries (exact
// host or leading-dot suffix, optional port), classifies every resolved
// address (loopback, private, link-local, metadata, embedded IPv4 forms, ...)
// and dials exactly an address it checked. Anything it is unsure of is
// refused: it never "fixes up" a target.
//
// Every refusal wraps one of the sentinel errors below; Reason maps an error
// to a short machine-stable code ("bad_target", "not_allowlisted", ...).
package dest
