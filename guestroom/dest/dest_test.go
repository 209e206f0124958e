package dest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testPolicy is the allowlist and static resolver the decision table runs
// against. Nothing here reaches real DNS: unknown names fail.
func testPolicy(t *testing.T) (Allowlist, *Dialer) {
	t.Helper()
	allow, err := ParseAllowlist(".anthropic.com, api.example.com, example.org:8443, " +
		"priv.example.net, mixed.example.net, meta.example.net, v6.example.net, mapped.example.net, " +
		"nat64.example.net, sixtofour.example.net, teredo.example.net, cgnat.example.net, " +
		"lo.example.net, ula.example.net, bench.example.net, nx.example.net, empty.example.net, " +
		"zero.example.net, multi.example.net, doc.example.net, allowedpriv.example.net, under_score.example.net, isatap.example.net")
	if err != nil {
		t.Fatal(err)
	}
	st := &Static{}
	for _, r := range []string{
		"api.anthropic.com=203.0.114.10", "anthropic.com=203.0.114.11", "a.b.anthropic.com=203.0.114.12",
		"api.example.com=2606:4700::1111", "example.org=8.8.8.8",
		"priv.example.net=10.1.2.3",
		"mixed.example.net=8.8.4.4", "mixed.example.net=192.168.1.1",
		"meta.example.net=169.254.169.254",
		"v6.example.net=::1",
		"mapped.example.net=::ffff:127.0.0.1",
		"nat64.example.net=64:ff9b::a9fe:a9fe",
		"sixtofour.example.net=2002:0a00:0001::1",
		"teredo.example.net=2001:0:4136:e378:8000:63bf:80ff:fffe", // client 127.0.0.1
		"cgnat.example.net=100.64.0.1",
		"lo.example.net=127.0.0.1",
		"ula.example.net=fd12:3456::1",
		"bench.example.net=198.18.0.1",
		"zero.example.net=0.0.0.0",
		"multi.example.net=8.8.8.8", "multi.example.net=2606:4700::1",
		"doc.example.net=192.0.2.1",
		"allowedpriv.example.net=172.20.0.5",
		"under_score.example.net=9.9.9.9",
		"isatap.example.net=2600::5efe:10.0.0.1",
	} {
		h, a, err := ParseResolve(r)
		if err != nil {
			t.Fatal(err)
		}
		st.Add(h, a)
	}
	st.Hosts["empty.example.net"] = nil
	d := &Dialer{Resolver: st, Addrs: AddrPolicy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}}
	return allow, d
}

// decide runs the whole check (parse, match, resolve, classify) without dialing.
func decide(ctx context.Context, allow Allowlist, d *Dialer, target string) (Target, error) {
	t, err := ParseHostPort(target)
	if err != nil {
		return Target{}, err
	}
	if _, err := allow.Match(t); err != nil {
		return t, err
	}
	_, err = d.Resolve(ctx, t)
	return t, err
}

