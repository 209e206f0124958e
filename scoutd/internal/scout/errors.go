package scout

import (
	"context"
	"errors"
	"fmt"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/dest"
)

// Kind sorts a failure for the adapter, which maps it to a status code.
type Kind int

// Kinds of failure.
const (
	// KindInternal: a bug or an unexpected local failure.
	KindInternal Kind = iota
	// KindInvalid: the request does not parse.
	KindInvalid
	// KindDenied: policy refused the request.
	KindDenied
	// KindTooLarge: a size ceiling was hit.
	KindTooLarge
	// KindTimeout: a time ceiling was hit.
	KindTimeout
	// KindUnavailable: the upstream could not be reached or failed.
	KindUnavailable
	// KindNotFound: the upstream says the thing does not exist.
	KindNotFound
)

// Reasons of this package, beside the dest reasons it passes through
// ("bad_target", "bad_scheme", "ip_literal", "not_allowlisted",
// "port_not_allowed", "private_address", "resolve_failed", "no_address",
// "upstream_unreachable", "upstream_timeout").
const (
	ReasonHTTPNotAllowed   = "http_not_allowed"
	ReasonCaveatDenied     = "caveat_denied"
	ReasonTooManyRedirects = "too_many_redirects"
	ReasonRedirectOffAPI   = "redirect_off_api"
	ReasonTooLarge         = "too_large"
	ReasonDecodedTooLarge  = "decoded_too_large"
	ReasonTooManyFiles     = "too_many_files"
	ReasonBadEncoding      = "bad_encoding"
	ReasonTimeout          = "timeout"
	ReasonFirstByteTimeout = "first_byte_timeout"
	ReasonIdleTimeout      = "idle_timeout"
	ReasonUpstreamStatus   = "upstream_status"
	ReasonUpstreamError    = "upstream_error"
	ReasonNotFound         = "not_found"
	ReasonRefNotFound      = "ref_not_found"
	ReasonBadRequest       = "bad_request"
	ReasonCanceled         = "canceled"
	ReasonBusy             = "too_many_requests"
	ReasonInternal         = "internal"
)

// Error is a classified failure: what kind, a machine-stable reason and
// the underlying error. Its message never carries a token.
type Error struct {
	Kind   Kind
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errors that carry a ceiling's cause through a cancelled context.
var (
	errTotalTimeout = &Error{Kind: KindTimeout, Reason: ReasonTimeout, Err: errors.New("request took longer than its time ceiling")}
	errFirstByte    = &Error{Kind: KindTimeout, Reason: ReasonFirstByteTimeout, Err: errors.New("no response head within the first-byte ceiling")}
	errIdle         = &Error{Kind: KindTimeout, Reason: ReasonIdleTimeout, Err: errors.New("no body bytes within the idle ceiling")}
)

func denied(reason string, format string, args ...any) *Error {
	return &Error{Kind: KindDenied, Reason: reason, Err: fmt.Errorf(format, args...)}
}

func invalid(format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Reason: ReasonBadRequest, Err: fmt.Errorf(format, args...)}
}

// Classify returns err as an *Error: itself (or the one it wraps), a dest
// refusal with its reason, a context cause, or an internal failure.
func Classify(ctx context.Context, err error) *Error {
	if err == nil {
		return nil
	}
	// A ceiling that fired is the truest account, whatever error surfaced.
	if ctx != nil {
		var ce *Error
		if cause := context.Cause(ctx); cause != nil && errors.As(cause, &ce) {
			return &Error{Kind: ce.Kind, Reason: ce.Reason, Err: err}
		}
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, guestroom.ErrCaveatDenied) || errors.Is(err, guestroom.ErrUninterpretable) {
		return &Error{Kind: KindDenied, Reason: ReasonCaveatDenied, Err: err}
	}
	switch r := dest.Reason(err); r {
	case dest.ReasonBadTarget:
		return &Error{Kind: KindInvalid, Reason: r, Err: err}
	case dest.ReasonBadScheme, dest.ReasonIPLiteral, dest.ReasonNotAllowlisted,
		dest.ReasonPortNotAllowed, dest.ReasonPrivateAddress:
		return &Error{Kind: KindDenied, Reason: r, Err: err}
	case dest.ReasonResolve, dest.ReasonNoAddress, dest.ReasonUnreachable:
		return &Error{Kind: KindUnavailable, Reason: r, Err: err}
	case dest.ReasonTimeout:
		return &Error{Kind: KindTimeout, Reason: r, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Kind: KindTimeout, Reason: ReasonTimeout, Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Kind: KindUnavailable, Reason: ReasonCanceled, Err: err}
	}
	return &Error{Kind: KindInternal, Reason: ReasonInternal, Err: err}
}

// Hint says how to get what was refused, for a reason; "" when there is
// nothing the caller can do.
func Hint(reason string) string {
	switch reason {
	case dest.ReasonNotAllowlisted, dest.ReasonPortNotAllowed:
		return "the host is not on scoutd's allowlist; the operator adds it with scoutd --allow or the config's allow list"
	case dest.ReasonIPLiteral:
		return "name the host instead of its address"
	case dest.ReasonPrivateAddress:
		return "the name resolves to a non-public address; the operator may open it with --allow-private CIDR"
	case ReasonHTTPNotAllowed, dest.ReasonBadScheme:
		return "use an https:// URL"
	case ReasonCaveatDenied:
		return "this launch's scout door is narrowed by caveats; relaunch with a door that covers the target"
	case ReasonBusy:
		return "this launch has as many scout requests in flight as it may; retry when one ends"
	case ReasonTooLarge, ReasonDecodedTooLarge, ReasonTooManyFiles:
		return "the operator can raise the ceiling in scoutd's config"
	}
	return ""
}
