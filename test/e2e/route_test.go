package e2e

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// hostAddrs lists the host's non-loopback IPv4 addresses.
func hostAddrs(t testing.TB) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil {
			continue
		}
		out = append(out, ipn.IP.String())
	}
	return out
}

// TestNoDoorNoRoute: a box granted no door has only lo, resolves nothing,
// reaches no host address (not the loopback port an upstream listens on, not
// the host's own addresses, not podman's gateway, not
// host.containers.internal), and the upstream sees zero connections.
func TestNoDoorNoRoute(t *testing.T) {
	w := newWorld(t)
	up := harness.NewUpstreamOn(t, "0.0.0.0:0", nil, "upstream.test", harness.Text("you should not see this"))
	port := strconv.Itoa(up.Port)

	targets := []string{"127.0.0.1:" + port, "10.88.0.1:" + port, "host.containers.internal:" + port, "upstream.test:" + port}
	for _, a := range hostAddrs(t) {
		targets = append(targets, net.JoinHostPort(a, port))
	}
	args := []string{"e2e-noroute", "--", "probe", "net", "-dns", "claude-box-e2e.invalid", "-dns", "upstream.test"}
	for _, tg := range targets {
		args = append(args, "-dial", tg)
	}
	r := w.ok(t, args...).probe(t)

	if len(r.Interfaces) != 1 || r.Interfaces[0] != "lo" {
		t.Errorf("interfaces = %v, want only lo", r.Interfaces)
	}
	for name, got := range r.DNS {
		if !strings.HasPrefix(got, "error: ") {
			t.Errorf("%s resolved to %q in a box with no network", name, got)
		}
	}
	for _, tg := range targets {
		if got := r.Dial[tg]; got == "ok" || got == "" {
			t.Errorf("dial %s = %q, want a failure", tg, got)
		}
	}
	if n := up.Conns(); n != 0 {
		t.Errorf("upstream saw %d connections, want 0", n)
	}
}