func TestDecisionTable(t *testing.T) {
	allow, d := testPolicy(t)
	long63 := strings.Repeat("a", 63)
	cases := []struct {
		name, target, reason, canon string
	}{
		// Allowed.
		{"exact", "api.example.com:443", "", "api.example.com:443"},
		{"exact port 80", "api.example.com:80", "", "api.example.com:80"},
		{"suffix apex", "anthropic.com:443", "", "anthropic.com:443"},
		{"suffix sub", "api.anthropic.com:443", "", "api.anthropic.com:443"},
		{"suffix deep", "a.b.anthropic.com:443", "", "a.b.anthropic.com:443"},
		{"upper case", "API.Anthropic.COM:443", "", "api.anthropic.com:443"},
		{"trailing root dot", "api.anthropic.com.:443", "", "api.anthropic.com:443"},
		{"named port", "example.org:8443", "", "example.org:8443"},
		{"v4 and v6 public", "multi.example.net:443", "", "multi.example.net:443"},
		{"private covered by allow-private", "allowedpriv.example.net:443", "", "allowedpriv.example.net:443"},
		{"underscore label", "under_score.example.net:443", "", "under_score.example.net:443"},
		// Suffix and prefix tricks.
		{"prefix trick", "evilanthropic.com:443", ReasonNotAllowlisted, ""},
		{"suffix trick", "anthropic.com.evil.com:443", ReasonNotAllowlisted, ""},
		{"exact is not suffix", "x.api.example.com:443", ReasonNotAllowlisted, ""},
		{"parent of exact", "example.com:443", ReasonNotAllowlisted, ""},
		{"hyphen lookalike", "anthropic-com.evil:443", ReasonNotAllowlisted, ""},
		{"other tld", "anthropic.co:443", ReasonNotAllowlisted, ""},
		{"unknown", "evil.com:443", ReasonNotAllowlisted, ""},
		{"punycode lookalike", "xn--nthropic-9za.com:443", ReasonNotAllowlisted, ""},
		// Ports.
		{"port 22", "api.example.com:22", ReasonPortNotAllowed, ""},
		{"port 8443 on default entry", "api.example.com:8443", ReasonPortNotAllowed, ""},
		{"port 443 on named-port entry", "example.org:443", ReasonPortNotAllowed, ""},
		{"port 0", "api.example.com:0", ReasonBadTarget, ""},
		{"port 65536", "api.example.com:65536", ReasonBadTarget, ""},
		{"port leading zero", "api.example.com:0443", ReasonBadTarget, ""},
		{"port sign", "api.example.com:+443", ReasonBadTarget, ""},
		{"port empty", "api.example.com:", ReasonBadTarget, ""},
		{"port missing", "api.example.com", ReasonBadTarget, ""},
		{"port huge", "api.example.com:4294967739", ReasonBadTarget, ""},
		{"port hex", "api.example.com:0x1bb", ReasonBadTarget, ""},
		// Userinfo, fragments, paths, junk.
		{"userinfo", "user@api.example.com:443", ReasonBadTarget, ""},
		{"userinfo trick", "api.example.com:443@evil.com:443", ReasonBadTarget, ""},
		{"userinfo password", "a:b@evil.com:443", ReasonBadTarget, ""},
		{"fragment", "api.example.com#x:443", ReasonBadTarget, ""},
		{"backslash", "evil.com\\api.example.com:443", ReasonBadTarget, ""},
		{"path", "api.example.com/x:443", ReasonBadTarget, ""},
		{"query", "api.example.com?x:443", ReasonBadTarget, ""},
		{"percent", "api%2eexample.com:443", ReasonBadTarget, ""},
		{"space", "api.example.com :443", ReasonBadTarget, ""},
		{"leading space", " api.example.com:443", ReasonBadTarget, ""},
		{"tab", "api.example.com\t:443", ReasonBadTarget, ""},
		{"nul", "api.example.com\x00.evil.com:443", ReasonBadTarget, ""},
		{"newline", "api.example.com\r\n:443", ReasonBadTarget, ""},
		{"del", "api.example.com\x7f:443", ReasonBadTarget, ""},
		{"wildcard", "*.anthropic.com:443", ReasonBadTarget, ""},
		{"empty", "", ReasonBadTarget, ""},
		{"only port", ":443", ReasonBadTarget, ""},
		{"scheme", "https://api.example.com:443", ReasonBadTarget, ""},
		// Labels and lengths.
		{"empty label", "api..example.com:443", ReasonBadTarget, ""},
		{"leading dot", ".anthropic.com:443", ReasonBadTarget, ""},
		{"two trailing dots", "api.anthropic.com..:443", ReasonBadTarget, ""},
		{"only dot", ".:443", ReasonBadTarget, ""},
		{"label 63 parses (then does not resolve)", long63 + ".anthropic.com:443", ReasonResolve, long63 + ".anthropic.com:443"},
		{"label 64", long63 + "a.anthropic.com:443", ReasonBadTarget, ""},
		{"name 254", strings.Repeat("a.", 120) + "aaaaa.anthropic.com:443", ReasonBadTarget, ""},
		{"leading hyphen", "-x.anthropic.com:443", ReasonBadTarget, ""},
		{"trailing hyphen", "x-.anthropic.com:443", ReasonBadTarget, ""},
		// Non-ASCII and invisible characters.
		{"idn cyrillic a", "\u0430nthropic.com:443", ReasonBadTarget, ""},
		{"zero width space", "api.anthropic\u200b.com:443", ReasonBadTarget, ""},
		{"zero width joiner", "api\u200d.anthropic.com:443", ReasonBadTarget, ""},
		{"fullwidth dot", "api\uff0eanthropic.com:443", ReasonBadTarget, ""},
		{"soft hyphen", "an\u00adthropic.com:443", ReasonBadTarget, ""},
		{"bidi override", "\u202eapi.anthropic.com:443", ReasonBadTarget, ""},
		{"latin1 byte", "api.anthropic.com\xff:443", ReasonBadTarget, ""},
		// IPv4 literals and numeric forms.
		{"ipv4 literal", "8.8.8.8:443", ReasonIPLiteral, ""},
		{"ipv4 loopback literal", "127.0.0.1:443", ReasonIPLiteral, ""},
		{"metadata literal", "169.254.169.254:80", ReasonIPLiteral, ""},
		{"decimal ipv4", "2130706433:443", ReasonBadTarget, ""},
		{"octal ipv4", "0177.0.0.1:443", ReasonBadTarget, ""},
		{"hex ipv4", "0x7f000001:443", ReasonBadTarget, ""},
		{"hex short", "0x7f.1:443", ReasonBadTarget, ""},
		{"short form", "127.1:443", ReasonBadTarget, ""},
		{"three parts", "127.0.1:443", ReasonBadTarget, ""},
		{"five parts", "1.2.3.4.5:443", ReasonBadTarget, ""},
		{"octet overflow", "256.0.0.1:443", ReasonBadTarget, ""},
		{"leading zero octet", "127.000.000.001:443", ReasonBadTarget, ""},
		{"ipv4 trailing dot", "127.0.0.1.:443", ReasonBadTarget, ""},
		{"hex upper", "0X7F.0.0.1:443", ReasonBadTarget, ""},
		{"numeric tld", "api.example.123:443", ReasonBadTarget, ""},
		{"bare 0x", "evil.0x:443", ReasonBadTarget, ""},
		// IPv6 literals.
		{"ipv6 bracketed", "[2606:4700::1111]:443", ReasonIPLiteral, ""},
		{"ipv6 loopback", "[::1]:443", ReasonIPLiteral, ""},
		{"ipv6 mapped literal", "[::ffff:127.0.0.1]:443", ReasonIPLiteral, ""},
		{"ipv6 unbracketed", "::1:443", ReasonBadTarget, ""},
		{"ipv6 unbracketed full", "2606:4700::1111:443", ReasonBadTarget, ""},
		{"ipv6 zone", "[fe80::1%25eth0]:443", ReasonBadTarget, ""},
		{"ipv6 raw zone", "[fe80::1%eth0]:443", ReasonBadTarget, ""},
		{"bracketed ipv4", "[127.0.0.1]:443", ReasonBadTarget, ""},
		{"bracketed name", "[api.example.com]:443", ReasonBadTarget, ""},
		{"unterminated bracket", "[::1:443", ReasonBadTarget, ""},
		{"junk after bracket", "[::1]x:443", ReasonBadTarget, ""},
		{"bracket in name", "api.example.com]:443", ReasonBadTarget, ""},
		// Names resolving where they must not.
		{"resolves private", "priv.example.net:443", ReasonPrivateAddress, ""},
		{"mixed answer", "mixed.example.net:443", ReasonPrivateAddress, ""},
		{"resolves metadata", "meta.example.net:80", ReasonPrivateAddress, ""},
		{"resolves ::1", "v6.example.net:443", ReasonPrivateAddress, ""},
		{"resolves mapped loopback", "mapped.example.net:443", ReasonPrivateAddress, ""},
		{"resolves nat64 metadata", "nat64.example.net:443", ReasonPrivateAddress, ""},
		{"resolves 6to4 private", "sixtofour.example.net:443", ReasonPrivateAddress, ""},
		{"resolves teredo loopback", "teredo.example.net:443", ReasonPrivateAddress, ""},
		{"resolves cgnat", "cgnat.example.net:443", ReasonPrivateAddress, ""},
		{"resolves loopback", "lo.example.net:443", ReasonPrivateAddress, ""},
		{"resolves ula", "ula.example.net:443", ReasonPrivateAddress, ""},
		{"resolves benchmarking", "bench.example.net:443", ReasonPrivateAddress, ""},
		{"resolves unspecified", "zero.example.net:443", ReasonPrivateAddress, ""},
		{"resolves documentation", "doc.example.net:443", ReasonPrivateAddress, ""},
		{"resolves isatap private", "isatap.example.net:443", ReasonPrivateAddress, ""},
		{"does not resolve", "nx.example.net:443", ReasonResolve, ""},
		{"resolves to nothing", "empty.example.net:443", ReasonNoAddress, ""},
	}
	if len(cases) < 80 {
		t.Fatalf("table has %d cases, want at least 80", len(cases))
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decide(ctx, allow, d, tc.target)
			if r := Reason(err); r != tc.reason {
				t.Fatalf("decide(%q) reason = %q (%v), want %q", tc.target, r, err, tc.reason)
			}
			if tc.canon != "" && got.String() != tc.canon {
				t.Fatalf("canonical = %q, want %q", got.String(), tc.canon)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		addr string
		want Class
	}{
		{"8.8.8.8", ClassPublic},
		{"1.1.1.1", ClassPublic},
		{"0.0.0.0", ClassUnspecified},
		{"0.1.2.3", ClassReserved},
		{"10.0.0.1", ClassPrivate},
		{"172.16.0.1", ClassPrivate},
		{"172.31.255.255", ClassPrivate},
		{"172.32.0.1", ClassPublic},
		{"192.168.0.1", ClassPrivate},
		{"100.64.0.1", ClassCGNAT},
		{"100.127.255.255", ClassCGNAT},
		{"100.128.0.1", ClassPublic},
		{"100.100.100.200", ClassMetadata},
		{"127.0.0.1", ClassLoopback},
		{"127.255.255.254", ClassLoopback},
		{"169.254.1.1", ClassLinkLocal},
		{"169.254.169.254", ClassMetadata},
		{"169.254.170.2", ClassMetadata},
		{"168.63.129.16", ClassMetadata},
		{"192.0.0.170", ClassReserved},
		{"192.0.2.5", ClassDocumentation},
		{"198.51.100.5", ClassDocumentation},
		{"203.0.113.5", ClassDocumentation},
		{"198.18.0.1", ClassBenchmarking},
		{"198.19.255.255", ClassBenchmarking},
		{"198.20.0.1", ClassPublic},
		{"224.0.0.1", ClassMulticast},
		{"239.255.255.250", ClassMulticast},
		{"240.0.0.1", ClassReserved},
		{"255.255.255.255", ClassBroadcast},
		{"::", ClassUnspecified},
		{"::1", ClassLoopback},
		{"2606:4700::1111", ClassPublic},
		{"fc00::1", ClassULA},
		{"fd00:ec2::254", ClassMetadata},
		{"fe80::1", ClassLinkLocal},
		{"fec0::1", ClassPrivate},
		{"ff02::1", ClassMulticast},
		{"2001:db8::1", ClassDocumentation},
		{"100::1", ClassReserved},
		{"::ffff:127.0.0.1", ClassLoopback},
		{"::ffff:169.254.169.254", ClassMetadata},
		{"::ffff:8.8.8.8", ClassPublic},
		{"::ffff:0:10.0.0.1", ClassPrivate},
		{"::127.0.0.1", ClassLoopback},
		{"::8.8.8.8", ClassReserved},
		{"64:ff9b::127.0.0.1", ClassLoopback},
		{"64:ff9b::8.8.8.8", ClassPublic},
		{"64:ff9b:1::8.8.8.8", ClassPrivate},
		{"2002:7f00:1::", ClassLoopback},
		{"2002:a9fe:a9fe::1", ClassMetadata},
		{"2002:808:808::1", ClassPublic},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", ClassLoopback},
		{"2001:0:7f00:1:8000:63bf:f7f7:f7f7", ClassLoopback},
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", ClassPublic},
		{"2001:2::1", ClassBenchmarking},
		{"4000::1", ClassReserved},
		// ISATAP: the interface id 0000:5efe:V4 or 0200:5efe:V4 in any prefix.
		{"2600::5efe:10.0.0.1", ClassPrivate},
		{"2600::200:5efe:127.0.0.1", ClassLoopback},
		{"2600::5efe:169.254.169.254", ClassMetadata},
		{"2002:808:808::5efe:192.168.0.1", ClassPrivate},
		{"2600::5efe:8.8.8.8", ClassPublic},
		{"fe80::5efe:8.8.8.8", ClassLinkLocal},
		{"2001:db8::5efe:8.8.8.8", ClassDocumentation},
		{"::5efe:8.8.8.8", ClassReserved},
	}
	for _, tc := range cases {
		a := netip.MustParseAddr(tc.addr)
		if got, why := Classify(a); got != tc.want {
			t.Errorf("Classify(%s) = %s (%s), want %s", tc.addr, got, why, tc.want)
		}
	}
}

func TestAllowPrivate(t *testing.T) {
	p := AddrPolicy{AllowPrivate: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("ff00::/8"),
	}}
	for _, a := range []string{"127.0.0.1", "::ffff:127.0.0.1", "10.0.0.1"} {
		if err := p.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", a, err)
		}
	}
	for _, a := range []string{"0.0.0.0", "255.255.255.255", "224.0.0.1", "ff02::1", "::"} {
		if err := p.Check(netip.MustParseAddr(a)); !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("Check(%s) = %v, want ErrPrivateAddress (never allowed)", a, err)
		}
	}
}

