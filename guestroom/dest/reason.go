package dest

import "errors"

// reasonError is a sentinel error that carries a machine-stable code.
type reasonError struct {
	code string
	msg  string
}

func (e *reasonError) Error() string { return e.msg }

// Sentinel errors. Every refusal returned by this package wraps exactly one
// of them; test with errors.Is, or map to a code with Reason.
var (
	// ErrBadTarget: the target does not parse strictly.
	ErrBadTarget error = &reasonError{"bad_target", "bad target"}
	// ErrBadScheme: a URL scheme other than http or https.
	ErrBadScheme error = &reasonError{"bad_scheme", "scheme not allowed"}
	// ErrIPLiteral: an IP-literal target; IP literals never match a name.
	ErrIPLiteral error = &reasonError{"ip_literal", "ip literal target not allowed"}
	// ErrNotAllowlisted: no allowlist entry names the host.
	ErrNotAllowlisted error = &reasonError{"not_allowlisted", "host not allowlisted"}
	// ErrPortNotAllowed: an entry names the host, but not on this port.
	ErrPortNotAllowed error = &reasonError{"port_not_allowed", "port not allowed"}
	// ErrPrivateAddress: an address is not public (loopback, private,
	// link-local, metadata, ...) and no allow-private prefix covers it.
	ErrPrivateAddress error = &reasonError{"private_address", "address not public"}
	// ErrResolve: the name could not be resolved.
	ErrResolve error = &reasonError{"resolve_failed", "name did not resolve"}
	// ErrNoAddress: the name resolved to no address.
	ErrNoAddress error = &reasonError{"no_address", "name has no address"}
	// ErrUnreachable: the upstream refused or failed the connection.
	ErrUnreachable error = &reasonError{"upstream_unreachable", "upstream unreachable"}
	// ErrTimeout: the upstream connect timed out.
	ErrTimeout error = &reasonError{"upstream_timeout", "upstream connect timed out"}
	// ErrBadEntry: an allowlist entry, prefix or resolve override does not parse.
	ErrBadEntry error = &reasonError{"bad_entry", "bad policy entry"}
)

// Reason codes, as returned by Reason.
const (
	ReasonBadTarget      = "bad_target"
	ReasonBadScheme      = "bad_scheme"
	ReasonIPLiteral      = "ip_literal"
	ReasonNotAllowlisted = "not_allowlisted"
	ReasonPortNotAllowed = "port_not_allowed"
	ReasonPrivateAddress = "private_address"
	ReasonResolve        = "resolve_failed"
	ReasonNoAddress      = "no_address"
	ReasonUnreachable    = "upstream_unreachable"
	ReasonTimeout        = "upstream_timeout"
	ReasonBadEntry       = "bad_entry"
	// ReasonInternal is returned for an error that wraps no sentinel.
	ReasonInternal = "internal"
)

// Reason returns the machine-stable code of the first sentinel err wraps,
// "" for nil, and ReasonInternal for an error that wraps none.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var re *reasonError
	if errors.As(err, &re) {
		return re.code
	}
	return ReasonInternal
}
