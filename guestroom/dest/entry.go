package dest

import (
	"fmt"
	"strings"
)

// Entry is one allowlist entry: an exact host ("api.example.com") or a
// leading-dot suffix (".example.com" matches example.com and every
// subdomain), optionally pinned to a port. Without a port, an entry admits
// 443 and 80 only.
type Entry struct {
	// Host is the canonical name, without the leading dot.
	Host string
	// Suffix is true for a leading-dot entry.
	Suffix bool
	// Port is the only port the entry admits; 0 means 443 and 80.
	Port uint16
}

// String renders the entry as it is written in an allowlist.
func (e Entry) String() string {
	s := e.Host
	if e.Suffix {
		s = "." + s
	}
	if e.Port != 0 {
		s += fmt.Sprintf(":%d", e.Port)
	}
	return s
}

// ParseEntry parses "host", ".domain", "host:port" or ".domain:port". The
// name is parsed as strictly as a target; IP literals and wildcards are
// refused (an IP literal never matches anything).
func ParseEntry(s string) (Entry, error) {
	raw := s
	suffix := strings.HasPrefix(s, ".")
	if suffix {
		s = s[1:]
	}
	if s == "" || strings.HasPrefix(s, "[") {
		return Entry{}, fmt.Errorf("%w: entry %q: want host, .domain, host:port or .domain:port", ErrBadEntry, raw)
	}
	t, err := ParseAuthority(s, 1) // 1: "no port given" sentinel, never a real default
	if err != nil {
		return Entry{}, fmt.Errorf("%w: entry %q: %w", ErrBadEntry, raw, err)
	}
	if t.IsIP() {
		return Entry{}, fmt.Errorf("%w: entry %q: ip literals are never allowlisted", ErrBadEntry, raw)
	}
	e := Entry{Host: t.Host, Suffix: suffix}
	if strings.Contains(s, ":") {
		e.Port = t.Port
	}
	return e, nil
}

// MatchesHost reports whether the entry names host (canonical, not an IP
// literal), regardless of port.
func (e Entry) MatchesHost(host string) bool {
	if host == e.Host {
		return true
	}
	return e.Suffix && strings.HasSuffix(host, "."+e.Host)
}

// AdmitsPort reports whether the entry admits port.
func (e Entry) AdmitsPort(port uint16) bool {
	if e.Port == 0 {
		return port == PortHTTPS || port == PortHTTP
	}
	return port == e.Port
}

// Allowlist is a set of entries; a target is allowed when any entry names
// its host and admits its port.
type Allowlist []Entry

// ParseAllowlist parses a comma-separated list of entries; blanks around
// commas are ignored, empty items are refused.
func ParseAllowlist(s string) (Allowlist, error) {
	var l Allowlist
	for _, item := range strings.Split(s, ",") {
		e, err := ParseEntry(strings.TrimSpace(item))
		if err != nil {
			return nil, err
		}
		l = append(l, e)
	}
	return l, nil
}

// Strings renders every entry.
func (l Allowlist) Strings() []string {
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.String()
	}
	return out
}

// Match returns the entry that admits t. It refuses IP literals
// (ErrIPLiteral), hosts no entry names (ErrNotAllowlisted) and ports no
// naming entry admits (ErrPortNotAllowed).
func (l Allowlist) Match(t Target) (Entry, error) {
	if t.IsIP() {
		return Entry{}, fmt.Errorf("%w: %s", ErrIPLiteral, t)
	}
	named := false
	for _, e := range l {
		if !e.MatchesHost(t.Host) {
			continue
		}
		if e.AdmitsPort(t.Port) {
			return e, nil
		}
		named = true
	}
	if named {
		return Entry{}, fmt.Errorf("%w: %s", ErrPortNotAllowed, t)
	}
	return Entry{}, fmt.Errorf("%w: %s", ErrNotAllowlisted, t.Host)
}
