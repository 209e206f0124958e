package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
)

// A box cannot write megabytes into the host's audit log with one request:
// what it asked for is recorded truncated.
func TestAuditIsBounded(t *testing.T) {
	sc, err := scout.New(scout.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	srv := New(sc, slog.New(slog.NewJSONHandler(&logs, nil)), "test")
	huge := strings.Repeat("o", 1<<20)
	if _, err := srv.GetIssue(context.Background(), &scoutv1.GetIssueRequest{Repo: huge + "/r", Number: 1}); err == nil {
		t.Fatal("issue of a malformed repository succeeded")
	}
	if _, err := srv.GetPullRequest(context.Background(), &scoutv1.GetPullRequestRequest{Repo: "o/" + huge, Number: 1}); err == nil {
		t.Fatal("pull request of a malformed repository succeeded")
	}
	logs.mu.Lock()
	out := logs.b.String()
	logs.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d audit records, want 2", len(lines))
	}
	for _, l := range lines {
		if len(l) > 4096 {
			t.Fatalf("audit record of %d bytes", len(l))
		}
	}
}