func TestParseEntry(t *testing.T) {
	good := map[string]string{
		"api.anthropic.com":  "api.anthropic.com",
		".Anthropic.COM":     ".anthropic.com",
		"example.org:8443":   "example.org:8443",
		".example.org.:8080": ".example.org:8080",
		"host.":              "host",
	}
	for in, want := range good {
		e, err := ParseEntry(in)
		if err != nil || e.String() != want {
			t.Errorf("ParseEntry(%q) = %q, %v; want %q", in, e, err, want)
		}
	}
	for _, in := range []string{"", ".", "..x.com", "*.x.com", "1.2.3.4", "[::1]", "x.com:0", "a b", "x.com/", "user@x.com", "x..com", "ÿ.com", "127.1"} {
		if _, err := ParseEntry(in); !errors.Is(err, ErrBadEntry) {
			t.Errorf("ParseEntry(%q) = %v, want ErrBadEntry", in, err)
		}
	}
	if _, err := ParseAllowlist("a.com,,b.com"); err == nil {
		t.Error("empty item accepted")
	}
}

func TestParseURL(t *testing.T) {
	good := []struct{ in, want, host string }{
		{"http://Example.COM/a?b=c", "http://example.com/a?b=c", "example.com:80"},
		{"http://example.com", "http://example.com/", "example.com:80"},
		{"http://example.com?q", "http://example.com/?q", "example.com:80"},
		{"HTTPS://example.com:443/", "https://example.com/", "example.com:443"},
		{"http://example.com:8080/x", "http://example.com:8080/x", "example.com:8080"},
		{"http://[2001:db8::1]/", "http://[2001:db8::1]/", "[2001:db8::1]:80"},
		{"http://example.com./", "http://example.com/", "example.com:80"},
	}
	for _, tc := range good {
		u, err := ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if u.String() != tc.want || u.Target.String() != tc.host {
			t.Errorf("ParseURL(%q) = %q host %q; want %q host %q", tc.in, u, u.Target, tc.want, tc.host)
		}
	}
	bad := map[string]string{
		"ftp://example.com/":                       ReasonBadScheme,
		"file:///etc/passwd":                       ReasonBadScheme,
		"gopher://example.com/":                    ReasonBadScheme,
		"http://user@example.com/":                 ReasonBadTarget,
		"http://example.com/#frag":                 ReasonBadTarget,
		"http://example.com\\@evil/":               ReasonBadTarget,
		"http:/example.com/":                       ReasonBadTarget,
		"//example.com/":                           ReasonBadTarget,
		"/path":                                    ReasonBadTarget,
		"http:///path":                             ReasonBadTarget,
		"http://exa mple.com/":                     ReasonBadTarget,
		"http://example.com/\u00e9":                ReasonBadTarget,
		"http://0x7f.1/":                           ReasonBadTarget,
		"http://example.com:99999/":                ReasonBadTarget,
		"1http://example.com/":                     ReasonBadTarget,
		"http://[fe80::1%25eth0]/":                 ReasonBadTarget,
		"http://example.com:/":                     ReasonBadTarget,
		"http://" + strings.Repeat("a", MaxURLLen): ReasonBadTarget,
	}
	for in, want := range bad {
		if _, err := ParseURL(in); Reason(err) != want {
			t.Errorf("ParseURL(%q) = %v, want reason %q", in, err, want)
		}
	}
}

