package dest

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Limits on names, from RFC 1035.
const (
	// MaxNameLen is the longest host name accepted, in octets, without the
	// trailing root dot.
	MaxNameLen = 253
	// MaxLabelLen is the longest label accepted, in octets.
	MaxLabelLen = 63
	// maxAuthorityLen bounds an authority: a bracketed IPv6 literal or a
	// longest name with its root dot, plus ":65535".
	maxAuthorityLen = MaxNameLen + 1 + 6
	// MaxURLLen is the longest absolute URL accepted.
	MaxURLLen = 8192
)

// Default ports of the URL schemes this package knows.
const (
	PortHTTP  = 80
	PortHTTPS = 443
)

// Target is a strictly parsed, canonical destination.
type Target struct {
	// Host is the canonical host: a lower-case name without a trailing root
	// dot, or the canonical text of an IP literal (without brackets).
	Host string
	// Port is the destination port, never 0.
	Port uint16
	// Addr is the IP literal; it is valid only when the target was one.
	Addr netip.Addr
}

// IsIP reports whether the target is an IP literal.
func (t Target) IsIP() bool { return t.Addr.IsValid() }

// String renders the target as host:port, bracketing an IPv6 literal.
func (t Target) String() string {
	return t.Authority(0)
}

// Authority renders host:port, leaving the port out when it equals
// defaultPort (pass 0 to always include it).
func (t Target) Authority(defaultPort uint16) string {
	h := t.Host
	if t.Addr.Is6() {
		h = "[" + h + "]"
	}
	if t.Port == defaultPort {
		return h
	}
	return h + ":" + strconv.Itoa(int(t.Port))
}

// ParseHostPort parses a CONNECT-style authority "host:port" (the port is
// required) into a canonical Target.
func ParseHostPort(s string) (Target, error) {
	return ParseAuthority(s, 0)
}

// ParseAuthority parses an authority "host[:port]". When defaultPort is 0
// the port is required; otherwise a missing port means defaultPort.
//
// Refused (ErrBadTarget): userinfo, fragments, paths, backslashes, percent
// signs and zone ids, wildcards, spaces, control and non-ASCII characters,
// empty or over-long labels, names over MaxNameLen octets, unbracketed IPv6,
// bracketed IPv4, IPv4 in any form but canonical dotted decimal (decimal,
// octal, hex, short forms), and ports outside 1-65535 or with leading zeros.
func ParseAuthority(s string, defaultPort uint16) (Target, error) {
	if s == "" {
		return Target{}, fmt.Errorf("%w: empty", ErrBadTarget)
	}
	if len(s) > maxAuthorityLen {
		return Target{}, fmt.Errorf("%w: authority longer than %d octets", ErrBadTarget, maxAuthorityLen)
	}
	if err := checkAuthorityChars(s); err != nil {
		return Target{}, err
	}
	var hostPart, portPart string
	hasPort := false
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Target{}, fmt.Errorf("%w: %q: unterminated [", ErrBadTarget, s)
		}
		hostPart = s[1:end]
		rest := s[end+1:]
		switch {
		case rest == "":
		case rest[0] == ':':
			portPart, hasPort = rest[1:], true
		default:
			return Target{}, fmt.Errorf("%w: %q: junk after ]", ErrBadTarget, s)
		}
		a, err := netip.ParseAddr(hostPart)
		if err != nil || !a.Is6() {
			return Target{}, fmt.Errorf("%w: %q: bracketed host is not an IPv6 address", ErrBadTarget, s)
		}
		port, err := portOrDefault(s, portPart, hasPort, defaultPort)
		if err != nil {
			return Target{}, err
		}
		return Target{Host: a.String(), Port: port, Addr: a}, nil
	}
	switch strings.Count(s, ":") {
	case 0:
		hostPart = s
	case 1:
		i := strings.IndexByte(s, ':')
		hostPart, portPart, hasPort = s[:i], s[i+1:], true
	default:
		return Target{}, fmt.Errorf("%w: %q: unbracketed IPv6 address or extra colons", ErrBadTarget, s)
	}
	if strings.ContainsAny(hostPart, "[]") {
		return Target{}, fmt.Errorf("%w: %q: stray bracket", ErrBadTarget, s)
	}
	host, addr, err := ParseHost(hostPart)
	if err != nil {
		return Target{}, err
	}
	port, err := portOrDefault(s, portPart, hasPort, defaultPort)
	if err != nil {
		return Target{}, err
	}
	return Target{Host: host, Port: port, Addr: addr}, nil
}

func portOrDefault(s, portPart string, hasPort bool, defaultPort uint16) (uint16, error) {
	if !hasPort {
		if defaultPort == 0 {
			return 0, fmt.Errorf("%w: %q: missing port", ErrBadTarget, s)
		}
		return defaultPort, nil
	}
	p, err := ParsePort(portPart)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %w", ErrBadTarget, s, err)
	}
	return p, nil
}

// ParsePort parses a decimal port 1-65535 with no sign and no leading zero.
func ParsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	if s[0] == '0' {
		return 0, fmt.Errorf("bad port %q: zero or leading zero", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad port %q", s)
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, fmt.Errorf("bad port %q: above 65535", s)
	}
	return uint16(n), nil
}

