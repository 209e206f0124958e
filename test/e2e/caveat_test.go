package e2e

import (
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// TestCaveatsNarrowALaunch: a net door minted with a host= caveat admits
// only that host for this launch, although netd's policy allows more; the
// manifest and the rulebook say so; the other host's server sees nothing.
// The upstreams listen on 127.0.0.2:443 and 127.0.0.3:443 because a door
// spec's caveat cannot name a port (':' separates caveats), so the caveat
// admits the default ports.
func TestCaveatsNarrowALaunch(t *testing.T) {
	w := newWorld(t)
	inside := harness.NewUpstreamOn(t, "127.0.0.2:443", w.s.ca, "inside.test", harness.Text("inside the caveat"))
	outside := harness.NewUpstreamOn(t, "127.0.0.3:443", w.s.ca, "outside.test", harness.Text("outside the caveat"))
	netd := w.start(t, "netd", []string{"--allow", "inside.test,outside.test",
		"--resolve", "inside.test=127.0.0.2", "--resolve", "outside.test=127.0.0.3", "--allow-private", "127.0.0.0/29"})

	in := w.ok(t, "e2e-caveat", "--door", "net:host=inside.test", "--", "sh", "-c",
		"probe surface; probe https -url https://inside.test/; probe https -url https://outside.test/")
	var reports []string
	for _, line := range strings.Split(in.stdout, "\n") {
		if strings.HasPrefix(line, "PROBE ") {
			reports = append(reports, line)
		}
	}
	if len(reports) != 3 {
		t.Fatalf("want 3 probe reports\n%s", in)
	}
	surface, _ := parseProbe(reports[0])
	ok, _ := parseProbe(reports[1])
	no, _ := parseProbe(reports[2])

	m := manifest(t, surface)
	if len(m.Doors) != 1 || m.Doors[0].Name != "net" || len(m.Doors[0].Caveats) != 1 || m.Doors[0].Caveats[0].String() != "host=inside.test" {
		t.Errorf("manifest doors = %+v, want net restricted to host=inside.test", m.Doors)
	}
	if rb := surface.Files["/tmp/rulebook.txt"]; !strings.Contains(rb, "RESTRICTED to: host=inside.test") {
		t.Errorf("rulebook does not state the restriction:\n%s", rb)
	}
	if ok.HTTP == nil || ok.HTTP.Status != 200 || ok.HTTP.Body != "inside the caveat" {
		t.Errorf("GET https://inside.test/ = %+v", ok.HTTP)
	}
	if no.HTTP == nil || !strings.Contains(no.HTTP.Err, "Forbidden") {
		t.Errorf("GET https://outside.test/ = %+v, want 403 Forbidden", no.HTTP)
	}
	if n := outside.Conns(); n != 0 {
		t.Errorf("outside.test saw %d connections, want 0", n)
	}
	if n := inside.Conns(); n != 1 {
		t.Errorf("inside.test saw %d connections, want 1", n)
	}
	var reason any
	for _, rec := range netd.Records() {
		if rec["msg"] == "audit" && rec["launch"] == no.Launch && rec["host"] == "outside.test" {
			reason = rec["reason"]
		}
	}
	if reason != "caveat_denied" {
		t.Errorf("netd's audit reason for outside.test = %v, want caveat_denied\n%s", reason, netd.LogTail())
	}
}

// TestScoutCaveatsNarrowALaunch: scout doors minted with repo= and host=
// caveats read only inside them, although scoutd's policy allows more, and
// nothing outside them is fetched.
func TestScoutCaveatsNarrowALaunch(t *testing.T) {
	w := newWorld(t)
	inside := harness.NewUpstream(t, w.s.ca, "inside.test", harness.Text("inside the caveat"))
	outside := harness.NewUpstream(t, w.s.ca, "outside.test", harness.Text("outside the caveat"))
	api := harness.NewGitHubAPI(t, w.s.ca, "api.github.test", map[string]harness.Issue{
		"octo/hello#1": {Number: 1, Title: "hello issue", State: "open"},
		"octo/other#2": {Number: 2, Title: "other issue", State: "open"},
	})
	w.startScoutd(t, api, "ghp_e2eCaveatToken", inside, outside)

	repo := w.claudeBox(t, "e2e-scout-caveat", "--door", "scout:repo=octo/hello", "--", "sh", "-c",
		"scout issue octo/hello#1; echo RC1=$?; scout issue octo/other#2; echo RC2=$?")
	if !strings.Contains(repo.stdout, "hello issue") || !strings.Contains(repo.stdout, "RC1=0") {
		t.Errorf("issue inside repo=octo/hello failed\n%s", repo)
	}
	if strings.Contains(repo.stdout, "other issue") || strings.Contains(repo.stdout, "RC2=0") {
		t.Errorf("issue outside repo=octo/hello was read\n%s", repo)
	}
	for _, req := range api.Requests() {
		if strings.Contains(req.Path, "/octo/other/") {
			t.Errorf("the API was asked for %s despite the caveat", req.Path)
		}
	}

	host := w.claudeBox(t, "e2e-scout-caveat", "--door", "scout:host=inside.test", "--", "sh", "-c",
		"scout fetch "+inside.URL()+"/; echo; echo RC1=$?; scout fetch "+outside.URL()+"/; echo RC2=$?")
	if !strings.Contains(host.stdout, "inside the caveat") || !strings.Contains(host.stdout, "RC1=0") {
		t.Errorf("fetch inside host=inside.test failed\n%s", host)
	}
	if strings.Contains(host.stdout, "outside the caveat") || strings.Contains(host.stdout, "RC2=0") {
		t.Errorf("fetch outside host=inside.test succeeded\n%s", host)
	}
	if n := outside.Conns(); n != 0 {
		t.Errorf("outside.test saw %d connections, want 0", n)
	}
	if !strings.Contains(host.stderr+repo.stderr, "caveat") {
		t.Errorf("the refusals do not name the caveat\n%s\n%s", repo, host)
	}
}
