package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom/door"
	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
)

// A box looping on GetPublicKey cannot write a record per call: beyond the
// door's informational budget the calls are counted in audit_suppressed
// summaries, which with the records written add up to every call; GetStatus
// shares the budget; a commit made during the flood is written.
func TestInformationalCallsAreBudgeted(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, map[string]string{"repo": f.repo})
	ctx := ctx5(t)
	const calls = 300
	for range calls {
		if _, err := c.GetPublicKey(ctx, &keeperv1.GetPublicKeyRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.GetStatus(ctx, &keeperv1.GetStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.repo, "new"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx, &keeperv1.CommitRequest{Message: "m", All: true}); err != nil {
		t.Fatal(err)
	}
	live := f.m.Live()
	if len(live) != 1 || !f.m.Revoke(live[0].DoorID) {
		t.Fatalf("live doors %v, want the one to revoke", live)
	}

	written, commits, statuses := 0, 0, 0
	for _, r := range records(t, f.logs.String()) {
		switch r[keyOp] {
		case "public_key":
			written++
		case "commit":
			commits++
		case "status":
			statuses++
		}
	}
	suppressed := 0
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r["msg"] != door.AuditSuppressedMsg {
			continue
		}
		if r[door.KeyBudget] != door.BudgetInformational || r[door.KeyAllow] != true || r[door.KeyLaunch] != "L1" {
			t.Errorf("summary = %v", r)
		}
		// GetStatus shares the launch's informational budget.
		switch r[door.KeyMethod] {
		case keeperv1.KeeperService_GetPublicKey_FullMethodName:
			suppressed += int(r[door.KeySuppressed].(float64))
		case keeperv1.KeeperService_GetStatus_FullMethodName:
			statuses += int(r[door.KeySuppressed].(float64))
		default:
			t.Errorf("summary of a method that is not informational: %v", r)
		}
	}
	// The budget refills in real time: at most the burst plus what a few
	// seconds of refill can write, never all of them.
	if written < door.DefaultAuditBurst || written > door.DefaultAuditBurst+5*door.DefaultAuditRate {
		t.Errorf("public_key records written = %d, want the burst %d and little more", written, door.DefaultAuditBurst)
	}
	if written+suppressed != calls {
		t.Errorf("written %d + suppressed %d = %d, want exactly %d", written, suppressed, written+suppressed, calls)
	}
	if statuses != 1 {
		t.Errorf("status calls written or counted = %d, want 1", statuses)
	}
	if commits != 1 {
		t.Errorf("commit records = %d, want 1: a state-changing call is always written", commits)
	}
}
