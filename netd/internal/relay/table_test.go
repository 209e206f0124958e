package relay

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	"github.com/bounded-systems/claude-box/netd/internal/server"
)

// tableSpec is the policy every row of the table runs against. Names
// resolve only through these static answers; anything dialed is recorded
// and redirected to the counting upstream.
var tableSpec = egress.Spec{
	Allow: []string{
		".anthropic.com, api.example.com, example.org:8443, plain.test, priv.test, mixed.test, meta.test",
		"v6lo.test, mapped.test, nat64.test, sixtofour.test, teredo.test, cgnat.test, ula.test, down.test",
		"slow.test, nx.test, bench.test, zero.test, compat.test, linklocal.test, v6meta.test",
	},
	Resolve: []string{
		"api.anthropic.com=127.0.0.1", "anthropic.com=127.0.0.1", "a.b.anthropic.com=127.0.0.1",
		"api.example.com=127.0.0.1", "example.org=127.0.0.1", "plain.test=127.0.0.1",
		"priv.test=10.0.0.1", "mixed.test=127.0.0.1", "mixed.test=10.0.0.2", "meta.test=169.254.169.254",
		"v6lo.test=::1", "mapped.test=::ffff:169.254.169.254", "nat64.test=64:ff9b::a9fe:a9fe",
		"sixtofour.test=2002:a00:1::1", "teredo.test=2001:0:4136:e378:8000:63bf:f5ff:fffe",
		"cgnat.test=100.64.0.1", "ula.test=fd00::1", "down.test=127.0.0.9", "slow.test=127.0.0.10",
		"bench.test=198.18.0.1", "zero.test=0.0.0.0", "compat.test=::a00:1", "linklocal.test=fe80::1",
		"v6meta.test=fd00:ec2::254",
	},
	// Loopback stands in for "public" here: the upstream lives on it.
	AllowPrivate: []string{"127.0.0.0/8"},
}

func connect(target string) string {
	return "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
}

func get(url, host string) string {
	h := ""
	if host != "" {
		h = "Host: " + host + "\r\n"
	}
	return "GET " + url + " HTTP/1.1\r\n" + h + "User-Agent: t\r\n\r\n"
}

type row struct {
	name   string
	raw    string
	status int
	reason string
	// dialed is the exact address netd must dial, "" when nothing may be dialed.
	dialed string
	// pause splits the write in two around a pause (slow heads).
	pause time.Duration
}

