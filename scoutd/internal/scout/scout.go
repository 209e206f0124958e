// Package scout is the domain of the scout door: it reads external content
// (a URL, a repository tree at a ref, a GitHub issue or pull request) under
// a policy and returns it as content, never as a token or a connection.
//
// Every request is checked before anything is dialed: the URL parses
// strictly, its scheme is https (http only when the policy says so), its host
// is on the allowlist and inside the caveats of the door it came through.
// Every connection goes through a dialer that resolves once, checks every
// address and dials exactly a checked one (guestroom/dest), every redirect
// hop is checked again, and every read runs under ceilings (bytes, decoded
// bytes, total time, time to first byte, idle time) that a request may lower
// and never raise. A read that hits a ceiling fails as a whole: nothing
// partial is passed off as complete.
//
// The package knows nothing of protos or sockets; internal/server adapts it
// to the scout/v1 door.
package scout

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/dest"
)

// Limits are the server-side ceilings of one request.
type Limits struct {
	// MaxBytes caps a fetched body as it arrives on the wire, and the
	// decoded body returned. A request may lower it.
	MaxBytes int64
	// MaxDecodedBytes caps the decoded (decompressed) body: a gzip bomb
	// stops here.
	MaxDecodedBytes int64
	// Timeout caps a whole request. A request may lower it.
	Timeout time.Duration
	// FirstByte caps the wait for a response head, per HTTP request.
	FirstByte time.Duration
	// Idle caps the wait for any one read of a body.
	Idle time.Duration
	// MaxRedirects caps the redirect hops of a fetch.
	MaxRedirects int
	// MaxSnapshotBytes caps the total size of a snapshot's files (and, with
	// slack, the pack that carries them). A request may lower it.
	MaxSnapshotBytes int64
	// MaxFiles caps a snapshot's entries. A request may lower it.
	MaxFiles int64
	// MaxComments caps the comments returned with an issue or PR.
	MaxComments int
}

