package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "netd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// daemon is one in-process run of a netd command.
type daemon struct {
	once   sync.Once
	cancel context.CancelFunc
	done   chan error
	stderr *syncBuffer
}

func start(t *testing.T, args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{cancel: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	go func() { d.done <- Run(ctx, args, io.Discard, d.stderr) }()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) stop() {
	d.once.Do(func() {
		d.cancel()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
		}
	})
}

// auditRecords parses the JSON audit lines a daemon logged.
func auditRecords(t *testing.T, logs string) []map[string]any {
	t.Helper()
	return records(t, logs, door.AuditMsg)
}

// records parses the JSON lines with message msg a daemon logged.
func records(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

var listenRe = regexp.MustCompile(`"listen":"(127\.0\.0\.1:\d+)"`)

// TestEndToEnd runs `netd serve` and `netd relay` as commands, with a TLS
// upstream on loopback: an allowed name completes a TLS handshake through
// the tunnel, a denied one never reaches the upstream, a broken config is
// refused on SIGHUP, a good one is taken, and the relay survives a netd
// restart.
func TestEndToEnd(t *testing.T) {
	var upConns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from upstream")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			upConns.Add(1)
		}
	}
	up.StartTLS()
	defer up.Close()
	port := up.Listener.Addr().(*net.TCPAddr).Port

	dir := shortDir(t)
	sock := filepath.Join(dir, "run", "netd.sock")
	doorPath := filepath.Join(dir, "doors", "netd.sock")
	cfg := filepath.Join(dir, "netd.json")
	writeCfg := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(fmt.Sprintf(`{"version": 1, "allow": ["up.test:%d"]}`, port))
	serveArgs := []string{"serve", "--socket", sock, "--door", doorPath, "--config", cfg,
		"--resolve", "up.test=127.0.0.1", "--resolve", "evil.test=127.0.0.1", "--resolve", "other.test=127.0.0.1",
		"--allow-private", "127.0.0.0/8"}
	srv := start(t, serveArgs...)
	waitFor(t, "netd door", 10*time.Second, func() bool { return door.Answers(doorPath) && door.Answers(sock) })
	if !strings.Contains(srv.stderr.String(), "ALLOW-PRIVATE") {
		t.Fatal("allow-private was not logged loudly")
	}

	rl := start(t, "relay", "--listen", "127.0.0.1:0", "--door", doorPath)
	var relayAddr string
	waitFor(t, "relay listening", 10*time.Second, func() bool {
		m := listenRe.FindStringSubmatch(rl.stderr.String())
		if m != nil {
			relayAddr = m[1]
		}
		return m != nil
	})

	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	client := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			Proxy:             http.ProxyURL(&url.URL{Scheme: "http", Host: relayAddr}),
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "example.com"},
			DisableKeepAlives: true,
		}}
	}
	get := func(host string) (string, error) {
		resp, err := client().Get(fmt.Sprintf("https://%s:%d/", host, port))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	// Allowed: the TLS handshake and request go through the blind tunnel.
	body, err := get("up.test")
	if err != nil || body != "hello from upstream" {
		t.Fatalf("allowed get: %q, %v", body, err)
	}
	// Denied: a 403 at CONNECT, and the upstream never sees a connection.
	before := upConns.Load()
	if _, err := get("evil.test"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("denied get: %v", err)
	}
	if upConns.Load() != before {
		t.Fatal("a denied name reached the upstream")
	}

	// A broken config on SIGHUP is refused; the last good one stays.
	writeCfg(fmt.Sprintf(`{"version": 1, "allow": ["other.test:%d"], "typo": 1}`, port))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload refusal", 10*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "config reload refused") })
	if !strings.Contains(srv.stderr.String(), `\"typo\"`) || !strings.Contains(srv.stderr.String(), cfg) {
		t.Fatal("reload refusal does not name the file and key")
	}
	if body, err := get("up.test"); err != nil || body != "hello from upstream" {
		t.Fatalf("after broken reload: %q, %v", body, err)
	}
	if _, err := get("other.test"); err == nil {
		t.Fatal("broken config took effect")
	}
	// A good config on SIGHUP replaces the policy.
	writeCfg(fmt.Sprintf(`{"version": 1, "allow": ["other.test:%d"]}`, port))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload", 10*time.Second, func() bool { return strings.Contains(srv.stderr.String(), "config reloaded") })
	if body, err := get("other.test"); err != nil || body != "hello from upstream" {
		t.Fatalf("after reload: %q, %v", body, err)
	}
	if _, err := get("up.test"); err == nil {
		t.Fatal("old policy still in force after reload")
	}

	// A launch-scoped door minted over the control socket carries its
	// caveats and its launch id into every decision.
	cc, err := door.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	minted, err := doorv1.NewControlServiceClient(cc).MintDoor(ctx, &doorv1.MintDoorRequest{
		LaunchId: "launch-1", Account: "work", PeerUid: -1,
		Caveats: []*doorv1.Caveat{{Key: "host", Value: "nothing.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := door.Dial(minted.GetSocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	ct, err := netv1.NewEgressServiceClient(lc).CheckTarget(ctx, &netv1.CheckTargetRequest{Target: fmt.Sprintf("other.test:%d", port)})
	if err != nil || ct.GetVerdict().GetReason() != "caveat_denied" {
		t.Fatalf("minted door check: %v %v", ct, err)
	}
	if _, err := doorv1.NewControlServiceClient(cc).MintDoor(ctx, &doorv1.MintDoorRequest{
		LaunchId: "launch-2", Account: "work", PeerUid: -1, Caveats: []*doorv1.Caveat{{Key: "repo", Value: "x"}},
	}); err == nil {
		t.Fatal("a caveat netd cannot enforce was minted")
	}

	// Status over the control socket, in Prometheus text.
	var out syncBuffer
	if err := Run(ctx, []string{"status", "--socket", sock, "--prometheus"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`netd_decisions_total{verdict="deny",reason="not_allowlisted"}`, `netd_tunnels_total`, `netd_bytes_total{direction="down"}`} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("prometheus output lacks %s:\n%s", want, out.String())
		}
	}

	// Audit: one record per decision, with account, launch, canonical
	// host and address; a denial names its rule. An allowed tunnel's close
	// record carries its id, bytes, duration and how it ended.
	recs := auditRecords(t, srv.stderr.String())
	var sawDeny, sawTunnel, sawLaunch bool
	var tunnelID any
	for _, r := range recs {
		switch {
		case r["method"] == "Tunnel" && r["host"] == "evil.test":
			sawDeny = r["allow"] == false && r["reason"] == "not_allowlisted" && r["rule"] == "allowlist" &&
				r["account"] == "default" && r["launch"] == "standing" && r["tunnel_id"] == nil
		case r["method"] == "Tunnel" && r["host"] == "up.test" && r["allow"] == true && tunnelID == nil:
			tunnelID = r["tunnel_id"]
			sawTunnel = r["addr"] == fmt.Sprintf("127.0.0.1:%d", port) && r["bytes_up"] == nil &&
				r["transport"] == "raw" // the relay's default on a unix door
		case r["method"] == "CheckTarget" && r["launch"] == "launch-1":
			sawLaunch = r["account"] == "work" && r["reason"] == "caveat_denied" && r["rule"] == "launch_caveat"
		}
	}
	if !sawDeny || !sawTunnel || !sawLaunch || tunnelID == nil {
		t.Fatalf("audit records: deny %v tunnel %v (id %v) launch %v\n%s", sawDeny, sawTunnel, tunnelID, sawLaunch, srv.stderr.String())
	}
	closedRecord := func(id any) map[string]any {
		for _, r := range records(t, srv.stderr.String(), "tunnel_closed") {
			if r["tunnel_id"] == id {
				return r
			}
		}
		return nil
	}
	var cr map[string]any
	waitFor(t, "the tunnel's close record", 10*time.Second, func() bool { cr = closedRecord(tunnelID); return cr != nil })
	if cr["account"] != "default" || cr["launch"] != "standing" || cr["host"] != "up.test" || cr["transport"] != "raw" ||
		cr["addr"] != fmt.Sprintf("127.0.0.1:%d", port) || cr["bytes_up"].(float64) <= 0 || cr["bytes_down"].(float64) <= 0 ||
		cr["duration_ms"] == nil || cr["end"] == nil {
		t.Fatalf("close record %v", cr)
	}

	// Kill netd mid-tunnel: the open tunnel ends, new requests get a clean
	// 502 naming the door, and the relay serves again once netd is back.
	tc, err := net.Dial("tcp", relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	fmt.Fprintf(tc, "CONNECT other.test:%d HTTP/1.1\r\nHost: other.test\r\n\r\n", port)
	br := bufio.NewReader(tc)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("tunnel: %q", line)
	}
	// Its decision is on record while it is open, before netd stops.
	var openRec map[string]any
	waitFor(t, "the open tunnel's audit record", 10*time.Second, func() bool {
		for _, r := range auditRecords(t, srv.stderr.String()) {
			if r["method"] == "Tunnel" && r["host"] == "other.test" && r["allow"] == true && r["tunnel_id"] != nil && closedRecord(r["tunnel_id"]) == nil {
				openRec = r
			}
		}
		return openRec != nil
	})
	srv.stop()
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("open tunnel did not end cleanly when netd stopped: %v", err)
	}
	waitFor(t, "the stopped tunnel's close record", 10*time.Second, func() bool { cr = closedRecord(openRec["tunnel_id"]); return cr != nil })
	if cr["end"] != "shutdown" || cr["bytes_up"] != 0.0 || cr["bytes_down"] != 0.0 || cr["launch"] != "standing" {
		t.Fatalf("close record of a tunnel open when netd stopped: %v", cr)
	}
	raw := func() string {
		c, err := net.Dial("tcp", relayAddr)
		if err != nil {
			return err.Error()
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT other.test:%d HTTP/1.1\r\n\r\n", port)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if line := raw(); !strings.HasPrefix(line, "HTTP/1.1 502") {
		t.Fatalf("with netd down: %q", line)
	}
	srv2 := start(t, serveArgs...)
	waitFor(t, "netd back", 10*time.Second, func() bool { return door.Answers(doorPath) })
	waitFor(t, "relay to serve again", 15*time.Second, func() bool { return strings.HasPrefix(raw(), "HTTP/1.1 200") })
	if body, err := get("other.test"); err != nil || body != "hello from upstream" {
		t.Fatalf("after restart: %q, %v", body, err)
	}
	srv2.stop()
}
