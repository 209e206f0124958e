package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/rawtunnel"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// heldUpstream accepts connections and hands each to the test, which plays
// the upstream by hand (and can kill it).
func heldUpstream(t *testing.T) (port int, conns <-chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, ch
}

// logLine is one parsed log record and its position in the log.
type logLine struct {
	n int
	m map[string]any
}

// tunnelLog returns the audit records and close records of the tunnel
// with id, in log order.
func tunnelLog(t *testing.T, logs, id string) (audits, closes []logLine) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m[KeyTunnel] != id {
			continue
		}
		switch m["msg"] {
		case door.AuditMsg:
			audits = append(audits, logLine{i, m})
		case TunnelClosedMsg:
			closes = append(closes, logLine{i, m})
		default:
			t.Fatalf("record with a tunnel id: %v", m)
		}
	}
	return audits, closes
}

// openTunnelRecord finds the audit record of the one allowed tunnel in logs.
func openTunnelRecord(t *testing.T, logs string) map[string]any {
	t.Helper()
	var found map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == door.AuditMsg && m[door.KeyMethod] == methodTunnel && m[door.KeyAllow] == true {
			if found != nil {
				t.Fatalf("two allowed tunnel records:\n%s", logs)
			}
			found = m
		}
	}
	return found
}

// clientEnd is the box's side of one tunnel, whichever transport carries it.
type clientEnd struct {
	send     func(string)
	recv     func(n int) string
	closeW   func()
	drainEOF func() error
}

func rawClient(t *testing.T, f *fixture) clientEnd {
	t.Helper()
	c, br, v := rawOpen(t, f.paths["a"], f.connectLine())
	if v.Decision != rawtunnel.DecisionAllow {
		t.Fatalf("verdict %+v", v)
	}
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	return clientEnd{
		send: func(s string) {
			if _, err := io.WriteString(c, s); err != nil {
				t.Fatal(err)
			}
		},
		recv: func(n int) string {
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				t.Fatal(err)
			}
			return string(b)
		},
		closeW: func() { _ = c.CloseWrite() },
		drainEOF: func() error {
			_, err := io.ReadAll(br)
			return err
		},
	}
}

func grpcClient(t *testing.T, f *fixture) clientEnd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	st, v := f.open(t, ctx, "a")
	if v.GetDecision() != netv1.Decision_DECISION_ALLOW {
		t.Fatalf("verdict %v", v)
	}
	var pending []byte
	return clientEnd{
		send: func(s string) {
			if err := st.Send(&netv1.TunnelRequest{Data: []byte(s)}); err != nil {
				t.Fatal(err)
			}
		},
		recv: func(n int) string {
			for len(pending) < n {
				m, err := st.Recv()
				if err != nil {
					t.Fatal(err)
				}
				pending = append(pending, m.GetData()...)
			}
			s := string(pending[:n])
			pending = pending[n:]
			return s
		},
		closeW: func() { _ = st.CloseSend() },
		drainEOF: func() error {
			for {
				if _, err := st.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		},
	}
}

