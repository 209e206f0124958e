package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// TestHarnessNetdStandingDoor checks the pieces under the launcher: a netd
// standing door bind-mounted into a container with no network, `netd relay`
// in the box, and a TLS request through it to a loopback upstream, verified
// against the test CA. It runs the box as root because a standing door is
// not minted for the box's uid; the launcher tests cover the real floor.
func TestHarnessNetdStandingDoor(t *testing.T) {
	w := newHarnessWorld(t)
	allowed := harness.NewUpstream(t, w.s.ca, "allowed.test", harness.Text("hello through a standing door"))
	denied := harness.NewUpstream(t, w.s.ca, "denied.test", harness.Text("no"))
	standing := filepath.Join(w.home, "standing", "netd.sock")
	args := []string{"--allow", allowed.HostPort(), "--door", standing}
	args = append(args, loopbackPolicy(allowed.Name, denied.Name)...)
	w.start(t, "netd", args)

	script := strings.Join([]string{
		"netd relay --listen 127.0.0.1:3128 --door /run/doors/netd.sock &",
		"probe wait -dial 127.0.0.1:3128 >/dev/null",
		"export HTTPS_PROXY=http://127.0.0.1:3128",
		"probe https -url " + allowed.URL() + "/",
		"probe https -url " + denied.URL() + "/",
	}, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := w.s.podman.CLI(ctx, "run", "--rm", "--network=none", "--user", "0:0", "--cap-drop=all",
		"-v", standing+":/run/doors/netd.sock", "--entrypoint", "/bin/sh", w.s.image.Ref, "-c", script)
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	var reports []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "PROBE ") {
			reports = append(reports, line)
		}
	}
	if len(reports) != 2 {
		t.Fatalf("want 2 probe reports, got:\n%s", out)
	}
	ok, _ := parseProbe(reports[0])
	if ok.HTTP == nil || ok.HTTP.Status != 200 || ok.HTTP.Body != "hello through a standing door" {
		t.Errorf("allowed: %+v", ok.HTTP)
	}
	no, _ := parseProbe(reports[1])
	if no.HTTP == nil || !strings.Contains(no.HTTP.Err, "Forbidden") {
		t.Errorf("denied: %+v", no.HTTP)
	}
	if n := denied.Conns(); n != 0 {
		t.Errorf("denied upstream saw %d connections", n)
	}
}