// checkAuthorityChars refuses every byte that has no business in an
// authority, naming the first one found.
func checkAuthorityChars(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			return fmt.Errorf("%w: %q: non-ASCII byte (use the punycode form)", ErrBadTarget, s)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w: %q: control character", ErrBadTarget, s)
		case c == ' ':
			return fmt.Errorf("%w: %q: space", ErrBadTarget, s)
		case c == '@':
			return fmt.Errorf("%w: %q: userinfo", ErrBadTarget, s)
		case c == '#':
			return fmt.Errorf("%w: %q: fragment", ErrBadTarget, s)
		case c == '\\':
			return fmt.Errorf("%w: %q: backslash", ErrBadTarget, s)
		case c == '%':
			return fmt.Errorf("%w: %q: percent sign or zone id", ErrBadTarget, s)
		case c == '*':
			return fmt.Errorf("%w: %q: wildcard", ErrBadTarget, s)
		case c == '/' || c == '?':
			return fmt.Errorf("%w: %q: path or query in authority", ErrBadTarget, s)
		}
	}
	return nil
}

// ParseHost parses a bare host (no port, no brackets): a DNS name, returned
// canonical (lower case, one trailing root dot removed), or a dotted-decimal
// IPv4 literal, returned with addr valid. Numeric forms that are not
// canonical dotted decimal ("127.1", "0x7f.1", "2130706433", "0177.0.0.1")
// are refused, never treated as names.
func ParseHost(h string) (host string, addr netip.Addr, err error) {
	if h == "" {
		return "", netip.Addr{}, fmt.Errorf("%w: empty host", ErrBadTarget)
	}
	if err := checkAuthorityChars(h); err != nil {
		return "", netip.Addr{}, err
	}
	name := strings.TrimSuffix(h, ".")
	if name == "" {
		return "", netip.Addr{}, fmt.Errorf("%w: %q: empty name", ErrBadTarget, h)
	}
	if len(name) > MaxNameLen {
		return "", netip.Addr{}, fmt.Errorf("%w: name longer than %d octets", ErrBadTarget, MaxNameLen)
	}
	name = strings.ToLower(name)
	labels := strings.Split(name, ".")
	if numericLabel(labels[len(labels)-1]) {
		a, perr := netip.ParseAddr(name)
		if perr != nil || !a.Is4() || name != h {
			return "", netip.Addr{}, fmt.Errorf("%w: %q: numeric host is not a canonical dotted-decimal IPv4 address", ErrBadTarget, h)
		}
		return a.String(), a, nil
	}
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", netip.Addr{}, fmt.Errorf("%w: %q: %w", ErrBadTarget, h, err)
		}
	}
	return name, netip.Addr{}, nil
}

// numericLabel reports whether a label reads as a number to some IPv4
// parser: all decimal digits, or 0x followed by hex digits (or nothing).
func numericLabel(l string) bool {
	if l == "" {
		return false
	}
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for i := 2; i < len(l); i++ {
			if !isHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// checkLabel accepts 1-63 octets of [a-z0-9_-] that neither start nor end
// with a hyphen. The label must already be lower case.
func checkLabel(l string) error {
	if l == "" {
		return fmt.Errorf("empty label")
	}
	if len(l) > MaxLabelLen {
		return fmt.Errorf("label longer than %d octets", MaxLabelLen)
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' {
			continue
		}
		return fmt.Errorf("label %q has character %q", l, c)
	}
	return nil
}

// URL is a strictly parsed absolute http or https URL.
type URL struct {
	// Scheme is "http" or "https", lower case.
	Scheme string
	// Target is the canonical authority; a missing port is the scheme's default.
	Target Target
	// RequestURI is the path and query ("/" when the URL has neither),
	// exactly as given otherwise.
	RequestURI string
}

// DefaultPort returns the default port of the URL's scheme.
func (u URL) DefaultPort() uint16 {
	if u.Scheme == "https" {
		return PortHTTPS
	}
	return PortHTTP
}

// String renders the canonical URL.
func (u URL) String() string {
	return u.Scheme + "://" + u.Target.Authority(u.DefaultPort()) + u.RequestURI
}

// ParseURL parses an absolute http or https URL strictly. Schemes other
// than http and https wrap ErrBadScheme; everything ParseAuthority refuses,
// fragments, backslashes, whitespace, control and non-ASCII characters
// anywhere in the URL wrap ErrBadTarget.
func ParseURL(raw string) (URL, error) {
	if len(raw) > MaxURLLen {
		return URL{}, fmt.Errorf("%w: url longer than %d octets", ErrBadTarget, MaxURLLen)
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= 0x80:
			return URL{}, fmt.Errorf("%w: url has a non-ASCII byte", ErrBadTarget)
		case c <= 0x20 || c == 0x7f:
			return URL{}, fmt.Errorf("%w: url has a control character or space", ErrBadTarget)
		case c == '\\':
			return URL{}, fmt.Errorf("%w: url has a backslash", ErrBadTarget)
		case c == '#':
			return URL{}, fmt.Errorf("%w: url has a fragment", ErrBadTarget)
		}
	}
	i := strings.Index(raw, "://")
	if i <= 0 {
		return URL{}, fmt.Errorf("%w: %q: not an absolute url", ErrBadTarget, raw)
	}
	scheme := strings.ToLower(raw[:i])
	for j := 0; j < len(scheme); j++ {
		c := scheme[j]
		if !(c >= 'a' && c <= 'z') && !(j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return URL{}, fmt.Errorf("%w: %q: bad scheme", ErrBadTarget, raw)
		}
	}
	var def uint16
	switch scheme {
	case "http":
		def = PortHTTP
	case "https":
		def = PortHTTPS
	default:
		return URL{}, fmt.Errorf("%w: %q", ErrBadScheme, scheme)
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth, path := rest[:end], rest[end:]
	t, err := ParseAuthority(auth, def)
	if err != nil {
		return URL{}, err
	}
	switch {
	case path == "":
		path = "/"
	case path[0] == '?':
		path = "/" + path
	}
	return URL{Scheme: scheme, Target: t, RequestURI: path}, nil
}