// An allowed tunnel's decision is on record while it is open; its close
// record, joined by the tunnel id, says how it ended and carries exactly
// the bytes moved; both transports write the same records.
func TestTunnelOpenAndCloseRecords(t *testing.T) {
	const up, down = "hello", "worlds!"
	ends := []struct {
		end  string
		idle time.Duration
		// finish ends the tunnel, given the upstream's connection.
		finish func(t *testing.T, f *fixture, c clientEnd, uc net.Conn)
	}{
		{EndClientClosed, 0, func(t *testing.T, _ *fixture, c clientEnd, uc net.Conn) {
			c.closeW()
			// The upstream sees the half-close, then closes too.
			if rest, err := io.ReadAll(uc); err != nil || len(rest) != 0 {
				t.Fatalf("upstream after half-close: %q %v", rest, err)
			}
			uc.Close()
		}},
		{EndUpstreamClosed, 0, func(_ *testing.T, _ *fixture, _ clientEnd, uc net.Conn) { uc.Close() }},
		{EndIdleTimeout, time.Second, func(*testing.T, *fixture, clientEnd, net.Conn) {}},
		{EndRevoked, 0, func(t *testing.T, f *fixture, _ clientEnd, _ net.Conn) {
			for _, d := range f.m.Live() {
				if d.LaunchID == "a" && !f.m.Revoke(d.DoorID) {
					t.Fatal("revoke: door was not live")
				}
			}
		}},
		{EndShutdown, 0, func(_ *testing.T, f *fixture, _ clientEnd, _ net.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			f.srv.Stopping()
			f.m.Close(ctx)
		}},
	}
	transports := []struct {
		name string
		open func(*testing.T, *fixture) clientEnd
	}{
		{TransportRaw, rawClient},
		{TransportGRPC, grpcClient},
	}
	for _, e := range ends {
		t.Run(e.end, func(t *testing.T) {
			// One upstream for both transports, so their records can agree
			// to the byte.
			port, held := heldUpstream(t)
			same := map[string][]string{}
			for _, tr := range transports {
				t.Run(tr.name, func(t *testing.T) {
					f := newFixtureOn(t, Limits{IdleTimeout: e.idle}, port)
					c := tr.open(t, f)
					var uc net.Conn
					select {
					case uc = <-held:
					case <-time.After(10 * time.Second):
						t.Fatal("netd did not dial the upstream")
					}
					defer uc.Close()
					_ = uc.SetDeadline(time.Now().Add(15 * time.Second))
					c.send(up)
					got := make([]byte, len(up))
					if _, err := io.ReadFull(uc, got); err != nil || string(got) != up {
						t.Fatalf("upstream read %q %v", got, err)
					}
					if _, err := io.WriteString(uc, down); err != nil {
						t.Fatal(err)
					}
					if s := c.recv(len(down)); s != down {
						t.Fatalf("client read %q", s)
					}

					// While the tunnel is open, its decision is on record, and
					// nothing says it closed.
					open := openTunnelRecord(t, f.logs.String())
					if open == nil {
						t.Fatalf("no audit record while the tunnel is open:\n%s", f.logs.String())
					}
					id, _ := open[KeyTunnel].(string)
					if len(id) != 16 || open[KeyTransport] != tr.name || open[door.KeyReason] != "ok" || open[KeyBytesUp] != nil {
						t.Fatalf("open record %v", open)
					}
					if e.idle == 0 && strings.Contains(f.logs.String(), TunnelClosedMsg) {
						t.Fatalf("a close record while the tunnel is open:\n%s", f.logs.String())
					}

					e.finish(t, f, c, uc)
					if err := c.drainEOF(); err != nil && e.end != EndRevoked && e.end != EndShutdown {
						t.Fatalf("client after the tunnel ended: %v", err)
					}
					var audits, closes []logLine
					waitFor(t, "the close record", func() bool {
						audits, closes = tunnelLog(t, f.logs.String(), id)
						return len(closes) > 0
					})
					if len(audits) != 1 || len(closes) != 1 || audits[0].n > closes[0].n {
						t.Fatalf("records of tunnel %s: %d audit, %d close (audit first: %v)\n%s", id, len(audits), len(closes), len(audits) == 1 && audits[0].n < closes[0].n, f.logs.String())
					}
					// The close is not a decision: it is not counted as one.
					if n := f.srv.Counters()[DecisionKey("allow", "ok")]; n != 1 {
						t.Errorf("allow decisions counted: %d, want 1", n)
					}
					cl := closes[0].m
					want := map[string]any{
						"level": "INFO", KeyEnd: e.end, KeyBytesUp: float64(len(up)), KeyBytesDown: float64(len(down)),
						door.KeyDoor: DoorName, KeyTransport: tr.name,
					}
					for _, k := range []string{door.KeyMethod, door.KeyAccount, door.KeyLaunch, door.KeyPeer, door.KeyTarget, KeyVerb, KeyHost, KeyPort, KeyAddr} {
						want[k] = open[k]
					}
					for k, v := range want {
						if cl[k] != v {
							t.Errorf("close record %s = %v, want %v", k, cl[k], v)
						}
					}
					if d, ok := cl[KeyDuration].(float64); !ok || d < 0 {
						t.Errorf("close record duration %v", cl[KeyDuration])
					}
					if cl[door.KeyAccount] != "acct" || cl[door.KeyLaunch] != "a" || !strings.HasPrefix(cl[door.KeyPeer].(string), "uid=") {
						t.Errorf("close record identity %v", cl)
					}
					for _, m := range []map[string]any{open, cl} {
						delete(m, "time")
						delete(m, KeyDuration)
						delete(m, KeyTransport)
						delete(m, KeyTunnel)
					}
					same[tr.name] = sortedJSON([]map[string]any{open, cl})
				})
			}
			if g, r := strings.Join(same[TransportGRPC], "\n"), strings.Join(same[TransportRaw], "\n"); g != r || g == "" {
				t.Errorf("records differ by transport:\ngrpc %s\n raw %s", g, r)
			}
		})
	}
}
