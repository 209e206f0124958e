package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/dest"
)

// Verb says how a client asked for a destination.
type Verb int

// Verbs.
const (
	// VerbConnect is an HTTP CONNECT: the target is "host:port".
	VerbConnect Verb = iota + 1
	// VerbHTTP is an absolute-form plain-HTTP request: the target is the URL.
	VerbHTTP
)

// Verdict is the outcome of a decision.
type Verdict int

// Verdicts, each with the HTTP status the relay answers.
const (
	// Allow: connected (200, or the request is forwarded).
	Allow Verdict = iota + 1
	// Deny: policy refused the destination (403).
	Deny
	// BadTarget: the request did not parse strictly (400).
	BadTarget
	// Unreachable: allowed, but it could not be reached (502).
	Unreachable
	// Timeout: allowed, but the connect timed out (504).
	Timeout
	// Limited: a concurrency cap was hit (429).
	Limited
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case BadTarget:
		return "bad_target"
	case Unreachable:
		return "unreachable"
	case Timeout:
		return "timeout"
	case Limited:
		return "limited"
	}
	return "unknown"
}

// Reason codes netd adds to dest's.
const (
	// ReasonOK is the reason of an allowed decision.
	ReasonOK = "ok"
	// ReasonHostMismatch: an HTTP request's Host header disagrees with its URL.
	ReasonHostMismatch = "host_mismatch"
	// ReasonBadVerb: the request named no known verb.
	ReasonBadVerb = "bad_verb"
	// ReasonCaveat: the launch's caveats refuse the destination.
	ReasonCaveat = "caveat_denied"
	// ReasonLimited: a concurrency cap was hit.
	ReasonLimited = "limited"
)

// Errors netd adds to dest's.
var (
	ErrHostMismatch = errors.New("host header disagrees with the url")
	ErrBadVerb      = errors.New("unknown verb")
)

// VerdictFor maps a reason code to its verdict. Unknown reasons deny.
func VerdictFor(reason string) Verdict {
	switch reason {
	case ReasonOK:
		return Allow
	case dest.ReasonBadTarget, dest.ReasonBadScheme, ReasonHostMismatch, ReasonBadVerb:
		return BadTarget
	case dest.ReasonResolve, dest.ReasonNoAddress, dest.ReasonUnreachable:
		return Unreachable
	case dest.ReasonTimeout:
		return Timeout
	case ReasonLimited:
		return Limited
	}
	return Deny
}

// ReasonOf maps an error to its reason code.
func ReasonOf(err error) string {
	switch {
	case err == nil:
		return ReasonOK
	case errors.Is(err, ErrHostMismatch):
		return ReasonHostMismatch
	case errors.Is(err, ErrBadVerb):
		return ReasonBadVerb
	case errors.Is(err, guestroom.ErrCaveatDenied), errors.Is(err, guestroom.ErrUninterpretable):
		return ReasonCaveat
	}
	return dest.Reason(err)
}

// Request is one destination to decide on.
type Request struct {
	// Target is as the client asked: "host:port" or an absolute URL.
	Target string
	// Verb is how it asked.
	Verb Verb
	// HostHeader is an HTTP request's Host header, "" when absent.
	HostHeader string
	// Caveats are the launch door's caveats; they only narrow.
	Caveats []guestroom.Caveat
	// Profiles are named profiles the launch door was minted with; they
	// widen the daemon's policy for this launch only.
	Profiles []string
}

// Decision is the outcome of Check or Connect.
type Decision struct {
	// Verdict and Reason are the outcome; Reason is machine-stable.
	Verdict Verdict
	Reason  string
	// Rule is the entry that admitted the target, or what refused it.
	Rule string
	// Target is the canonical destination (zero when it did not parse).
	Target dest.Target
	// Addrs are the addresses the name resolved to (Check only).
	Addrs []netip.Addr
	// Addr is the address connected to (Connect only).
	Addr netip.AddrPort
	// Err is the detailed cause of a refusal or failure.
	Err error
}

// Message is a short human explanation for the client: what was refused
// and how to get it, never the policy.
func (d Decision) Message() string {
	t := d.Target.String()
	if d.Target.Host == "" {
		t = "target"
	}
	switch d.Verdict {
	case Allow:
		return "allowed: " + t
	case BadTarget:
		return fmt.Sprintf("bad request (%s): %v", d.Reason, d.Err)
	case Unreachable:
		return fmt.Sprintf("%s is allowed but unreachable (%s)", t, d.Reason)
	case Timeout:
		return fmt.Sprintf("%s is allowed but the connection timed out", t)
	case Limited:
		return "too many open tunnels; retry later"
	}
	hint := "hint: relaunch with a profile or --allow entry that names it"
	switch d.Reason {
	case dest.ReasonIPLiteral:
		hint = "hint: use a host name; ip literals are never allowed"
	case dest.ReasonPrivateAddress:
		hint = "hint: private addresses need --allow-private on the netd host"
	case ReasonCaveat:
		hint = "hint: this launch's door is narrowed by a caveat"
	}
	return fmt.Sprintf("%s denied (%s). %s", t, d.Reason, hint)
}

