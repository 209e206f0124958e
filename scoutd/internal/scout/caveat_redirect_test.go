package scout

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
)

// A repo= caveat holds across redirects: a repository that redirects to
// another one (a renamed repository, or a host the box's author controls)
// does not carry a launch narrowed to it into the other.
func TestSnapshotRepoCaveatHoldsAcrossRedirects(t *testing.T) {
	_, root := gitRepo(t, 3)
	e := newEnv(t)
	git := gitHandler(root)
	_, port := e.server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/octo/allowed.git/"); ok {
			u := "/octo/r.git/" + rest
			if r.URL.RawQuery != "" {
				u += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, u, http.StatusMovedPermanently)
			return
		}
		git.ServeHTTP(w, r)
	}))
	s := e.scout([]string{"git.test:" + port}, nil)
	caveats := []guestroom.Caveat{{Key: "repo", Value: "octo/allowed"}}
	var buf bytes.Buffer
	_, err := s.Snapshot(context.Background(), SnapshotRequest{URL: "https://git.test:" + port + "/octo/allowed.git", Caveats: caveats}, &buf)
	if err == nil {
		t.Fatal("snapshot through a redirect to another repository succeeded")
	}
	if got := reasonOf(t, err); got != ReasonCaveatDenied {
		t.Fatalf("reason = %s (%v), want %s", got, err, ReasonCaveatDenied)
	}
	// Without the caveat the same redirect is followed (the host is allowed).
	buf.Reset()
	if _, err := s.Snapshot(context.Background(), SnapshotRequest{URL: "https://git.test:" + port + "/octo/allowed.git"}, &buf); err != nil {
		t.Fatalf("uncaveated snapshot through the redirect: %v", err)
	}
}
