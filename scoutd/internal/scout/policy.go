package scout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/dest"
)

// Caveat keys the scout door interprets.
const (
	// CaveatHost narrows requests to hosts: a comma-separated list of
	// entries written like allowlist entries ("docs.example.com",
	// ".github.com"). GitHub reads are checked with the API host.
	CaveatHost = "host"
	// CaveatRepo narrows requests to repositories: a comma-separated list of
	// "owner/name" (case-insensitive). Fetches name no repository and are
	// refused under it; snapshots match the URL path "/owner/name[.git]".
	CaveatRepo = "repo"
	// caveatPort is the request key of the port a host caveat is checked
	// against (not a caveat).
	caveatPort = "port"
)

// Verifiers interpret the scout door's caveats, for guestroom.CheckCaveats.
func Verifiers() guestroom.Verifiers {
	return guestroom.Verifiers{
		CaveatHost: func(value string, req guestroom.Request) error {
			host := req[CaveatHost]
			if host == "" {
				return fmt.Errorf("request names no host")
			}
			for _, item := range strings.Split(value, ",") {
				e, err := dest.ParseEntry(strings.TrimSpace(item))
				if err != nil {
					return fmt.Errorf("caveat value: %w", err)
				}
				// An entry that names a port narrows to it; one without
				// narrows the host only (the allowlist decides ports).
				if e.MatchesHost(host) && (e.Port == 0 || strconv.Itoa(int(e.Port)) == req[caveatPort]) {
					return nil
				}
			}
			if p := req[caveatPort]; p != "" {
				return fmt.Errorf("%s port %s is outside it", host, p)
			}
			return fmt.Errorf("host %s is outside it", host)
		},
		CaveatRepo: func(value string, req guestroom.Request) error {
			repo := req[CaveatRepo]
			if repo == "" {
				return fmt.Errorf("request names no repository")
			}
			for _, item := range strings.Split(value, ",") {
				if strings.EqualFold(strings.TrimSpace(item), repo) {
					return nil
				}
			}
			return fmt.Errorf("repository %s is outside it", repo)
		},
	}
}

// ValidateCaveats checks, at mint time, that every caveat is one this door
// can enforce and that its value parses.
func ValidateCaveats(caveats []guestroom.Caveat) error {
	for _, c := range caveats {
		switch c.Key {
		case CaveatHost:
			for _, item := range strings.Split(c.Value, ",") {
				if _, err := dest.ParseEntry(strings.TrimSpace(item)); err != nil {
					return fmt.Errorf("caveat %s: %w", c, err)
				}
			}
		case CaveatRepo:
			for _, item := range strings.Split(c.Value, ",") {
				if !repoRE.MatchString(strings.TrimSpace(item)) {
					return fmt.Errorf("caveat %s: want owner/name", c)
				}
			}
		default:
			return fmt.Errorf("%w: %s", guestroom.ErrUninterpretable, c)
		}
	}
	return nil
}

var repoRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)

// ParseRepo checks "owner/name".
func ParseRepo(s string) (owner, name string, err error) {
	if !repoRE.MatchString(s) {
		return "", "", invalid("repository %q: want owner/name", s)
	}
	owner, name, _ = strings.Cut(s, "/")
	for _, p := range []string{owner, name} {
		if p == "." || p == ".." || len(p) > 100 {
			return "", "", invalid("repository %q: want owner/name", s)
		}
	}
	return owner, name, nil
}

// scope is what every hop of one request is checked against: the caveats
// of the door it came through and the repository it names, if any.
type scope struct {
	caveats []guestroom.Caveat
	repo    string
}

type scopeKey struct{}

func withScope(ctx context.Context, sc scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, sc)
}

func scopeFrom(ctx context.Context) scope {
	sc, _ := ctx.Value(scopeKey{}).(scope)
	return sc
}

// checkURL checks a box-supplied URL: strict parse, scheme, allowlist and
// caveats. It dials nothing; the dialer checks addresses.
func (s *Scout) checkURL(raw string, sc scope) (dest.URL, error) {
	u, err := dest.ParseURL(raw)
	if err != nil {
		return dest.URL{}, err
	}
	// net/http reads the URL again: it must see the same host, and no user.
	if p, err := url.Parse(u.String()); err != nil || p.User != nil || !strings.EqualFold(p.Hostname(), u.Target.Host) {
		return dest.URL{}, &Error{Kind: KindInvalid, Reason: dest.ReasonBadTarget, Err: fmt.Errorf("url %q does not parse the same way twice", raw)}
	}
	if u.Scheme == "http" && !s.allowHTTP {
		return dest.URL{}, denied(ReasonHTTPNotAllowed, "%s: plain http is not allowed", u.Target.Host)
	}
	if _, err := s.allow.Match(u.Target); err != nil {
		return dest.URL{}, err
	}
	req := guestroom.Request{CaveatHost: u.Target.Host, caveatPort: strconv.Itoa(int(u.Target.Port))}
	if sc.repo != "" {
		req[CaveatRepo] = sc.repo
	}
	if err := guestroom.CheckCaveats(sc.caveats, Verifiers(), req); err != nil {
		return dest.URL{}, err
	}
	return u, nil
}

// timedTransport enforces the first-byte ceiling on each HTTP exchange and
// the idle ceiling on each body read, by cancelling the exchange with a
// cause that Classify turns into the exact reason.
type timedTransport struct {
	base      http.RoundTripper
	firstByte time.Duration
	idle      time.Duration
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(t.firstByte, func() { cancel(errFirstByte) })
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() || err != nil {
		if err == nil {
			_ = resp.Body.Close()
		}
		cause := context.Cause(ctx)
		cancel(nil)
		if cause == errFirstByte {
			return nil, errFirstByte
		}
		if err == nil {
			err = cause
		}
		return nil, err
	}
	resp.Body = &idleBody{rc: resp.Body, ctx: ctx, cancel: cancel, idle: t.idle}
	return resp, nil
}

// idleBody cancels its exchange when one Read waits longer than idle.
type idleBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration
	once   sync.Once
}

func (b *idleBody) Read(p []byte) (int, error) {
	timer := time.AfterFunc(b.idle, func() { b.cancel(errIdle) })
	n, err := b.rc.Read(p)
	timer.Stop()
	if err != nil && b.ctx.Err() != nil {
		// net/http can report a clean EOF for an exchange it cancelled: a
		// cancelled exchange never ends a body, whatever the read said.
		cause := context.Cause(b.ctx)
		var e *Error
		if errors.As(cause, &e) {
			return n, e
		}
		return n, cause
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() { b.cancel(nil) })
	return err
}