// DefaultLimits are the ceilings used where a config sets none.
func DefaultLimits() Limits {
	return Limits{
		MaxBytes:         10 << 20,
		MaxDecodedBytes:  10 << 20,
		Timeout:          60 * time.Second,
		FirstByte:        20 * time.Second,
		Idle:             20 * time.Second,
		MaxRedirects:     5,
		MaxSnapshotBytes: 256 << 20,
		MaxFiles:         50_000,
		MaxComments:      500,
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = d.MaxDecodedBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.FirstByte <= 0 {
		l.FirstByte = d.FirstByte
	}
	if l.Idle <= 0 {
		l.Idle = d.Idle
	}
	if l.MaxRedirects <= 0 {
		l.MaxRedirects = d.MaxRedirects
	}
	if l.MaxSnapshotBytes <= 0 {
		l.MaxSnapshotBytes = d.MaxSnapshotBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxComments <= 0 {
		l.MaxComments = d.MaxComments
	}
	return l
}

// lower returns v lowered to req when req is positive and smaller.
func lower[T int64 | time.Duration](v, req T) T {
	if req > 0 && req < v {
		return req
	}
	return v
}

// Dialer connects to "host:port". The default checks every resolved
// address (dest.Dialer); --egress-door replaces it with a netd tunnel.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config is what a Scout is built from. The zero value of every optional
// field means its default.
type Config struct {
	// Allow lists the hosts box requests may name.
	Allow dest.Allowlist
	// AllowHTTP admits plain http:// URLs (https only otherwise).
	AllowHTTP bool
	// Dialer connects to checked destinations; nil means a dest.Dialer
	// with Resolver and Addrs.
	Dialer Dialer
	// Resolver answers lookups for the default dialer; nil means the pure-Go
	// resolver.
	Resolver dest.Resolver
	// Addrs decides which resolved addresses the default dialer may dial.
	Addrs dest.AddrPolicy
	// RootCAs verifies upstream certificates; nil means the system pool.
	RootCAs *x509.CertPool
	// Limits are the server-side ceilings.
	Limits Limits
	// GitHubAPI is the GitHub REST base URL, https only (AllowHTTP does
	// not apply: the token never travels in clear); empty means
	// https://api.github.com.
	GitHubAPI string
	// Token is sent as a bearer token to GitHubAPI's host, and nowhere else.
	Token string
	// UserAgent is sent on every request; empty means "claude-box-scoutd".
	UserAgent string
}

// DefaultGitHubAPI is the public GitHub REST API.
const DefaultGitHubAPI = "https://api.github.com"

// Scout performs reads under one policy. It is safe for concurrent use.
type Scout struct {
	allow     dest.Allowlist
	allowHTTP bool
	limits    Limits
	ua        string

	api     dest.URL // GitHub API base
	apiPath string   // its path, without a trailing slash
	token   string

	web *http.Client // fetches and snapshots: allowlist only, never a token
	gh  *http.Client // GitHub API: the API host only, token on the first hop only
}

// New builds a Scout.
func New(cfg Config) (*Scout, error) {
	s := &Scout{
		allow:     cfg.Allow,
		allowHTTP: cfg.AllowHTTP,
		limits:    cfg.Limits.withDefaults(),
		ua:        cfg.UserAgent,
		token:     cfg.Token,
	}
	if s.ua == "" {
		s.ua = "claude-box-scoutd"
	}
	if strings.ContainsAny(cfg.Token, "\r\n") {
		return nil, errors.New("token has a line break")
	}
	api := cfg.GitHubAPI
	if api == "" {
		api = DefaultGitHubAPI
	}
	u, err := dest.ParseURL(api)
	if err != nil {
		return nil, fmt.Errorf("github api %q: %w", api, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("github api %q: https only (the token must not travel in clear)", api)
	}
	if u.Target.IsIP() {
		return nil, fmt.Errorf("github api %q: ip literal (name a host)", api)
	}
	if strings.Contains(u.RequestURI, "?") {
		return nil, fmt.Errorf("github api %q: has a query", api)
	}
	s.api = u
	s.apiPath = strings.TrimSuffix(u.RequestURI, "/")

	d := cfg.Dialer
	if d == nil {
		d = &dest.Dialer{Resolver: cfg.Resolver, Addrs: cfg.Addrs}
	}
	apiEntry := dest.Entry{Host: u.Target.Host, Port: u.Target.Port}

	s.web = &http.Client{
		Transport: s.transport(d, cfg.RootCAs, nil),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > s.limits.MaxRedirects {
				return &Error{Kind: KindDenied, Reason: ReasonTooManyRedirects, Err: fmt.Errorf("more than %d redirects", s.limits.MaxRedirects)}
			}
			sc := scopeFrom(req.Context())
			if sc.repo != "" {
				// A snapshot's hop names its repository again: a repo=
				// caveat is checked against where it redirects to.
				sc.repo = repoOfGitPath(req.URL.Path)
			}
			if _, err := s.checkURL(req.URL.String(), sc); err != nil {
				return fmt.Errorf("redirect to %s: %w", redact(req.URL), err)
			}
			return nil
		},
	}
	s.gh = &http.Client{
		Transport: &tokenTransport{
			base:  s.transport(d, cfg.RootCAs, &apiEntry),
			api:   u,
			token: cfg.Token,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > s.limits.MaxRedirects {
				return &Error{Kind: KindDenied, Reason: ReasonTooManyRedirects, Err: fmt.Errorf("more than %d redirects", s.limits.MaxRedirects)}
			}
			if !s.isAPI(req.URL) {
				return &Error{Kind: KindDenied, Reason: ReasonRedirectOffAPI, Err: fmt.Errorf("github api redirected to %s", redact(req.URL))}
			}
			return nil
		},
	}
	return s, nil
}

// Limits returns the server-side ceilings in force.
func (s *Scout) Limits() Limits { return s.limits }

// Allowlist returns the allowlist entries, as written.
func (s *Scout) Allowlist() []string { return s.allow.Strings() }

// HasToken reports whether GitHub reads carry a token.
func (s *Scout) HasToken() bool { return s.token != "" }

// GitHubAPI returns the GitHub API base URL.
func (s *Scout) GitHubAPI() string { return s.api.String() }

// transport builds an HTTP transport whose every connection is checked:
// the name against the allowlist (plus extra, for the GitHub API host),
// then every address by the dialer. Transparent decompression is off: the
// fetch path decodes itself, under a ceiling.
func (s *Scout) transport(d Dialer, roots *x509.CertPool, extra *dest.Entry) http.RoundTripper {
	allow := s.allow
	if extra != nil {
		allow = append(dest.Allowlist{*extra}, allow...)
	}
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		t, err := dest.ParseHostPort(address)
		if err != nil {
			return nil, err
		}
		if _, err := allow.Match(t); err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, address)
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    s.limits.FirstByte,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           32,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	return &timedTransport{base: tr, firstByte: s.limits.FirstByte, idle: s.limits.Idle}
}

// isAPI reports whether u is on the GitHub API's scheme, host and port.
func (s *Scout) isAPI(u *url.URL) bool {
	p, err := dest.ParseURL(u.String())
	if err != nil {
		return false
	}
	return p.Scheme == s.api.Scheme && p.Target == s.api.Target
}

// tokenTransport adds the bearer token to the first hop of a request to the
// API's exact scheme, host and port; never to a redirect (req.Response is
// set on those), never anywhere else.
type tokenTransport struct {
	base  http.RoundTripper
	api   dest.URL
	token string
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.token == "" || req.Response != nil {
		return t.base.RoundTrip(req)
	}
	p, err := dest.ParseURL(req.URL.String())
	if err != nil || p.Scheme != t.api.Scheme || p.Target != t.api.Target {
		return t.base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}

// redact renders a URL without userinfo or query, for messages.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	return c.String()
}
