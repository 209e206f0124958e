package e2e

import (
	"strconv"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// TestPolicedEgress: with --net a box reaches an allowlisted HTTPS upstream
// through the proxy (TLS end to end, verified against the test CA), and
// busybox wget reaches an allowlisted plain-HTTP one; a name off the list
// gets 403 and its server sees nothing; netd's audit records name the
// account and the launch.
func TestPolicedEgress(t *testing.T) {
	w := newWorld(t)
	allowed := harness.NewUpstream(t, w.s.ca, "allowed.test", harness.Text("hello through netd"))
	plain := harness.NewUpstream(t, nil, "plain.test", harness.Text("hello over plain http"))
	denied := harness.NewUpstream(t, w.s.ca, "denied.test", harness.Text("must not be reached"))
	netd := w.startNetd(t, []*harness.Upstream{allowed, plain}, denied)

	ok := w.ok(t, "e2e-egress", "--net", "--", "probe", "https", "-url", allowed.URL()+"/hello")
	r := ok.probe(t)
	if r.HTTP == nil || r.HTTP.Status != 200 || r.HTTP.Body != "hello through netd" {
		t.Fatalf("GET %s through the proxy = %+v\n%s", allowed.URL(), r.HTTP, ok)
	}
	if n := allowed.Conns(); n != 1 {
		t.Errorf("allowed upstream saw %d connections, want 1", n)
	}

	no := w.ok(t, "e2e-egress", "--net", "--", "probe", "https", "-url", denied.URL()+"/")
	d := no.probe(t)
	if d.HTTP == nil || !strings.Contains(d.HTTP.Err, "Forbidden") {
		t.Errorf("GET %s = %+v, want the proxy's 403 Forbidden", denied.URL(), d.HTTP)
	}
	if n := denied.Conns(); n != 0 {
		t.Errorf("denied upstream saw %d connections, want 0", n)
	}

	wget := w.ok(t, "e2e-egress", "--net", "--", "wget", "-q", "-O", "-", plain.URL()+"/")
	if !strings.Contains(wget.stdout, "hello over plain http") {
		t.Errorf("busybox wget through http_proxy failed\n%s", wget)
	}

	// Policed is not open: the same box reaches nothing except through the
	// door. No lookups, no direct connection to the allowed upstream.
	direct := w.ok(t, "e2e-egress", "--net", "--", "probe", "net", "-dns", allowed.Name, "-dial", allowed.Addr, "-dial", "host.containers.internal:"+strconv.Itoa(allowed.Port)).probe(t)
	if len(direct.Interfaces) != 1 || direct.Interfaces[0] != "lo" {
		t.Errorf("a --net box has interfaces %v, want only lo", direct.Interfaces)
	}
	if got := direct.DNS[allowed.Name]; !strings.HasPrefix(got, "error: ") {
		t.Errorf("a --net box resolved %s to %q by itself", allowed.Name, got)
	}
	for a, got := range direct.Dial {
		if got == "ok" {
			t.Errorf("a --net box dialed %s directly", a)
		}
	}
	if n := allowed.Conns(); n != 1 {
		t.Errorf("allowed upstream saw %d connections after the direct attempts, want still 1", n)
	}

	// The audit trail names the account and a launch for both decisions.
	var allow, deny map[string]any
	for _, rec := range netd.Records() {
		if rec["msg"] != "audit" {
			continue
		}
		blob := strings.ToLower(jsonish(rec))
		switch {
		case strings.Contains(blob, "allowed.test") && allow == nil:
			allow = rec
		case strings.Contains(blob, "denied.test") && deny == nil:
			deny = rec
		}
	}
	launches := map[string]string{"allow": r.Launch, "deny": d.Launch}
	for name, rec := range map[string]map[string]any{"allow": allow, "deny": deny} {
		if rec == nil {
			t.Errorf("no %s audit record in netd's log:\n%s", name, netd.LogTail())
			continue
		}
		if rec["account"] != "e2e-egress" {
			t.Errorf("%s audit record account = %v, want e2e-egress: %v", name, rec["account"], rec)
		}
		if s, _ := rec["launch"].(string); s == "" || s != launches[name] {
			t.Errorf("%s audit record launch = %q, want the box's launch %q: %v", name, s, launches[name], rec)
		}
	}
	if deny != nil && deny["allow"] != false {
		t.Errorf("deny audit record allow = %v, want false", deny["allow"])
	}
}