func TestParseResolve(t *testing.T) {
	h, a, err := ParseResolve("API.Example.com.=127.0.0.1")
	if err != nil || h != "api.example.com" || a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("ParseResolve = %q %v %v", h, a, err)
	}
	if _, a, err := ParseResolve("x.com=[::1]"); err != nil || a != netip.IPv6Loopback() {
		t.Fatalf("bracketed v6: %v %v", a, err)
	}
	for _, in := range []string{"x.com", "x.com=", "=1.2.3.4", "1.2.3.4=1.2.3.4", "x.com=fe80::1%eth0", "x.com=host"} {
		if _, _, err := ParseResolve(in); !errors.Is(err, ErrBadEntry) {
			t.Errorf("ParseResolve(%q) = %v, want ErrBadEntry", in, err)
		}
	}
	for in, want := range map[string]string{"127.0.0.0/8": "127.0.0.0/8", "10.1.2.3/8": "10.0.0.0/8", "::1": "::1/128", "1.2.3.4": "1.2.3.4/32"} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v %v, want %s", in, p, err, want)
		}
	}
	if _, err := ParsePrefix("nope"); !errors.Is(err, ErrBadEntry) {
		t.Errorf("ParsePrefix(nope) = %v", err)
	}
}

// TestDialChecked proves the dialer dials exactly a checked address, never
// looks a name up twice, and refuses a mixed answer before any dial.
func TestDialChecked(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	lookups := &countingResolver{r: &Static{Hosts: map[string][]netip.Addr{
		"up.test":    {netip.MustParseAddr("127.0.0.1")},
		"mixed.test": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.1")},
	}}}
	var dialed []string
	base := &net.Dialer{}
	d := &Dialer{
		Resolver: lookups,
		Addrs:    AddrPolicy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Timeout:  2 * time.Second,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			dialed = append(dialed, address)
			return base.DialContext(ctx, network, address)
		},
	}
	ctx := context.Background()
	c, ap, err := d.DialTarget(ctx, "tcp", Target{Host: "up.test", Port: port})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if ap.Addr() != netip.MustParseAddr("127.0.0.1") || len(dialed) != 1 || dialed[0] != ap.String() || lookups.n.Load() != 1 {
		t.Fatalf("dialed %v (%v), lookups %d", dialed, ap, lookups.n.Load())
	}
	if _, _, err := d.DialTarget(ctx, "tcp", Target{Host: "mixed.test", Port: port}); Reason(err) != ReasonPrivateAddress {
		t.Fatalf("mixed answer: %v", err)
	}
	if len(dialed) != 1 {
		t.Fatalf("mixed answer was dialed: %v", dialed)
	}
	// Default dial path with the socket-level re-check.
	d.Dial = nil
	c, err = d.DialContext(ctx, "tcp", "up.test:"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// A refused connection is unreachable.
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := uint16(l2.Addr().(*net.TCPAddr).Port)
	l2.Close()
	if _, _, err := d.DialTarget(ctx, "tcp", Target{Host: "up.test", Port: closedPort}); Reason(err) != ReasonUnreachable {
		t.Fatalf("closed port: %v", err)
	}
	// The control hook refuses what the policy refuses even if asked directly.
	strict := &Dialer{}
	if err := strict.control("tcp", "127.0.0.1:80", nil); Reason(err) != ReasonPrivateAddress {
		t.Fatalf("control: %v", err)
	}
}

type countingResolver struct {
	r Resolver
	n atomic.Int32
}

func (c *countingResolver) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	c.n.Add(1)
	return c.r.LookupNetIP(ctx, host)
}

func itoa(p uint16) string { return Target{Port: p}.String()[1:] }

func TestReason(t *testing.T) {
	if Reason(nil) != "" || Reason(errors.New("x")) != ReasonInternal {
		t.Fatal("Reason of nil or foreign error")
	}
	if _, err := ParseHostPort("x"); !errors.Is(err, ErrBadTarget) || Reason(err) != ReasonBadTarget {
		t.Fatalf("wrap: %v", err)
	}
}
