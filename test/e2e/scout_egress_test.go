package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// TestScoutEgressThroughRealNetd: `scoutd serve --egress-door` sends
// scoutd's own traffic through a real netd's standing door. scoutd's policy
// admits two hosts, A and B; netd's admits only A. scoutd's own answer for A
// points at a decoy on 127.0.0.2 (same port) that it may dial, so a fetch
// that reaches A's real server on 127.0.0.1 went through netd, and one that
// reaches the decoy did not. The real binaries run on the host: netd,
// scoutd and the `scout` client over scoutd's standing door.
func TestScoutEgressThroughRealNetd(t *testing.T) {
	w := newHostWorld(t, "netd", "scoutd", "scout")

	// A binary body with every byte value, so the round trip is checked
	// byte for byte. "Connection: close" ends each tunnel after its
	// response, which is when netd writes the tunnel's close record (its
	// audit record is written when it opens).
	body := make([]byte, 300<<10)
	for i := range body {
		body[i] = byte(i*7 + i/256)
	}
	blob := func(b []byte) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", "application/octet-stream")
			rw.Header().Set("Connection", "close")
			_, _ = rw.Write(b)
		})
	}
	a, decoy := upstreamWithDecoy(t, w.s.ca, "a-egress.test", blob(body), blob([]byte("the decoy: scoutd dialed by itself")))
	b := harness.NewUpstream(t, w.s.ca, "b-egress.test", harness.Text("netd must refuse this"))

	netdDoor := filepath.Join(w.home, "doors", "netd.sock")
	netd := w.start(t, "netd", append([]string{"--door", netdDoor, "--allow", a.HostPort()}, loopbackPolicy(a.Name, b.Name)...))
	scoutdDoor := filepath.Join(w.home, "doors", "scoutd.sock")
	scoutd := w.start(t, "scoutd", []string{
		"--door", scoutdDoor, "--egress-door", netdDoor,
		"--allow", a.HostPort() + "," + b.HostPort(),
		// scoutd's own answers: A is the decoy, B is B itself, and both are
		// addresses scoutd may dial. Only netd stands between it and B.
		"--resolve", a.Name + "=127.0.0.2", "--resolve", b.Name + "=127.0.0.1",
		"--allow-private", "127.0.0.1/32", "--allow-private", "127.0.0.2/32",
	})
	peer := fmt.Sprintf("uid=%d pid=%d", os.Getuid(), pidOf(t, w.s.bin(t, "scoutd"), scoutd.Socket))

	// netdAudit finds netd's audit record of a tunnel to target.
	netdAudit := func(target string) map[string]any {
		for _, rec := range netd.Records() {
			if rec["msg"] == "audit" && rec["method"] == "Tunnel" && rec["target"] == target {
				return rec
			}
		}
		return nil
	}
	// netdClosed finds netd's close record of the tunnel with id.
	netdClosed := func(id any) map[string]any {
		for _, rec := range netd.Records() {
			if rec["msg"] == "tunnel_closed" && rec["tunnel_id"] == id {
				return rec
			}
		}
		return nil
	}
	checkRecord := func(t *testing.T, rec map[string]any, want map[string]any) {
		t.Helper()
		for k, v := range want {
			if rec[k] != v {
				t.Errorf("netd audit record %s = %v, want %v\n%s", k, rec[k], v, jsonish(rec))
			}
		}
	}

	t.Run("allowed host goes through netd", func(t *testing.T) {
		res := w.scout(t, scoutdDoor, "fetch", a.URL()+"/blob")
		if res.code != 0 {
			t.Fatalf("scout fetch %s: exit %d\n%s\nscoutd:\n%s\nnetd:\n%s", a.URL(), res.code, res.stderr, scoutd.LogTail(), netd.LogTail())
		}
		if !bytes.Equal([]byte(res.stdout), body) {
			t.Errorf("body differs: got %d bytes, want %d (decoy? %q)", len(res.stdout), len(body), clip(res.stdout))
		}
		if n := a.Conns(); n != 1 {
			t.Errorf("upstream A saw %d connections, want 1", n)
		}
		if reqs := a.Requests(); len(reqs) != 1 || reqs[0].Path != "/blob" || reqs[0].Host != a.HostPort() {
			t.Errorf("upstream A served %+v, want one GET /blob for %s", reqs, a.HostPort())
		}
		if n := decoy.Conns(); n != 0 {
			t.Errorf("the decoy (scoutd's own answer for %s) saw %d connections: scoutd dialed by itself", a.Name, n)
		}
		var rec map[string]any
		if !harness.WaitFor(5*time.Second, func() bool { rec = netdAudit(a.HostPort()); return rec != nil }) {
			t.Fatalf("no netd audit record for %s:\n%s", a.HostPort(), netd.LogTail())
		}
		checkRecord(t, rec, map[string]any{
			"allow": true, "reason": "ok", "verb": "CONNECT", "account": "default", "launch": "standing",
			"peer": peer, "addr": "127.0.0.1:" + strconv.Itoa(a.Port), "transport": "grpc",
		})
		var closed map[string]any
		if id, _ := rec["tunnel_id"].(string); id == "" ||
			!harness.WaitFor(5*time.Second, func() bool { closed = netdClosed(id); return closed != nil }) {
			t.Fatalf("no netd close record joined to %s:\n%s", jsonish(rec), netd.LogTail())
		}
		checkRecord(t, closed, map[string]any{
			"account": "default", "launch": "standing", "peer": peer, "target": a.HostPort(),
			"addr": "127.0.0.1:" + strconv.Itoa(a.Port), "transport": "grpc",
		})
		if down, _ := closed["bytes_down"].(float64); down < float64(len(body)) {
			t.Errorf("netd carried %v bytes down, want at least the body's %d", closed["bytes_down"], len(body))
		}
	})

	t.Run("netd refuses what scoutd allows", func(t *testing.T) {
		res := w.scout(t, scoutdDoor, "fetch", b.URL()+"/")
		if res.code == 0 {
			t.Fatalf("scout fetch %s succeeded; netd does not allow it\n%s", b.URL(), res.stdout)
		}
		// scoutd wraps netd's verdict (reason and message) in its own
		// not_allowlisted refusal.
		want := "scout: not_allowlisted: "
		if !strings.HasPrefix(res.stderr, want) {
			t.Errorf("stderr does not start with %q:\n%s", want, res.stderr)
		}
		want = "netd refused " + b.HostPort() + ": not_allowlisted (" + b.HostPort() +
			" denied (not_allowlisted). hint: relaunch with a profile or --allow entry that names it)"
		if !strings.Contains(res.stderr, want) {
			t.Errorf("the refusal does not carry netd's verdict %q:\n%s", want, res.stderr)
		}
		// The hint points at netd's policy, not at scoutd's allowlist
		// (which already names B).
		want = "hint: netd refused it: scoutd sends its own traffic through netd (--egress-door)"
		if !strings.Contains(res.stderr, want) || strings.Contains(res.stderr, "not on scoutd's allowlist") {
			t.Errorf("stderr does not hint at netd's policy (%q):\n%s", want, res.stderr)
		}
		if strings.Contains(res.stdout, "netd must refuse this") {
			t.Errorf("B's content reached the client")
		}
		if n := b.Conns(); n != 0 {
			t.Errorf("upstream B saw %d connections, want 0", n)
		}
		rec := netdAudit(b.HostPort())
		if rec == nil {
			t.Fatalf("no netd audit record for %s:\n%s", b.HostPort(), netd.LogTail())
		}
		checkRecord(t, rec, map[string]any{
			"allow": false, "reason": "not_allowlisted", "verb": "CONNECT", "account": "default", "launch": "standing",
			"peer": peer, "level": "WARN", "why": "host not allowlisted: " + b.Name,
		})
	})

	t.Run("no netd, no fetch", func(t *testing.T) {
		netd.Stop()
		before := a.Conns()
		res := w.scout(t, scoutdDoor, "fetch", a.URL()+"/blob")
		if res.code == 0 {
			t.Fatalf("scout fetch %s succeeded with netd stopped (%d bytes): scoutd fell back to dialing itself", a.URL(), len(res.stdout))
		}
		// The box is told the door is down and how to start netd, never
		// the door's host path.
		want := "scout: upstream_unreachable: scoutd's egress door does not answer\nhint: netd, scoutd's egress door, does not answer: start it"
		if !strings.HasPrefix(res.stderr, want) || strings.Contains(res.stderr, netdDoor) {
			t.Errorf("stderr = %q, want %q and not the egress door's host path %s", res.stderr, want, netdDoor)
		}
		if res.stdout != "" {
			t.Errorf("stdout = %q, want nothing", clip(res.stdout))
		}
		if n := a.Conns(); n != before {
			t.Errorf("upstream A saw %d connections with netd stopped, want still %d", n, before)
		}
		if n := decoy.Conns(); n != 0 {
			t.Errorf("the decoy saw %d connections: scoutd dialed by itself", n)
		}
		// scoutd itself is still up; only its egress is gone.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := scoutd.Status(ctx); err != nil {
			t.Errorf("scoutd stopped answering: %v", err)
		}
	})
}