func tableRows() []row {
	long63 := strings.Repeat("a", 63)
	rows := []row{
		// Allowed CONNECTs: netd dials exactly the checked address.
		{"connect exact", connect("api.example.com:443"), 200, "", "127.0.0.1:443", 0},
		{"connect exact port 80", connect("api.example.com:80"), 200, "", "127.0.0.1:80", 0},
		{"connect suffix apex", connect("anthropic.com:443"), 200, "", "127.0.0.1:443", 0},
		{"connect suffix subdomain", connect("api.anthropic.com:443"), 200, "", "127.0.0.1:443", 0},
		{"connect deep subdomain", connect("a.b.anthropic.com:443"), 200, "", "127.0.0.1:443", 0},
		{"connect upper case", connect("API.ANTHROPIC.com:443"), 200, "", "127.0.0.1:443", 0},
		{"connect trailing root dot", connect("api.anthropic.com.:443"), 200, "", "127.0.0.1:443", 0},
		{"connect named port", connect("example.org:8443"), 200, "", "127.0.0.1:8443", 0},
		{"connect http/1.0", "CONNECT api.example.com:443 HTTP/1.0\r\n\r\n", 200, "", "127.0.0.1:443", 0},
		{"absolute-form get", get("http://plain.test/x?y=1", "plain.test"), 200, "", "127.0.0.1:80", 0},
		{"absolute-form get host with port", get("http://plain.test/", "plain.test:80"), 200, "", "127.0.0.1:80", 0},
		{"absolute-form http/1.0 no host", "GET http://plain.test/ HTTP/1.0\r\n\r\n", 200, "", "127.0.0.1:80", 0},
		// Suffix and prefix tricks.
		{"prefix trick", connect("evilanthropic.com:443"), 403, dest.ReasonNotAllowlisted, "", 0},
		{"suffix trick", connect("anthropic.com.evil.com:443"), 403, dest.ReasonNotAllowlisted, "", 0},
		{"exact entry is not a suffix", connect("x.api.example.com:443"), 403, dest.ReasonNotAllowlisted, "", 0},
		{"parent of exact entry", connect("example.com:443"), 403, dest.ReasonNotAllowlisted, "", 0},
		{"unknown host", connect("evil.com:443"), 403, dest.ReasonNotAllowlisted, "", 0},
		{"punycode lookalike", connect("xn--nthropic-9za.com:443"), 403, dest.ReasonNotAllowlisted, "", 0},
		// Ports.
		{"port 22", connect("api.example.com:22"), 403, dest.ReasonPortNotAllowed, "", 0},
		{"port 8443 on default entry", connect("api.example.com:8443"), 403, dest.ReasonPortNotAllowed, "", 0},
		{"port 443 on named-port entry", connect("example.org:443"), 403, dest.ReasonPortNotAllowed, "", 0},
		{"port 0", connect("api.example.com:0"), 400, dest.ReasonBadTarget, "", 0},
		{"port 65536", connect("api.example.com:65536"), 400, dest.ReasonBadTarget, "", 0},
		{"port leading zero", connect("api.example.com:0443"), 400, dest.ReasonBadTarget, "", 0},
		{"port missing", connect("api.example.com"), 400, dest.ReasonBadTarget, "", 0},
		{"absolute-form port not allowed", get("http://plain.test:8080/", "plain.test:8080"), 403, dest.ReasonPortNotAllowed, "", 0},
		// Userinfo, fragments, junk in the authority.
		{"userinfo", connect("user@api.example.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"userinfo trick", connect("api.example.com:443@evil.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"url userinfo", get("http://plain.test@evil.com/", "evil.com"), 400, dest.ReasonBadTarget, "", 0},
		{"fragment", connect("api.example.com#x:443"), 400, dest.ReasonBadTarget, "", 0},
		{"url fragment", get("http://plain.test/#x", "plain.test"), 400, dest.ReasonBadTarget, "", 0},
		{"backslash", connect("evil.com\\api.example.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"url backslash", get("http://evil.com\\@plain.test/", "plain.test"), 400, dest.ReasonBadTarget, "", 0},
		{"percent encoding", connect("api%2eexample.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"wildcard", connect("*.anthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"path in authority", connect("api.example.com/x:443"), 400, dest.ReasonBadTarget, "", 0},
		// Labels and lengths.
		{"empty label", connect("api..example.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"leading dot", connect(".anthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"two trailing dots", connect("api.anthropic.com..:443"), 400, dest.ReasonBadTarget, "", 0},
		{"label over 63", connect(long63 + "a.anthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"name over 253", connect(strings.Repeat("a.", 120) + "aaaaa.anthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"leading hyphen", connect("-x.anthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		// IDN and invisible characters.
		{"idn cyrillic", connect("\u0430nthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"zero width space", connect("api.anthropic\u200b.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"zero width joiner", connect("api\u200d.anthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"fullwidth dot", connect("api\uff0eanthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"soft hyphen", connect("an\u00adthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		{"right-to-left override", connect("\u202eapi.anthropic.com:443"), 400, dest.ReasonBadTarget, "", 0},
		// IPv4 literals in every form.
		{"ipv4 literal", connect("8.8.8.8:443"), 403, dest.ReasonIPLiteral, "", 0},
		{"ipv4 loopback literal", connect("127.0.0.1:443"), 403, dest.ReasonIPLiteral, "", 0},
		{"metadata literal", connect("169.254.169.254:80"), 403, dest.ReasonIPLiteral, "", 0},
		{"metadata literal absolute-form", get("http://169.254.169.254/latest/meta-data/", "169.254.169.254"), 403, dest.ReasonIPLiteral, "", 0},
		{"decimal ipv4", connect("2130706433:443"), 400, dest.ReasonBadTarget, "", 0},
		{"octal ipv4", connect("0177.0.0.1:443"), 400, dest.ReasonBadTarget, "", 0},
		{"hex ipv4", connect("0x7f000001:443"), 400, dest.ReasonBadTarget, "", 0},
		{"hex short ipv4", connect("0x7f.1:443"), 400, dest.ReasonBadTarget, "", 0},
		{"short ipv4", connect("127.1:443"), 400, dest.ReasonBadTarget, "", 0},
		{"leading zero octets", connect("127.000.000.001:443"), 400, dest.ReasonBadTarget, "", 0},
		{"decimal metadata in url", get("http://2852039166/", "2852039166"), 400, dest.ReasonBadTarget, "", 0},
		// IPv6 literals.
		{"ipv6 literal", connect("[2606:4700::1111]:443"), 403, dest.ReasonIPLiteral, "", 0},
		{"ipv6 loopback literal", connect("[::1]:443"), 403, dest.ReasonIPLiteral, "", 0},
		{"ipv6 mapped literal", connect("[::ffff:169.254.169.254]:443"), 403, dest.ReasonIPLiteral, "", 0},
		{"ipv6 unbracketed", connect("::1:443"), 400, dest.ReasonBadTarget, "", 0},
		{"ipv6 zone id", connect("[fe80::1%25eth0]:443"), 400, dest.ReasonBadTarget, "", 0},
		{"bracketed ipv4", connect("[127.0.0.1]:443"), 400, dest.ReasonBadTarget, "", 0},
		// Names that resolve where they must not.
		{"resolves private", connect("priv.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"mixed public and private answer", connect("mixed.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves metadata", connect("meta.test:80"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves ipv6 loopback", connect("v6lo.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves mapped metadata", connect("mapped.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves nat64 metadata", connect("nat64.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves 6to4 private", connect("sixtofour.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves teredo private", connect("teredo.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves compatible private", connect("compat.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves cgnat", connect("cgnat.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves ula", connect("ula.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves ipv6 link-local", connect("linklocal.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves ipv6 metadata", connect("v6meta.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves benchmarking", connect("bench.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		{"resolves unspecified", connect("zero.test:443"), 403, dest.ReasonPrivateAddress, "", 0},
		// Allowed but unreachable.
		{"does not resolve", connect("nx.test:443"), 502, dest.ReasonResolve, "", 0},
		{"upstream refuses", connect("down.test:443"), 502, dest.ReasonUnreachable, "127.0.0.9:443", 0},
		{"upstream connect timeout", connect("slow.test:443"), 504, dest.ReasonTimeout, "127.0.0.10:443", 0},
		// HTTP forms.
		{"origin-form", "GET /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", 400, ReasonOriginForm, "", 0},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: api.example.com\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"host disagrees with url", get("http://plain.test/", "evil.com"), 400, egress.ReasonHostMismatch, "", 0},
		{"host port disagrees with url", get("http://plain.test/", "plain.test:8080"), 400, egress.ReasonHostMismatch, "", 0},
		{"two host headers", "GET http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\nHost: evil.com\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"https absolute-form", get("https://api.example.com/", "api.example.com"), 400, dest.ReasonBadScheme, "", 0},
		{"ftp absolute-form", get("ftp://plain.test/", "plain.test"), 400, dest.ReasonBadScheme, "", 0},
		{"content-length and chunked", "POST http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"bad content-length", "POST http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\nContent-Length: -1\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"obsolete folding", "GET http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\n folded\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"control char in header", "GET http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\nX: a\x00b\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"space before colon", "GET http://plain.test/ HTTP/1.1\r\nHost : plain.test\r\n\r\n", 400, ReasonBadRequest, "", 0},
		// Malformed heads and non-HTTP bytes.
		{"lower-case method", "connect api.example.com:443 HTTP/1.1\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"extra space in request line", "CONNECT  api.example.com:443 HTTP/1.1\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"http/0.9 style", "CONNECT api.example.com:443\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"http/3 version", "CONNECT api.example.com:443 HTTP/3.0\r\n\r\n", 400, ReasonBadRequest, "", 0},
		{"http/2 prior knowledge preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, ReasonHTTP2, "", 0},
		{"tls client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, ReasonBadRequest, "", 0},
		{"ssh banner", "SSH-2.0-OpenSSH_9.2\r\n", 400, ReasonBadRequest, "", 0},
		{"oversized head", "CONNECT api.example.com:443 HTTP/1.1\r\nX: " + strings.Repeat("a", 17<<10) + "\r\n\r\n", 431, ReasonHeadTooLarge, "", 0},
		{"slow head", connect("api.example.com:443"), 408, ReasonHeadTimeout, "", 2 * time.Second},
		{"bare LF head never completes", "CONNECT api.example.com:443 HTTP/1.1\n\n", 408, ReasonHeadTimeout, "", 0},
		// Pipelining after a denial: nothing after the refused head is carried.
		{"pipelined connect after denial", connect("evil.com:443") + connect("api.example.com:443"), 403, dest.ReasonNotAllowlisted, "", 0},
		{"pipelined get after denial", get("http://evil.com/", "evil.com") + get("http://plain.test/", "plain.test"), 403, dest.ReasonNotAllowlisted, "", 0},
		{"tls bytes after denied connect", connect("evil.com:443") + "\x16\x03\x01\x02\x00", 403, dest.ReasonNotAllowlisted, "", 0},
	}
	return rows
}

func TestTable(t *testing.T) {
	rows := tableRows()
	if len(rows) < 80 {
		t.Fatalf("table has %d rows, want at least 80", len(rows))
	}
	// The relay carries tunnels on raw door connections by default; the
	// gRPC stream is the fallback (TCP doors, lines the raw protocol cannot
	// carry). Every row must come out the same on both.
	for _, transport := range []string{server.TransportRaw, server.TransportGRPC} {
		t.Run(transport, func(t *testing.T) {
			s := runTable(t, rows, transport == server.TransportGRPC)
			n, grpcReasons := transportCounts(t, s.logs.String())
			if transport == server.TransportGRPC && n[server.TransportRaw] != 0 {
				t.Fatalf("grpc-only relay made %d raw tunnels", n[server.TransportRaw])
			}
			// Only the rows whose target no raw line can carry (non-ASCII
			// names, which netd refuses as bad targets) fall back to gRPC.
			if transport == server.TransportRaw {
				if n[server.TransportRaw] < 60 {
					t.Fatalf("raw relay: tunnels by transport %v", n)
				}
				for _, r := range grpcReasons {
					if r != "bad_target" {
						t.Fatalf("raw relay fell back to grpc for a %s tunnel", r)
					}
				}
			}
		})
	}
}

// transportCounts counts the tunnel audit records (one per decision) in
// logs by transport, and returns the verdicts of those carried by gRPC.
func transportCounts(t *testing.T, logs string) (map[string]int, []string) {
	t.Helper()
	n := map[string]int{}
	var grpcVerdicts []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == door.AuditMsg && m[door.KeyMethod] == "Tunnel" {
			tr, _ := m[server.KeyTransport].(string)
			n[tr]++
			if tr == server.TransportGRPC {
				v, _ := m[server.KeyVerdict].(string)
				grpcVerdicts = append(grpcVerdicts, v)
			}
		}
	}
	return n, grpcVerdicts
}

func runTable(t *testing.T, rows []row, grpcOnly bool) *stack {
	// Timeouts generous enough that a loaded machine never turns a prompt
	// head or a loopback connect into a 408 or 504; the slow cases wait them out.
	s := newStack(t, stackOpts{spec: tableSpec, timeout: time.Second, relay: Config{HeadTimeout: time.Second}, grpcOnly: grpcOnly})
	transport := server.TransportRaw
	if grpcOnly {
		transport = server.TransportGRPC
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.dialedAddrs())
			conns := s.up.conns.Load()
			logged := len(logRecords(t, s.logs.String()))
			got := roundTrip(t, s.relayAddr, tc.raw, tc.pause)
			if got.status != tc.status || got.reason != tc.reason {
				t.Fatalf("status %d reason %q (body %q), want %d %q", got.status, got.reason, got.body, tc.status, tc.reason)
			}
			dialed := s.dialedAddrs()[before:]
			switch {
			case tc.dialed == "" && len(dialed) > 0:
				t.Fatalf("dialed %v for a refused request", dialed)
			case tc.dialed != "" && (len(dialed) != 1 || dialed[0] != tc.dialed):
				t.Fatalf("dialed %v, want exactly %s", dialed, tc.dialed)
			}
			if tc.status != 200 && s.up.conns.Load() != conns {
				t.Fatalf("a refused request reached the upstream")
			}
			if tc.status >= 400 && !strings.HasPrefix(got.body, "netd") {
				t.Fatalf("refusal body %q", got.body)
			}
			checkTunnelRecords(t, s, tc, transport, logged)
		})
	}
	return s
}

// checkTunnelRecords checks the records a row left after the first logged
// ones: an allowed tunnel has exactly one audit record (with its id) and,
// once it has ended, one close record joined to it by that id, on the
// transport the relay used, with how it ended and what it carried; any
// other row leaves no close record and no tunnel id.
func checkTunnelRecords(t *testing.T, s *stack, tc row, transport string, logged int) {
	t.Helper()
	var audits, closes []map[string]any
	collect := func() {
		audits, closes = nil, nil
		for _, m := range logRecords(t, s.logs.String())[logged:] {
			switch {
			case m["msg"] == door.AuditMsg && m[door.KeyMethod] == "Tunnel":
				audits = append(audits, m)
			case m["msg"] == server.TunnelClosedMsg:
				closes = append(closes, m)
			}
		}
	}
	collect()
	if tc.status != 200 {
		for _, m := range audits {
			if m[server.KeyTunnel] != nil {
				t.Fatalf("a refused tunnel has an id: %v", m)
			}
		}
		if len(closes) != 0 {
			t.Fatalf("a refused tunnel has a close record: %v", closes)
		}
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(closes) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		collect()
	}
	if len(audits) != 1 || len(closes) != 1 {
		t.Fatalf("%d audit and %d close records, want one of each:\n%v\n%v", len(audits), len(closes), audits, closes)
	}
	open, cl := audits[0], closes[0]
	id, _ := open[server.KeyTunnel].(string)
	if id == "" || cl[server.KeyTunnel] != id || open[server.KeyTransport] != transport || cl[server.KeyTransport] != transport {
		t.Fatalf("records do not join on %s:\n%v\n%v", transport, open, cl)
	}
	for _, k := range []string{door.KeyAccount, door.KeyLaunch, door.KeyPeer, door.KeyTarget, server.KeyHost, server.KeyPort, server.KeyAddr} {
		if cl[k] != open[k] {
			t.Errorf("close record %s = %v, audit record has %v", k, cl[k], open[k])
		}
	}
	// A CONNECT tunnel ends when the client, having read the 200, closes
	// it; a plain-HTTP request when the upstream has answered and closed.
	up, _ := cl[server.KeyBytesUp].(float64)
	down, _ := cl[server.KeyBytesDown].(float64)
	if strings.HasPrefix(tc.raw, "CONNECT ") {
		if cl[server.KeyEnd] != server.EndClientClosed || up != 0 {
			t.Fatalf("close record %v, want end %s and no bytes up", cl, server.EndClientClosed)
		}
		return
	}
	seen := s.up.seen()
	if cl[server.KeyEnd] != server.EndUpstreamClosed || len(seen) == 0 || int(up) != len(seen[len(seen)-1]) || int(down) != len(upstreamReply) {
		t.Fatalf("close record %v, want end %s, %d bytes up and %d down", cl, server.EndUpstreamClosed, len(seen[len(seen)-1]), len(upstreamReply))
	}
}

// logRecords parses every record in logs.
func logRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestForwardedHead proves an allowed absolute-form request reaches the
// upstream in origin form, without proxy headers, with Connection: close,
// and that a request pipelined behind it is never carried.
func TestForwardedHead(t *testing.T) {
	s := newStack(t, stackOpts{spec: tableSpec})
	raw := "POST http://plain.test/submit?q=1 HTTP/1.1\r\nHost: plain.test\r\nProxy-Authorization: secret\r\nProxy-Connection: keep-alive\r\nContent-Length: 5\r\n\r\nhello" +
		get("http://plain.test/second", "plain.test")
	got := roundTrip(t, s.relayAddr, raw, 0)
	if got.status != 200 || got.body != "ok" {
		t.Fatalf("got %+v", got)
	}
	seen := s.up.seen()
	if len(seen) != 1 {
		t.Fatalf("upstream saw %d requests", len(seen))
	}
	want := "POST /submit?q=1 HTTP/1.1\r\nHost: plain.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
	if seen[0] != want {
		t.Fatalf("upstream saw %q\nwant %q", seen[0], want)
	}
	if strings.Contains(s.logs.String(), "secret") {
		t.Fatal("a proxy credential reached the log")
	}
}

// TestChunkedBodyEndsAtItsEnd proves a chunked request body is carried
// verbatim and a request pipelined behind it is not.
func TestChunkedBodyEndsAtItsEnd(t *testing.T) {
	s := newStack(t, stackOpts{spec: tableSpec})
	body := "5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"
	raw := "POST http://plain.test/up HTTP/1.1\r\nHost: plain.test\r\nTransfer-Encoding: chunked\r\n\r\n" + body +
		get("http://plain.test/second", "plain.test")
	got := roundTrip(t, s.relayAddr, raw, 0)
	if got.status != 200 {
		t.Fatalf("got %+v", got)
	}
	seen := s.up.seen()
	want := "POST /up HTTP/1.1\r\nHost: plain.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body
	if len(seen) != 1 || seen[0] != want {
		t.Fatalf("upstream saw %q\nwant %q", seen, want)
	}
}

// TestNoSecretsInAudit proves that userinfo and URL paths and queries, which
// can carry credentials, never reach netd's log, denied or allowed.
func TestNoSecretsInAudit(t *testing.T) {
	s := newStack(t, stackOpts{spec: tableSpec})
	for _, raw := range []string{
		connect("user:s3cr3tpw@evil.com:443"),
		connect("s3cr3tpw@api.example.com:443"),
		get("http://u:s3cr3tpw@plain.test/x", "plain.test"),
		get("http://evil.com/hook/s3cr3tpw?token=s3cr3tpw", "evil.com"),
		get("http://plain.test/hook/s3cr3tpw?token=s3cr3tpw", "plain.test"),
		get("http://plain.test/\u00e9s3cr3tpw", "plain.test"),
		get("http://plain.test/s3cr3tpw#frag", "plain.test"),
	} {
		roundTrip(t, s.relayAddr, raw, 0)
	}
	if logs := s.logs.String(); strings.Contains(logs, "s3cr3tpw") {
		t.Fatalf("a secret reached the log:\n%s", logs)
	}
}
