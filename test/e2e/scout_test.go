package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// TestReadsGoThroughScout: `scout fetch`, `scout repo` and `scout issue`
// return the loopback upstreams' content; a URL off the allowlist is refused
// and its server sees nothing; the read token reaches the fake GitHub API and
// no other server.
func TestReadsGoThroughScout(t *testing.T) {
	w := newWorld(t)
	const token = "ghp_e2eScoutReadToken"
	content := harness.NewUpstream(t, w.s.ca, "content.test", harness.Text("scouted content"))
	denied := harness.NewUpstream(t, w.s.ca, "denied.test", harness.Text("must not be read"))
	src := harness.NewRepo(t, map[string]string{"README.md": "snapshot readme\n", "dir/file.txt": "nested\n"})
	gitRoot := t.TempDir()
	harness.NewBareRepo(t, gitRoot, "repo", src)
	git := harness.NewGitServer(t, w.s.ca, "git.test", gitRoot)
	api := harness.NewGitHubAPI(t, w.s.ca, "api.github.test", map[string]harness.Issue{
		"octo/hello#1": {Number: 1, Title: "e2e issue title", Body: "e2e issue body", State: "open"},
	})
	// denied.test resolves for scoutd, so only the allowlist stands between.
	w.startScoutd(t, api, token, content, git.Upstream)
	_ = denied

	script := strings.Join([]string{
		"scout fetch " + content.URL() + "/page; echo; echo SCOUT_FETCH_RC=$?",
		"scout repo " + git.URL() + "/repo.git /tmp/snap && cat /tmp/snap/README.md /tmp/snap/dir/file.txt; echo SCOUT_REPO_RC=$?",
		"scout issue octo/hello#1; echo SCOUT_ISSUE_RC=$?",
		"scout fetch " + denied.URL() + "/; echo SCOUT_DENIED_RC=$?",
		"if test -e /tmp/snap/.git; then echo SNAPSHOT_HAS_DOT_GIT; fi",
	}, "\n")
	res := w.ok(t, "e2e-scout", "--scout", "--", "sh", "-c", script)

	for _, want := range []string{"scouted content", "snapshot readme", "nested", "e2e issue title", "SCOUT_FETCH_RC=0", "SCOUT_REPO_RC=0", "SCOUT_ISSUE_RC=0"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("box output lacks %q\n%s", want, res)
		}
	}
	if strings.Contains(res.stdout, "SCOUT_DENIED_RC=0") || strings.Contains(res.stdout, "must not be read") {
		t.Errorf("scout fetched a host off the allowlist\n%s", res)
	}
	if strings.Contains(res.stdout, "SNAPSHOT_HAS_DOT_GIT") {
		t.Errorf("the snapshot carries .git\n%s", res)
	}
	if !strings.Contains(res.stderr+res.stdout, "not allowlisted") {
		t.Errorf("the refusal does not say the host is not allowlisted\n%s", res)
	}
	if n := denied.Conns(); n != 0 {
		t.Errorf("the denied server saw %d connections, want 0", n)
	}
	auths := api.Authorizations()
	if len(auths) == 0 {
		t.Fatal("the fake GitHub API saw no request")
	}
	for _, a := range auths {
		if !strings.Contains(a, token) {
			t.Errorf("a GitHub API request carried Authorization %q, want the token", a)
		}
	}
	for _, u := range []*harness.Upstream{content, git.Upstream, denied} {
		for _, req := range u.Requests() {
			for k, vs := range req.Header {
				for _, v := range vs {
					if strings.Contains(v, token) {
						t.Errorf("%s saw the token in %s on %s %s", u.Name, k, req.Method, req.Path)
					}
				}
			}
		}
	}
	if strings.Contains(res.stdout+res.stderr, token) {
		t.Errorf("the token reached the box's output")
	}
	if b, err := os.ReadFile(w.daemons["scoutd"].LogPath); err != nil || strings.Contains(string(b), token) {
		t.Errorf("scoutd's log contains the token (or cannot be read: %v)", err)
	}
}
