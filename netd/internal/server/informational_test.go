package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// A box looping on CheckTarget for an allowed host cannot write a record
// per call: beyond the door's informational budget the calls are counted in
// audit_suppressed summaries, which with the records written add up to
// every call. Its refusals keep their own budget, and a tunnel opened
// during the flood is written.
func TestInformationalCallsAreBudgeted(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const calls, denied = 300, 10
	for i := range calls {
		if _, err := f.doors["a"].CheckTarget(ctx, &netv1.CheckTargetRequest{Target: "echo.test:" + itoa(f.port)}); err != nil {
			t.Fatal(err)
		}
		if i%(calls/denied) == 0 {
			if _, err := f.doors["a"].CheckTarget(ctx, &netv1.CheckTargetRequest{Target: "echo.test:443"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, v := f.open(t, ctx, "a")
	if v.GetDecision() != netv1.Decision_DECISION_ALLOW {
		t.Fatalf("tunnel verdict %v", v)
	}
	_ = st.CloseSend()
	for {
		if _, err := st.Recv(); err != nil {
			break
		}
	}
	revoked := false
	for _, d := range f.m.Live() {
		if d.LaunchID == "a" {
			revoked = f.m.Revoke(d.DoorID)
		}
	}
	if !revoked {
		t.Fatal("door a was not live")
	}

	written, refused, tunnels, suppressed := 0, 0, 0, 0
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r[door.KeyLaunch] != "a" {
			continue
		}
		switch {
		case r["msg"] == door.AuditMsg && r[door.KeyMethod] == "CheckTarget" && r[door.KeyAllow] == true:
			written++
		case r["msg"] == door.AuditMsg && r[door.KeyMethod] == "CheckTarget":
			refused++
		case r["msg"] == door.AuditMsg && r[door.KeyMethod] == methodTunnel && r[door.KeyAllow] == true:
			tunnels++
		case r["msg"] == door.AuditSuppressedMsg:
			if r[door.KeyMethod] != "CheckTarget" || r[door.KeyBudget] != door.BudgetInformational || r[door.KeyAllow] != true {
				t.Errorf("summary = %v", r)
			}
			suppressed += int(r[door.KeySuppressed].(float64))
		}
	}
	// The budget refills in real time: at most the burst plus what a few
	// seconds of refill can write, never all of them.
	if written < door.DefaultAuditBurst || written > door.DefaultAuditBurst+5*door.DefaultAuditRate {
		t.Errorf("allowed CheckTarget records written = %d, want the burst %d and little more", written, door.DefaultAuditBurst)
	}
	if written+suppressed != calls {
		t.Errorf("written %d + suppressed %d = %d, want exactly %d", written, suppressed, written+suppressed, calls)
	}
	if refused != denied {
		t.Errorf("refused CheckTarget records = %d, want every one of %d (their own budget)", refused, denied)
	}
	if tunnels < 1 {
		t.Errorf("no tunnel record: a state-changing call is always written")
	}
}
