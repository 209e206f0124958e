package dest

import (
	"fmt"
	"net/netip"
	"strings"
)

// Class is what kind of address an address is. Only ClassPublic is
// reachable without an allow-private prefix.
type Class string

// Address classes.
const (
	ClassPublic        Class = "public"
	ClassInvalid       Class = "invalid"
	ClassUnspecified   Class = "unspecified"
	ClassLoopback      Class = "loopback"
	ClassPrivate       Class = "private"
	ClassCGNAT         Class = "cgnat"
	ClassLinkLocal     Class = "link_local"
	ClassMetadata      Class = "metadata"
	ClassMulticast     Class = "multicast"
	ClassBroadcast     Class = "broadcast"
	ClassBenchmarking  Class = "benchmarking"
	ClassDocumentation Class = "documentation"
	ClassULA           Class = "ula"
	ClassReserved      Class = "reserved"
)

// Never reports classes that allow-private cannot open: dialing them means
// "this host" or "everyone", never one chosen peer.
func (c Class) Never() bool {
	return c == ClassInvalid || c == ClassUnspecified || c == ClassMulticast || c == ClassBroadcast
}

type classPrefix struct {
	p netip.Prefix
	c Class
}

func mp(s string, c Class) classPrefix { return classPrefix{netip.MustParsePrefix(s), c} }

// Order matters: the first match wins, so narrower prefixes come first.
var v4Classes = []classPrefix{
	mp("0.0.0.0/32", ClassUnspecified),
	mp("0.0.0.0/8", ClassReserved),
	mp("10.0.0.0/8", ClassPrivate),
	mp("100.100.100.200/32", ClassMetadata), // Alibaba Cloud
	mp("100.64.0.0/10", ClassCGNAT),
	mp("127.0.0.0/8", ClassLoopback),
	mp("169.254.169.254/32", ClassMetadata), // AWS, GCP, Azure, OpenStack, ...
	mp("169.254.170.2/32", ClassMetadata),   // AWS ECS task metadata
	mp("169.254.0.0/16", ClassLinkLocal),
	mp("168.63.129.16/32", ClassMetadata), // Azure wire server
	mp("172.16.0.0/12", ClassPrivate),
	mp("192.0.0.0/24", ClassReserved), // IETF protocol assignments
	mp("192.0.2.0/24", ClassDocumentation),
	mp("192.88.99.0/24", ClassReserved), // deprecated 6to4 relay anycast
	mp("192.168.0.0/16", ClassPrivate),
	mp("198.18.0.0/15", ClassBenchmarking),
	mp("198.51.100.0/24", ClassDocumentation),
	mp("203.0.113.0/24", ClassDocumentation),
	mp("224.0.0.0/4", ClassMulticast),
	mp("255.255.255.255/32", ClassBroadcast),
	mp("240.0.0.0/4", ClassReserved),
}

var v6Classes = []classPrefix{
	mp("::/128", ClassUnspecified),
	mp("::1/128", ClassLoopback),
	mp("fd00:ec2::254/128", ClassMetadata), // AWS IPv6 metadata
	mp("100::/64", ClassReserved),          // discard-only
	mp("2001:2::/48", ClassBenchmarking),
	mp("2001:db8::/32", ClassDocumentation),
	mp("3fff::/20", ClassDocumentation),
	mp("2001:10::/28", ClassReserved), // ORCHID
	mp("2001:20::/28", ClassReserved), // ORCHIDv2
	mp("fc00::/7", ClassULA),
	mp("fe80::/10", ClassLinkLocal),
	mp("fec0::/10", ClassPrivate), // deprecated site-local
	mp("ff00::/8", ClassMulticast),
	mp("5f00::/16", ClassReserved), // SRv6 SIDs
	mp("2000::/3", ClassPublic),
}

// IPv6 prefixes that embed an IPv4 address.
var (
	pfxMapped     = netip.MustParsePrefix("::ffff:0:0/96")
	pfxTranslated = netip.MustParsePrefix("::ffff:0:0:0/96")
	pfxCompat     = netip.MustParsePrefix("::/96")
	pfxNAT64      = netip.MustParsePrefix("64:ff9b::/96")
	pfxNAT64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	pfx6to4       = netip.MustParsePrefix("2002::/16")
	pfxTeredo     = netip.MustParsePrefix("2001::/32")
)

