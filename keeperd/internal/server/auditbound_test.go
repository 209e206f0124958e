package server

import (
	"strings"
	"testing"

	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
)

// A box cannot write megabytes into the host's audit log with one request:
// what it asked for is recorded truncated.
func TestAuditIsBounded(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, map[string]string{"repo": f.repo})
	ctx := ctx5(t)
	huge := strings.Repeat("x", 1<<20)
	if _, err := c.Push(ctx, &keeperv1.PushRequest{Remote: huge}); err == nil {
		t.Fatal("push to a huge remote name succeeded")
	}
	if _, err := c.Commit(ctx, &keeperv1.CommitRequest{Message: "m", Paths: []string{"../" + huge}}); err == nil {
		t.Fatal("commit of a huge path succeeded")
	}
	if _, err := c.Sign(ctx, &keeperv1.SignRequest{Namespace: huge, Payload: []byte("x")}); err == nil {
		t.Fatal("sign in a huge namespace succeeded")
	}
	for _, l := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		if len(l) > 8192 {
			t.Fatalf("audit record of %d bytes", len(l))
		}
	}
}
