package door

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"unicode/utf8"
)

// Audit record keys: the same fields, in the same order, on every record.
const (
	KeyDoor    = "door"
	KeyMethod  = "method"
	KeyAccount = "account"
	KeyLaunch  = "launch"
	KeyPeer    = "peer"
	KeyTarget  = "target"
	KeyAllow   = "allow"
	KeyReason  = "reason"
	KeyError   = "error"
	// AuditMsg is the message of every audit record.
	AuditMsg = "audit"
)

// Record is one audit record: one per decision.
type Record struct {
	// Door is the door name; the server's when empty.
	Door string
	// Method is the operation; the gRPC method when empty.
	Method string
	// Target is what the decision was about (a host, a ref, a URL).
	Target string
	// Allow is the verdict.
	Allow bool
	// Reason is a short machine-stable reason, e.g. "not_allowlisted".
	Reason string
	// Err is set when the operation failed after being allowed.
	Err error
	// Attrs are door-specific fields appended after the fixed ones.
	Attrs []slog.Attr
}

// callState lets the runtime know whether a handler already audited its call.
type callState struct {
	door    string
	method  string
	audited atomic.Bool
	// budgets bounds the cheap-to-repeat records of the call's door; nil
	// when records are not budgeted.
	budgets *doorBudgets
	// informational: the call's gRPC method only answers a question (see
	// Config.Informational); its allowed records go to that budget.
	informational bool
	// unauthorized is set when the door refused the caller itself: it has
	// not proven it is the door's launch, so its refusals are not charged
	// to the launch's budget.
	unauthorized atomic.Bool
}

type callKey struct{}

func withCall(ctx context.Context, cs *callState) context.Context {
	return context.WithValue(ctx, callKey{}, cs)
}

// Audit writes one audit record for the call in ctx: allow at info, deny at
// warn, failure at error. Account, launch and peer come from ctx (the door's
// binding and the kernel), never from the request. A call whose handler
// audits is not audited again by the runtime. A refusal, or an allowed
// record of an informational method (Config.Informational), beyond its
// launch's AuditBudget is counted instead of written, and reported by a
// summary record (AuditSuppressedMsg); an allowed call of any other method
// is always written.
func Audit(ctx context.Context, log *slog.Logger, r Record) { audit(ctx, log, r, false) }

// audit is Audit; unaudited is set when the runtime writes the record for a
// handler that did not.
func audit(ctx context.Context, log *slog.Logger, r Record, unaudited bool) {
	if log == nil {
		return
	}
	cs, _ := ctx.Value(callKey{}).(*callState)
	if cs != nil {
		cs.audited.Store(true)
		if r.Door == "" {
			r.Door = cs.door
		}
		if r.Method == "" {
			r.Method = cs.method
		}
	}
	b, _ := BindingFrom(ctx)
	p, _ := PeerFrom(ctx)
	r.Target = clip(r.Target)
	r.Reason = clip(r.Reason)
	if cs != nil && cs.budgets != nil {
		if kind := chargeOf(r.Allow, cs.informational, unaudited); kind != kindNone {
			c := caller{account: b.Account, launch: b.LaunchID, peerValue: p, unauthorized: kind == kindRefusals && cs.unauthorized.Load()}
			if !cs.budgets.admit(kind, log, r, c) {
				return
			}
		}
	}
	level := slog.LevelInfo
	switch {
	case r.Err != nil:
		level = slog.LevelError
	case !r.Allow:
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, 9+len(r.Attrs))
	attrs = append(attrs,
		slog.String(KeyDoor, r.Door),
		slog.String(KeyMethod, r.Method),
		slog.String(KeyAccount, b.Account),
		slog.String(KeyLaunch, b.LaunchID),
		slog.String(KeyPeer, p.String()),
		slog.String(KeyTarget, r.Target),
		slog.Bool(KeyAllow, r.Allow),
		slog.String(KeyReason, r.Reason),
	)
	if r.Err != nil {
		attrs = append(attrs, slog.String(KeyError, r.Err.Error()))
	}
	attrs = append(attrs, r.Attrs...)
	log.LogAttrs(ctx, level, AuditMsg, attrs...)
}

// maxField is the longest target or reason an audit record carries: both can
// hold what a guest chose, and one request must not write a megabyte of log.
const maxField = 1024

func clip(s string) string { return Clip(s, maxField) }

// Clip cuts s to at most n bytes on a rune boundary and marks the cut with
// the original length, for audit fields a guest chose.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
