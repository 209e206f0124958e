package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	"github.com/bounded-systems/claude-box/netd/internal/rawtunnel"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// rawOpen sends a request line on a fresh raw connection to a door and
// reads the verdict.
func rawOpen(t *testing.T, path, line string) (*net.UnixConn, *bufio.Reader, rawtunnel.Verdict) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	v, err := rawtunnel.ReadVerdict(br)
	if err != nil {
		t.Fatalf("verdict for %q: %v", line, err)
	}
	return c.(*net.UnixConn), br, v
}

func (f *fixture) connectLine() string {
	return "NETD-TUNNEL/1 CONNECT echo.test:" + itoa(f.port)
}

// A malformed request line is answered with one exact refusal line, then
// the connection is closed; nothing is dialed.
func TestRawMalformedLines(t *testing.T) {
	f := newFixture(t, Limits{})
	for _, tc := range []struct{ line, msg string }{
		{"", "malformed tunnel line: empty field 1"},
		{"connect echo.test:1", "malformed tunnel line: want NETD-TUNNEL/1"},
		{"NETD-TUNNEL/2 CONNECT echo.test:1", "malformed tunnel line: want NETD-TUNNEL/1"},
		{"NETD-TUNNEL/1 CONNECT", "malformed tunnel line: want NETD-TUNNEL/1 VERB TARGET"},
		{"NETD-TUNNEL/1  CONNECT echo.test:1", "malformed tunnel line: empty field 2"},
		{"NETD-TUNNEL/1 CONNECT echo.test:1 ", "malformed tunnel line: empty field 4"},
		{"NETD-TUNNEL/1 CONNECT echo.test:1 echo.test", "malformed tunnel line: 4 fields for CONNECT"},
		{"NETD-TUNNEL/1 HTTP http://echo.test/ echo.test x", "malformed tunnel line: 5 fields for HTTP"},
		{"NETD-TUNNEL/1 GET echo.test:1", "malformed tunnel line: unknown verb"},
		{"NETD-TUNNEL/1 connect echo.test:1", "malformed tunnel line: unknown verb"},
		{"NETD-TUNNEL/1 CONNECT echo.test:1\t", "malformed tunnel line: byte 0x09 at 33"},
		{"NETD-TUNNEL/1 CONNECT \xffecho.test:1", "malformed tunnel line: byte 0xff at 22"},
		{"NETD-TUNNEL/1 CONNECT " + strings.Repeat("a", 3990), "malformed tunnel line: longer than 4000 bytes"},
	} {
		c, err := net.Dial("unix", f.paths["a"])
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, tc.line+"\n"); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		want := `{"decision":"bad_request","reason":"bad_tunnel_line","message":"` + tc.msg + `"}` + "\n"
		if string(got) != want {
			t.Errorf("line %q:\n got %q\nwant %q", tc.line, got, want)
		}
	}
	if n := f.srv.Counters()[CounterTunnelsTotal]; n != 0 {
		t.Fatalf("tunnels opened: %d", n)
	}
}

// An allowed raw tunnel carries bytes both ways, half-closes upstream on
// the relay's EOF, and counts like a gRPC tunnel.
func TestRawTunnelDataAndHalfClose(t *testing.T) {
	f := newFixture(t, Limits{})
	c, br, v := rawOpen(t, f.paths["a"], f.connectLine())
	if v.Decision != rawtunnel.DecisionAllow || v.Reason != egress.ReasonOK || v.Host != "echo.test" || int(v.Port) != f.port {
		t.Fatalf("verdict %+v", v)
	}
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The echo upstream sees EOF and closes; netd closes the tunnel.
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q %v", rest, err)
	}
	waitFor(t, "the tunnel to close", func() bool { return f.srv.Counters()[CounterTunnelsOpen] == 0 })
	cs := f.srv.Counters()
	if cs[CounterBytesUp] != 4 || cs[CounterBytesDown] != 4 || cs[CounterTunnelsTotal] != 1 {
		t.Fatalf("counters %v", cs)
	}
}

