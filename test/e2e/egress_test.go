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

	// curl, the client agents actually use, through HTTPS_PROXY with
	// certificate verification against the image's trust store.
	w.s.tool(t, "curl")
	cu := w.ok(t, "e2e-egress", "--net", "--", "curl", "-sS", "--fail", allowed.URL()+"/curl")
	if cu.stdout != "hello through netd" {
		t.Errorf("curl through HTTPS_PROXY = %q\n%s", cu.stdout, cu)
	}
	cd := w.claudeBox(t, "e2e-egress", "--net", "--", "curl", "-sS", "--fail", denied.URL()+"/curl")
	if cd.code == 0 || !strings.Contains(cd.stderr, "403") {
		t.Errorf("curl to a denied name: exit %d, want a failure naming the proxy's 403\n%s", cd.code, cd)
	}
	if n := allowed.Conns(); n != 2 {
		t.Errorf("allowed upstream saw %d connections, want 2", n)
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
	if n := allowed.Conns(); n != 2 {
		t.Errorf("allowed upstream saw %d connections after the direct attempts, want still 2", n)
	}

	// The audit trail names the account and the launch of each decision.
	find := func(launch, host string) map[string]any {
		for _, rec := range netd.Records() {
			if rec["msg"] == "audit" && rec["launch"] == launch && strings.Contains(strings.ToLower(jsonish(rec)), host) {
				return rec
			}
		}
		return nil
	}
	if r.Launch == "" || d.Launch == "" || r.Launch == d.Launch {
		t.Fatalf("want two distinct launch ids from $CLAUDE_BOX_LAUNCH, got %q and %q", r.Launch, d.Launch)
	}
	allow, deny := find(r.Launch, "allowed.test"), find(d.Launch, "denied.test")
	for name, rec := range map[string]map[string]any{"allow": allow, "deny": deny} {
		if rec == nil {
			t.Errorf("no %s audit record for its launch in netd's log:\n%s", name, netd.LogTail())
			continue
		}
		if rec["account"] != "e2e-egress" {
			t.Errorf("%s audit record account = %v, want e2e-egress: %v", name, rec["account"], rec)
		}
	}
	if deny != nil && deny["reason"] != "not_allowlisted" {
		t.Errorf("deny audit record reason = %v, want not_allowlisted", deny["reason"])
	}
	if allow != nil && allow["allow"] != true {
		t.Errorf("allow audit record allow = %v, want true", allow["allow"])
	}
	if deny != nil && deny["allow"] != false {
		t.Errorf("deny audit record allow = %v, want false", deny["allow"])
	}
}
