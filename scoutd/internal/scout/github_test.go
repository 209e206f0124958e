package scout

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
)

const testToken = "ghp_SECRETtoken0123456789"

// fakeGitHub serves a few REST answers under /api/v3, like GitHub
// Enterprise, and redirects to show where the token may and may not go.
func fakeGitHub(t *testing.T, otherPort string) http.Handler {
	t.Helper()
	issue := map[string]any{
		"number": 1, "title": "Bug \x1b[31mred", "body": "body text", "state": "open",
		"user":       map[string]any{"login": "alice"},
		"labels":     []any{map[string]any{"name": "bug"}, map[string]any{"name": "p1"}},
		"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
		"html_url": "https://github.example/octo/r/issues/1",
	}
	pull := map[string]any{
		"number": 2, "title": "Fix", "body": "fixes #1", "state": "closed", "merged": true, "draft": false,
		"user":       map[string]any{"login": "bob"},
		"created_at": "2026-01-03T00:00:00Z", "updated_at": "2026-01-04T00:00:00Z", "closed_at": "2026-01-05T00:00:00Z",
		"head": map[string]any{"label": "bob:fix", "sha": strings.Repeat("a", 40)},
		"base": map[string]any{"label": "octo:main"},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/api/v3")
		switch {
		case p == "/repos/octo/r/issues/1":
			_ = json.NewEncoder(w).Encode(issue)
		case p == "/repos/octo/r/issues/1/comments" || p == "/repos/octo/r/issues/2/comments":
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			n := 100
			if page == 2 {
				n = 30
			} else if page > 2 {
				n = 0
			}
			var cs []any
			for i := range n {
				cs = append(cs, map[string]any{"user": map[string]any{"login": "c"}, "body": fmt.Sprintf("comment %d", (page-1)*100+i), "created_at": "2026-01-01T00:00:00Z"})
			}
			_ = json.NewEncoder(w).Encode(cs)
		case p == "/repos/octo/r/pulls/2":
			if r.Header.Get("Accept") == "application/vnd.github.diff" {
				_, _ = w.Write([]byte("diff --git a/x b/x\n+line\n"))
				return
			}
			_ = json.NewEncoder(w).Encode(pull)
		case p == "/repos/octo/moved/issues/1":
			http.Redirect(w, r, "/api/v3/repos/octo/r/issues/1", http.StatusMovedPermanently)
		case p == "/repos/octo/away/issues/1":
			http.Redirect(w, r, "https://other.test:"+otherPort+"/steal", http.StatusFound)
		case p == "/repos/octo/big/issues/1":
			_, _ = w.Write([]byte(`{"body":"` + strings.Repeat("x", 2<<20) + `"}`))
		default:
			http.NotFound(w, r)
		}
	})
}

