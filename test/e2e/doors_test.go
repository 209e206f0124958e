package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/test/internal/harness"
	"github.com/bounded-systems/claude-box/test/internal/probe"
)

// Door daemons as the launcher names them, with the socket each one's door
// gets inside a box.
var boxSockets = map[string]string{
	"netd":    "/run/doors/netd.sock",
	"keeperd": "/run/doors/keeperd.sock",
	"scoutd":  "/run/doors/scoutd.sock",
}

// loopbackPolicy are the flags that let a daemon reach the suite's loopback
// upstreams under their test names.
func loopbackPolicy(names ...string) []string {
	args := []string{"--allow-private", "127.0.0.1/32"}
	for _, n := range names {
		args = append(args, "--resolve", n+"=127.0.0.1")
	}
	return args
}

// startScoutd starts scoutd with a policy that allows the given upstreams.
func (w *world) startScoutd(t testing.TB, api *harness.GitHubAPI, token string, allowed ...*harness.Upstream) *harness.Daemon {
	t.Helper()
	return w.startScoutdArgs(t, api, token, nil, allowed...)
}

// startScoutdArgs is startScoutd with extra serve flags.
func (w *world) startScoutdArgs(t testing.TB, api *harness.GitHubAPI, token string, extra []string, allowed ...*harness.Upstream) *harness.Daemon {
	t.Helper()
	var hosts, names []string
	for _, u := range allowed {
		hosts = append(hosts, u.HostPort())
		names = append(names, u.Name)
	}
	args := append([]string{}, extra...)
	if len(hosts) > 0 {
		args = append(args, "--allow", strings.Join(hosts, ","))
	}
	env := []string{}
	if api != nil {
		names = append(names, api.Name)
		args = append(args, "--github-api", api.URL())
		tokenFile := filepath.Join(w.home, "scout-token")
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--token-file", tokenFile)
	}
	args = append(args, loopbackPolicy(names...)...)
	return w.start(t, "scoutd", args, env...)
}

// startNetd starts netd allowing exactly the given upstreams (host:port).
func (w *world) startNetd(t testing.TB, allowed []*harness.Upstream, known ...*harness.Upstream) *harness.Daemon {
	t.Helper()
	var entries, names []string
	for _, u := range allowed {
		entries = append(entries, u.HostPort())
		names = append(names, u.Name)
	}
	for _, u := range known {
		names = append(names, u.Name)
	}
	var args []string
	if len(entries) > 0 {
		args = append(args, "--allow", strings.Join(entries, ","))
	}
	args = append(args, loopbackPolicy(names...)...)
	return w.start(t, "netd", args)
}

// hostSockets lists every unix socket under the world's HOME.
func (w *world) hostSockets(t testing.TB) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(w.home, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSocket != 0 {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// manifest parses $CLAUDE_BOX_CAPABILITIES from a probe report.
func manifest(t testing.TB, r probe.Report) guestroom.Manifest {
	t.Helper()
	raw, ok := r.Env["CLAUDE_BOX_CAPABILITIES"]
	if !ok {
		t.Fatalf("no CLAUDE_BOX_CAPABILITIES in the box's environment")
	}
	m, err := guestroom.ParseManifest([]byte(raw))
	if err != nil {
		t.Fatalf("CLAUDE_BOX_CAPABILITIES: %v\n%s", err, raw)
	}
	return m
}

// launchID is the launch id the box was told ($CLAUDE_BOX_LAUNCH).
func launchID(t testing.TB, r probe.Report) string {
	t.Helper()
	id := r.Env["CLAUDE_BOX_LAUNCH"]
	if id == "" {
		t.Fatalf("no CLAUDE_BOX_LAUNCH in the box's environment")
	}
	return id
}
