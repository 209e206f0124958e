package dest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Resolver looks up the addresses of a canonical host name.
type Resolver interface {
	LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// GoResolver is the pure-Go resolver of package net (it never calls into
// libc or nsswitch), as a Resolver.
type GoResolver struct {
	r netLookup
}

// netLookup is what GoResolver needs of a *net.Resolver.
type netLookup interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// NewGoResolver returns the pure-Go resolver.
func NewGoResolver() *GoResolver {
	return &GoResolver{r: &net.Resolver{PreferGo: true}}
}

// LookupNetIP implements Resolver. host is looked up rooted (with a
// trailing dot), so the resolver asks for exactly that name: never a name
// built from resolv.conf's search domains or the host name's domain, which
// an allowlist that admitted host never saw.
func (g *GoResolver) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	if _, err := netip.ParseAddr(host); err != nil && !strings.HasSuffix(host, ".") {
		host += "."
	}
	return g.r.LookupNetIP(ctx, "ip", host)
}

// Static answers the names it knows from a fixed map (like curl's
// --resolve) and passes every other name to Next. With Next nil, an unknown
// name fails: tests use that to guarantee no real lookup happens.
type Static struct {
	// Hosts maps canonical names to their addresses.
	Hosts map[string][]netip.Addr
	// Next resolves every other name; nil means "fail".
	Next Resolver
}

// LookupNetIP implements Resolver.
func (s *Static) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	if addrs, ok := s.Hosts[host]; ok {
		return append([]netip.Addr(nil), addrs...), nil
	}
	if s.Next == nil {
		return nil, fmt.Errorf("no static answer for %q", host)
	}
	return s.Next.LookupNetIP(ctx, host)
}

// Add records one static answer.
func (s *Static) Add(host string, a netip.Addr) {
	if s.Hosts == nil {
		s.Hosts = make(map[string][]netip.Addr)
	}
	s.Hosts[host] = append(s.Hosts[host], a)
}

// ParseResolve parses a "HOST=IP" override. HOST is parsed as strictly as
// a target's host and returned canonical; IP is an IPv4 or IPv6 address
// without a zone. Repeat a HOST to give it several addresses.
func ParseResolve(s string) (string, netip.Addr, error) {
	h, ip, ok := strings.Cut(s, "=")
	if !ok {
		return "", netip.Addr{}, fmt.Errorf("%w: resolve %q: want HOST=IP", ErrBadEntry, s)
	}
	host, lit, err := ParseHost(h)
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("%w: resolve %q: %w", ErrBadEntry, s, err)
	}
	if lit.IsValid() {
		return "", netip.Addr{}, fmt.Errorf("%w: resolve %q: host is an ip literal", ErrBadEntry, s)
	}
	ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return "", netip.Addr{}, fmt.Errorf("%w: resolve %q: bad address", ErrBadEntry, s)
	}
	return host, a, nil
}