func TestGitHubReads(t *testing.T) {
	e := newEnv(t)
	var other, api recorder
	_, otherPort := e.server(other.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	_, apiPort := e.server(api.wrap(fakeGitHub(t, otherPort)))
	s := e.scout([]string{"other.test:" + otherPort, "api.test:" + apiPort}, func(c *Config) {
		c.GitHubAPI = "https://api.test:" + apiPort + "/api/v3/"
		c.Token = testToken
		c.Limits.MaxBytes = 1 << 20
		c.Limits.MaxComments = 120
	})
	ctx := context.Background()

	is, err := s.Issue(ctx, IssueRequest{Repo: "octo/r", Number: 1, Comments: true})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if is.Title != "Bug \x1b[31mred" || is.Author != "alice" || is.State != "open" || strings.Join(is.Labels, ",") != "bug,p1" || is.CreatedAt != "2026-01-01T00:00:00Z" {
		t.Errorf("issue = %+v", is)
	}
	if len(is.Comments) != 120 || is.Comments[119].Body != "comment 119" {
		t.Errorf("comments = %d (capped at 120 expected)", len(is.Comments))
	}

	pr, err := s.PullRequest(ctx, PullRequestRequest{Repo: "octo/r", Number: 2, Diff: true, Comments: true})
	if err != nil {
		t.Fatalf("PullRequest: %v", err)
	}
	if pr.Head != "bob:fix" || pr.Base != "octo:main" || !pr.Merged || pr.HeadSHA != strings.Repeat("a", 40) || pr.Diff != "diff --git a/x b/x\n+line\n" || len(pr.Comments) != 120 {
		t.Errorf("pr = %+v", pr)
	}

	for _, tc := range []struct {
		name   string
		req    IssueRequest
		reason string
	}{
		{"not found", IssueRequest{Repo: "octo/none", Number: 1}, ReasonNotFound},
		{"bad repo", IssueRequest{Repo: "octo/../x", Number: 1}, ReasonBadRequest},
		{"bad repo chars", IssueRequest{Repo: "octo/r?x=1", Number: 1}, ReasonBadRequest},
		{"bad number", IssueRequest{Repo: "octo/r", Number: 0}, ReasonBadRequest},
		{"redirect off the api", IssueRequest{Repo: "octo/away", Number: 1}, ReasonRedirectOffAPI},
		{"too large", IssueRequest{Repo: "octo/big", Number: 1}, ReasonTooLarge},
		{"repo caveat", IssueRequest{Repo: "octo/r", Number: 1, Caveats: []guestroom.Caveat{{Key: "repo", Value: "octo/other"}}}, ReasonCaveatDenied},
		{"host caveat", IssueRequest{Repo: "octo/r", Number: 1, Caveats: []guestroom.Caveat{{Key: "host", Value: "docs.example.com"}}}, ReasonCaveatDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Issue(ctx, tc.req)
			if err == nil {
				t.Fatalf("Issue succeeded, want %s", tc.reason)
			}
			if got := reasonOf(t, err); got != tc.reason {
				t.Fatalf("reason = %s (%v), want %s", got, err, tc.reason)
			}
		})
	}
	if _, err := s.Issue(ctx, IssueRequest{Repo: "octo/r", Number: 1, Caveats: []guestroom.Caveat{{Key: "repo", Value: "OCTO/R"}, {Key: "host", Value: "api.test"}}}); err != nil {
		t.Errorf("caveats that cover the request: %v", err)
	}
	// A same-host redirect is followed, without the token.
	if _, err := s.Issue(ctx, IssueRequest{Repo: "octo/moved", Number: 1}); err != nil {
		t.Errorf("moved: %v", err)
	}
	// Fetching the API host as a plain URL carries no token.
	var bw bufWriter
	if _, _, err := s.Fetch(ctx, FetchRequest{URL: "https://api.test:" + apiPort + "/api/v3/repos/octo/r/issues/1"}, &bw); err != nil {
		t.Errorf("fetch api url: %v", err)
	}
	if _, _, err := s.Fetch(ctx, FetchRequest{URL: "https://other.test:" + otherPort + "/"}, &bw); err != nil {
		t.Errorf("fetch other: %v", err)
	}

	// Where did the token go? Only to the API, on first hops.
	api.mu.Lock()
	urls := append([]string(nil), api.urls...)
	api.mu.Unlock()
	for i, h := range api.headers() {
		auth := h.Get("Authorization")
		switch {
		case urls[i] == "/api/v3/repos/octo/moved/issues/1" && auth != "Bearer "+testToken:
			t.Errorf("first hop to the api lacked the token")
		case strings.Contains(urls[i], "/repos/octo/r/issues/1") && !strings.Contains(urls[i], "comments") && auth != "" && h.Get("Accept") == "*/*":
			t.Errorf("plain fetch of the api carried a token")
		}
	}
	moved := 0
	for i, h := range api.headers() {
		if urls[i] == "/api/v3/repos/octo/r/issues/1" && h.Get("Authorization") == "" {
			moved++
		}
	}
	if moved != 2 { // the redirected hop and the plain fetch
		t.Errorf("%d untokened requests to issues/1, want 2 (redirect hop and plain fetch)", moved)
	}
	for _, h := range other.headers() {
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, testToken) {
					t.Errorf("other server saw the token in %s", k)
				}
			}
		}
	}
	if other.count() != 1 {
		t.Errorf("other server saw %d requests, want 1 (the plain fetch, not the redirect)", other.count())
	}
}