// Options configure an Engine.
type Options struct {
	// ConnectTimeout bounds one upstream connect; 0 means dest's default.
	ConnectTimeout time.Duration
	// Resolver answers names the policy has no static answer for; nil is
	// the pure-Go resolver. Tests inject one that knows no real names.
	Resolver dest.Resolver
	// Dial replaces the upstream dial (tests, benchmarks); nil dials TCP.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Engine decides on destinations under a policy that can be replaced
// atomically while decisions are being made.
type Engine struct {
	opts Options
	cur  atomic.Pointer[compiled]
}

type compiled struct {
	pol    Policy
	dialer *dest.Dialer
}

// NewEngine returns an engine enforcing p.
func NewEngine(p Policy, o Options) *Engine {
	if o.Resolver == nil {
		o.Resolver = dest.NewGoResolver()
	}
	e := &Engine{opts: o}
	e.Set(p)
	return e
}

// Set replaces the policy; decisions already made keep the old one.
func (e *Engine) Set(p Policy) {
	c := &compiled{pol: p, dialer: &dest.Dialer{
		Resolver: &dest.Static{Hosts: p.Resolve, Next: e.opts.Resolver},
		Addrs:    dest.AddrPolicy{AllowPrivate: p.AllowPrivate},
		Timeout:  e.opts.ConnectTimeout,
		Dial:     e.opts.Dial,
	}}
	e.cur.Store(c)
}

// Policy returns the policy in force.
func (e *Engine) Policy() Policy { return e.cur.Load().pol }

// HostVerifiers interprets the caveats a net door accepts: host=ENTRY
// (an allowlist entry: exact, leading-dot, optional port) admits only the
// destinations that entry admits.
func HostVerifiers() guestroom.Verifiers {
	return guestroom.Verifiers{"host": func(value string, req guestroom.Request) error {
		e, err := dest.ParseEntry(value)
		if err != nil {
			return err
		}
		port, err := strconv.Atoi(req["port"])
		if err != nil || port <= 0 || port > 65535 {
			return fmt.Errorf("no port to check")
		}
		if !e.MatchesHost(req["host"]) || !e.AdmitsPort(uint16(port)) {
			return fmt.Errorf("%s:%d is outside %s", req["host"], port, e)
		}
		return nil
	}}
}

// BindingProfiles is the mint binding that names extra profiles for one
// launch, comma-separated: {"profiles": "login,github-read"}.
const BindingProfiles = "profiles"

// ProfileAllowlist compiles named profiles into one allowlist. "none" and
// unknown names are refused: a binding may only widen, by names netd knows.
func ProfileAllowlist(names []string) (dest.Allowlist, error) {
	var l dest.Allowlist
	for _, n := range names {
		if n == NoProfile {
			return nil, fmt.Errorf("profile %q cannot be bound to a launch; narrow with host= caveats instead", n)
		}
		entries, err := Profile(n)
		if err != nil {
			return nil, err
		}
		for _, raw := range entries {
			e, err := dest.ParseEntry(raw)
			if err != nil {
				return nil, fmt.Errorf("profile %s: %w", n, err)
			}
			l = appendEntry(l, e)
		}
	}
	return l, nil
}

// BoundProfiles returns the profiles named by a door's bindings.
func BoundProfiles(b map[string]string) []string {
	v := b[BindingProfiles]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// ValidateBindings refuses, at mint time, bindings the engine cannot
// enforce: only "profiles", naming known profiles.
func ValidateBindings(b map[string]string) error {
	for k := range b {
		if k != BindingProfiles {
			return fmt.Errorf("net door takes only a %q binding, not %q", BindingProfiles, k)
		}
	}
	if _, ok := b[BindingProfiles]; ok && len(BoundProfiles(b)) == 0 {
		return fmt.Errorf("empty %q binding", BindingProfiles)
	}
	_, err := ProfileAllowlist(BoundProfiles(b))
	return err
}

// ValidateCaveats refuses, at mint time, caveats the engine cannot enforce.
func ValidateCaveats(cs []guestroom.Caveat) error {
	for _, c := range cs {
		if c.Key != "host" {
			return fmt.Errorf("net door interprets only host= caveats, not %q", c.Key)
		}
		if _, err := dest.ParseEntry(c.Value); err != nil {
			return fmt.Errorf("caveat %s: %w", c, err)
		}
	}
	return nil
}

// decideName runs every step before address resolution: strict parse,
// Host agreement, allowlist, caveats.
func (c *compiled) decideName(r Request) Decision {
	var d Decision
	var err error
	switch r.Verb {
	case VerbConnect:
		d.Target, err = dest.ParseHostPort(r.Target)
	case VerbHTTP:
		var u dest.URL
		u, err = dest.ParseURL(r.Target)
		if err == nil && u.Scheme != "http" {
			err = fmt.Errorf("%w: %s: only http is forwarded; use CONNECT for https", dest.ErrBadScheme, u.Scheme)
		}
		if err == nil {
			d.Target = u.Target
			err = checkHost(u.Target, r.HostHeader)
		}
	default:
		err = fmt.Errorf("%w %d", ErrBadVerb, r.Verb)
	}
	if err != nil {
		return d.refuse(RuleParse, err)
	}
	e, err := c.pol.Allow.Match(d.Target)
	if err != nil && len(r.Profiles) > 0 {
		extra, perr := ProfileAllowlist(r.Profiles)
		if perr != nil {
			return d.refuse(RuleAllowlist, perr)
		}
		pe, merr := extra.Match(d.Target)
		switch {
		case merr == nil:
			e, err = pe, nil
		case dest.Reason(err) == dest.ReasonNotAllowlisted:
			// The bound profile knows the host: its refusal says more.
			err = merr
		}
	}
	if err != nil {
		return d.refuse(RuleAllowlist, err)
	}
	d.Rule = e.String()
	req := guestroom.Request{"host": d.Target.Host, "port": strconv.Itoa(int(d.Target.Port))}
	if err := guestroom.CheckCaveats(r.Caveats, HostVerifiers(), req); err != nil {
		return d.refuse(RuleCaveat, err)
	}
	d.Verdict, d.Reason = Allow, ReasonOK
	return d
}

// checkHost refuses a Host header that disagrees with the URL. HTTP/1.0
// requests may omit it.
func checkHost(t dest.Target, h string) error {
	if h == "" {
		return nil
	}
	ht, err := dest.ParseAuthority(h, dest.PortHTTP)
	if err != nil {
		return fmt.Errorf("%w: host header: %w", ErrHostMismatch, err)
	}
	if ht != t {
		return fmt.Errorf("%w: host %q, url %s", ErrHostMismatch, h, t)
	}
	return nil
}

// Rules that refuse, as named in a denial's Rule.
const (
	RuleParse     = "strict_parse"
	RuleAllowlist = "allowlist"
	RuleCaveat    = "launch_caveat"
	RuleAddress   = "address_class"
)

// refuse records err as the outcome; a denial names the rule that denied,
// a failure after the allowlist admitted the target keeps the entry.
func (d Decision) refuse(rule string, err error) Decision {
	d.Reason = ReasonOf(err)
	d.Verdict = VerdictFor(d.Reason)
	d.Err = err
	if d.Verdict == Deny || d.Verdict == BadTarget {
		d.Rule = rule
	}
	return d
}

// Check explains what Connect would decide, without dialing. Addrs lists
// every address the name resolved to, refused or not.
func (e *Engine) Check(ctx context.Context, r Request) Decision {
	c := e.cur.Load()
	d := c.decideName(r)
	if d.Verdict != Allow {
		return d
	}
	if d.Target.IsIP() {
		d.Addrs = []netip.Addr{d.Target.Addr}
	} else {
		addrs, err := c.dialer.Resolver.LookupNetIP(ctx, d.Target.Host)
		if err != nil {
			return d.refuse(RuleAddress, fmt.Errorf("%w: %s: %w", dest.ErrResolve, d.Target.Host, err))
		}
		d.Addrs = addrs
	}
	if err := c.dialer.Addrs.CheckAll(d.Addrs); err != nil {
		return d.refuse(RuleAddress, err)
	}
	return d
}

// Connect decides on r and, when allowed, resolves once, checks every
// address and dials a checked one. The connection is nil unless the
// verdict is Allow.
func (e *Engine) Connect(ctx context.Context, r Request) (net.Conn, Decision) {
	c := e.cur.Load()
	d := c.decideName(r)
	if d.Verdict != Allow {
		return nil, d
	}
	conn, ap, err := c.dialer.DialTarget(ctx, "tcp", d.Target)
	if err != nil {
		return nil, d.refuse(RuleAddress, err)
	}
	d.Addr = ap
	return conn, d
}

// Reload loads src and, only if it validates, puts it in force atomically.
// On error the policy in force stays as it was.
func (e *Engine) Reload(src Source) (Policy, error) {
	p, err := src.Load()
	if err != nil {
		return e.Policy(), fmt.Errorf("reload refused, previous policy stays in force: %w", err)
	}
	e.Set(p)
	return p, nil
}