// newHostWorld is a world for a test that runs daemons and clients on the
// host only: it needs the named binaries and the test CA, not podman or the
// image.
func newHostWorld(t testing.TB, bins ...string) *world {
	t.Helper()
	shared.once.Do(func() { shared.s = build() })
	s := shared.s
	if s.ca == nil || s.dir == "" {
		harness.Need(t, s.what, s.err)
	}
	for _, b := range bins {
		s.bin(t, b)
	}
	home, err := os.MkdirTemp(s.dir, "h")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	w := &world{s: s, home: home, daemons: map[string]*harness.Daemon{}}
	w.caFile = filepath.Join(home, "ca.pem")
	if err := os.WriteFile(w.caFile, s.ca.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// scout runs the host's scout client against door with a clean environment.
func (w *world) scout(t testing.TB, door string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"--door", door}, args...)
	cmd := exec.CommandContext(ctx, w.s.bin(t, "scout"), argv...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.home}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: argv, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run scout: %v", err)
	}
	return r
}

// upstreamWithDecoy serves h as name on 127.0.0.1:PORT and decoyH on
// 127.0.0.2:PORT, the same port, retrying on a port taken on 127.0.0.2.
func upstreamWithDecoy(t testing.TB, ca *harness.CA, name string, h, decoyH http.Handler) (real, decoy *harness.Upstream) {
	t.Helper()
	var last error
	for range 10 {
		u, err := harness.StartUpstream("127.0.0.1:0", ca, name, h)
		if err != nil {
			t.Fatal(err)
		}
		d, err := harness.StartUpstream("127.0.0.2:"+strconv.Itoa(u.Port), ca, name, decoyH)
		if err != nil {
			u.Close()
			last = err
			continue
		}
		t.Cleanup(u.Close)
		t.Cleanup(d.Close)
		return u, d
	}
	t.Fatalf("no port free on both 127.0.0.1 and 127.0.0.2: %v", last)
	return nil, nil
}

// pidOf finds the process running bin with --socket socket (a daemon the
// harness started), by its command line.
func pidOf(t testing.TB, bin, socket string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(argv) < 4 || argv[0] != bin {
			continue
		}
		for i := 1; i+1 < len(argv); i++ {
			if argv[i] == "--socket" && argv[i+1] == socket {
				pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				if err != nil {
					t.Fatal(err)
				}
				return pid
			}
		}
	}
	t.Fatalf("no process runs %s --socket %s", bin, socket)
	return 0
}

// clip shortens s for a message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