// Embedded returns the IPv4 address(es) an IPv6 address embeds, by the
// well-known embeddings: IPv4-mapped and -translated, IPv4-compatible,
// NAT64 (64:ff9b::/96), 6to4 (2002::/16), Teredo (2001::/32; both the
// server and the de-obfuscated client address) and ISATAP (the interface
// identifier 0000:5efe or 0200:5efe followed by the IPv4 address, under any
// prefix). It returns nil when a is none of these.
func Embedded(a netip.Addr) []netip.Addr {
	if !a.Is6() {
		return nil
	}
	b := a.As16()
	last4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	var emb []netip.Addr
	switch {
	case pfxMapped.Contains(a), pfxTranslated.Contains(a), pfxNAT64.Contains(a):
		return []netip.Addr{last4}
	case pfxCompat.Contains(a):
		if a == netip.IPv6Unspecified() || a == netip.IPv6Loopback() {
			return nil
		}
		return []netip.Addr{last4}
	case pfx6to4.Contains(a):
		emb = []netip.Addr{netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})}
	case pfxTeredo.Contains(a):
		server := netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		emb = []netip.Addr{server, client}
	}
	if isISATAP(b) {
		emb = append(emb, last4)
	}
	return emb
}

// isISATAP reports whether b has an ISATAP interface identifier (RFC 5214):
// 00-00-5E-FE, with the universal/local and group bits either way, then
// an IPv4 address. A host with an ISATAP interface sends such an address
// to that IPv4 address, whatever the prefix.
func isISATAP(b [16]byte) bool {
	return b[8]&^0x03 == 0 && b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe
}

// Classify returns the class of a, and a short explanation when a is an
// IPv6 form that embeds an IPv4 address. An embedding takes the class of
// the least public address it embeds; the deprecated IPv4-compatible form
// and the local-use NAT64 prefix are never public, and an ISATAP address
// keeps the class of its prefix when that is not public.
func Classify(a netip.Addr) (Class, string) {
	if !a.IsValid() {
		return ClassInvalid, ""
	}
	if a.Zone() != "" {
		return ClassInvalid, "zoned address"
	}
	if a.Is4() {
		return classify4(a), ""
	}
	if a == netip.IPv6Unspecified() || a == netip.IPv6Loopback() {
		return classify6(a), ""
	}
	if pfxNAT64Local.Contains(a) {
		return ClassPrivate, "local-use NAT64 prefix"
	}
	if emb := Embedded(a); emb != nil {
		worst := ClassPublic
		if isISATAP(a.As16()) {
			// The interface identifier sits under an ordinary prefix
			// (link-local, documentation, ...), which keeps its class.
			worst = classify6(a)
		}
		var parts []string
		for _, e := range emb {
			c := classify4(e)
			parts = append(parts, e.String())
			if c != ClassPublic && worst == ClassPublic {
				worst = c
			}
		}
		why := "embeds " + strings.Join(parts, ", ")
		if worst == ClassPublic && pfxCompat.Contains(a) {
			worst = ClassReserved
		}
		return worst, why
	}
	return classify6(a), ""
}

func classify4(a netip.Addr) Class {
	for _, cp := range v4Classes {
		if cp.p.Contains(a) {
			return cp.c
		}
	}
	return ClassPublic
}

func classify6(a netip.Addr) Class {
	for _, cp := range v6Classes {
		if cp.p.Contains(a) {
			return cp.c
		}
	}
	// Outside 2000::/3 nothing is allocated for global unicast.
	return ClassReserved
}

// AddrPolicy decides which addresses may be dialed.
type AddrPolicy struct {
	// AllowPrivate lists prefixes whose non-public addresses may be dialed
	// anyway (e.g. 127.0.0.0/8 for a test upstream). Unspecified,
	// multicast and broadcast addresses are never allowed.
	AllowPrivate []netip.Prefix
}

// Check returns nil when a may be dialed, and an error wrapping
// ErrPrivateAddress naming its class otherwise.
func (p AddrPolicy) Check(a netip.Addr) error {
	c, why := Classify(a)
	if c == ClassPublic {
		return nil
	}
	if !c.Never() && p.covered(a) {
		return nil
	}
	if why != "" {
		return fmt.Errorf("%w: %s is %s (%s)", ErrPrivateAddress, a, c, why)
	}
	return fmt.Errorf("%w: %s is %s", ErrPrivateAddress, a, c)
}

// CheckAll checks every address and fails when any one is refused: a
// mixed public and private answer is refused as a whole. An empty list
// wraps ErrNoAddress.
func (p AddrPolicy) CheckAll(addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return ErrNoAddress
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return err
		}
	}
	return nil
}

func (p AddrPolicy) covered(a netip.Addr) bool {
	for _, pfx := range p.AllowPrivate {
		if pfx.Contains(a) || (a.Is4In6() && pfx.Contains(a.Unmap())) {
			return true
		}
	}
	return false
}

// ParsePrefix parses an allow-private CIDR ("127.0.0.0/8", "fd00::/8") or
// a single address (taken as a /32 or /128). The prefix is masked.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%w: prefix %q: %w", ErrBadEntry, s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%w: prefix %q: want CIDR or address", ErrBadEntry, s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