// Raw tunnels are held to the same per-launch and global caps, shared with
// gRPC tunnels.
func TestRawTunnelCaps(t *testing.T) {
	f := newFixture(t, Limits{MaxTunnels: 3, MaxPerLaunch: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	want := func(v rawtunnel.Verdict, d string) {
		t.Helper()
		if v.Decision != d {
			t.Fatalf("verdict %+v, want %s", v, d)
		}
	}
	a1, _, v := rawOpen(t, f.paths["a"], f.connectLine())
	want(v, rawtunnel.DecisionAllow)
	_, v2 := f.open(t, ctx, "a") // a gRPC tunnel takes the launch's second slot
	if v2.GetDecision() != netv1.Decision_DECISION_ALLOW {
		t.Fatalf("grpc verdict %v", v2)
	}
	_, _, v = rawOpen(t, f.paths["a"], f.connectLine())
	want(v, rawtunnel.DecisionLimited)
	if v.Reason != egress.ReasonLimited || v.Rule != "tunnel_cap" {
		t.Fatalf("limited verdict %+v", v)
	}
	_, _, v = rawOpen(t, f.paths["b"], f.connectLine())
	want(v, rawtunnel.DecisionAllow)
	_, _, v = rawOpen(t, f.paths["b"], f.connectLine())
	want(v, rawtunnel.DecisionLimited)
	a1.Close()
	waitFor(t, "a slot to be released", func() bool { return f.srv.Counters()[CounterTunnelsOpen] == 2 })
	_, _, v = rawOpen(t, f.paths["a"], f.connectLine())
	want(v, rawtunnel.DecisionAllow)
	if n := f.srv.Counters()[DecisionKey("limited", egress.ReasonLimited)]; n != 2 {
		t.Fatalf("limited counter %d", n)
	}
}

// Revoking a door cuts its open raw tunnels: the relay's connection and the
// upstream connection close, and the slot is released.
func TestRawRevocationCutsTunnel(t *testing.T) {
	f := newFixture(t, Limits{})
	md, err := f.m.Mint(context.Background(), door.MintRequest{LaunchID: "r", Account: "acct", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, br, v := rawOpen(t, md.SocketPath, f.connectLine())
	if v.Decision != rawtunnel.DecisionAllow {
		t.Fatalf("verdict %+v", v)
	}
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil {
		t.Fatal(err)
	}
	if !f.m.Revoke(md.DoorID) {
		t.Fatal("revoke: door was not live")
	}
	start := time.Now()
	if _, err := io.ReadAll(br); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("revoked tunnel read: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("revocation took %v to cut the tunnel", el)
	}
	waitFor(t, "the tunnel slot to be released", func() bool { return f.srv.Counters()[CounterTunnelsOpen] == 0 })
}

// The idle timeout ends a raw tunnel as it ends a gRPC one.
func TestRawIdleTimeout(t *testing.T) {
	f := newFixture(t, Limits{IdleTimeout: 200 * time.Millisecond})
	_, br, v := rawOpen(t, f.paths["a"], f.connectLine())
	if v.Decision != rawtunnel.DecisionAllow {
		t.Fatalf("verdict %+v", v)
	}
	start := time.Now()
	_, _ = io.ReadAll(br)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("idle timeout took %v", el)
	}
}

// tunnelRecords are the records of tunnels in logs (audit and close
// records), without what differs between two runs of the same tunnel
// (time, duration, tunnel id) or between transports by design (transport).
func tunnelRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m[door.KeyMethod] != "Tunnel" {
			continue
		}
		if m[KeyTransport] == nil {
			t.Fatalf("tunnel record without transport: %v", m)
		}
		delete(m, "time")
		delete(m, KeyDuration)
		delete(m, KeyTransport)
		delete(m, KeyTunnel)
		out = append(out, m)
	}
	return out
}

func sortedJSON(recs []map[string]any) []string {
	out := make([]string, 0, len(recs))
	for _, m := range recs {
		b, _ := json.Marshal(m) // map keys marshal sorted
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

// A tunnel's audit and close records are the same whichever transport
// carried it.
func TestRawAuditEqualsGRPC(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tunnels := []struct {
		verb   netv1.Verb
		target string
		host   string
	}{
		{netv1.Verb_VERB_CONNECT, "echo.test:" + itoa(f.port), ""},
		{netv1.Verb_VERB_CONNECT, "echo.test:1", ""},                          // caveat and allowlist deny
		{netv1.Verb_VERB_CONNECT, "evil.test:443", ""},                        // not allowlisted
		{netv1.Verb_VERB_HTTP, "http://echo.test:" + itoa(f.port) + "/", "x"}, // host mismatch
	}
	var grpcLogs, rawLogs string
	for _, tn := range tunnels {
		st, err := f.doors["a"].Tunnel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&netv1.TunnelRequest{Open: &netv1.Open{Target: tn.target, Verb: tn.verb, HostHeader: tn.host}, Data: []byte("ping")}); err != nil {
			t.Fatal(err)
		}
		_ = st.CloseSend()
		for {
			if _, err := st.Recv(); err != nil {
				break
			}
		}
	}
	waitFor(t, "grpc tunnels to close", func() bool { return f.srv.Counters()[CounterTunnelsOpen] == 0 })
	grpcLogs = f.logs.String()
	for _, tn := range tunnels {
		req := rawtunnel.Request{Verb: rawtunnel.VerbConnect, Target: tn.target, HostHeader: tn.host}
		if tn.verb == netv1.Verb_VERB_HTTP {
			req.Verb = rawtunnel.VerbHTTP
		}
		line, err := req.Line()
		if err != nil {
			t.Fatal(err)
		}
		c, br, v := rawOpen(t, f.paths["a"], line)
		if v.Decision == rawtunnel.DecisionAllow {
			_, _ = io.WriteString(c, "ping")
			_ = c.CloseWrite()
			_, _ = io.ReadAll(br)
		}
		c.Close()
	}
	waitFor(t, "raw tunnels to close", func() bool { return f.srv.Counters()[CounterTunnelsOpen] == 0 })
	rawLogs = strings.TrimPrefix(f.logs.String(), grpcLogs)
	g, r := tunnelRecords(t, grpcLogs), tunnelRecords(t, rawLogs)
	// One audit record per tunnel, and a close record for the one allowed.
	if want := len(tunnels) + 1; len(g) != want || len(r) != want {
		t.Fatalf("records: grpc %d, raw %d, want %d\n%s", len(g), len(r), want, f.logs.String())
	}
	// A close record is written when its tunnel ends, so records need not
	// come in the order the tunnels were opened.
	gs, rs := sortedJSON(g), sortedJSON(r)
	for i := range gs {
		if gs[i] != rs[i] {
			t.Errorf("record %d:\ngrpc %s\n raw %s", i, gs[i], rs[i])
		}
	}
	if !strings.Contains(strings.Join(rs, "\n"), `"bytes_down":4,"bytes_up":4,"door":"net","end":"client_closed"`) {
		t.Fatalf("no allowed tunnel record with its bytes:\n%s", strings.Join(rs, "\n"))
	}
}

// Caveats bound at mint time hold on the raw path too.
func TestRawCaveats(t *testing.T) {
	f := newFixture(t, Limits{})
	md, err := f.m.Mint(context.Background(), door.MintRequest{LaunchID: "c", Account: "acct", PeerUID: -1,
		Caveats: []guestroom.Caveat{{Key: "host", Value: "other.test:443"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, v := rawOpen(t, md.SocketPath, f.connectLine())
	if v.Decision != rawtunnel.DecisionDeny || v.Reason != egress.ReasonCaveat {
		t.Fatalf("verdict %+v, want deny %s", v, egress.ReasonCaveat)
	}
}
