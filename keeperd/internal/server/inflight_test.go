package server

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
)

// A box cannot make keeperd queue an unbounded number of its requests
// (each holding its message in memory behind the repository lock): past
// MaxInFlightPerLaunch the next request is refused at once, another launch
// is served, and the launch is served again when its requests end.
func TestInFlightCapPerLaunch(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, map[string]string{"repo": f.repo})
	ctx := ctx5(t)
	var releases []func()
	for range MaxInFlightPerLaunch {
		rel, err := f.srv.enter("L1")
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, rel)
	}
	os.WriteFile(filepath.Join(f.repo, "README"), []byte("changed\n"), 0o644)
	_, err := c.Commit(ctx, &keeperv1.CommitRequest{Message: "m", All: true})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("commit of a saturated launch: %v, want ResourceExhausted", err)
	}
	if rel, err := f.srv.enter("L2"); err != nil {
		t.Fatalf("another launch: %v", err)
	} else {
		rel()
	}
	for _, rel := range releases {
		rel()
	}
	if _, err := c.Commit(ctx, &keeperv1.CommitRequest{Message: "m", All: true}); err != nil {
		t.Fatalf("commit after the launch's requests ended: %v", err)
	}
	recs := records(t, f.logs.String())
	if len(recs) != 2 || recs[0][keyOp] != "commit" || recs[0]["reason"] != ReasonRateLimited || recs[1]["reason"] != ReasonOK {
		t.Fatalf("audit records = %v", recs)
	}
}
