package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
)

// A box looping on GetStatus cannot write a record per call: beyond the
// door's informational budget the calls are counted in audit_suppressed
// summaries, which with the records written add up to every call.
func TestInformationalCallsAreBudgeted(t *testing.T) {
	sc, err := scout.New(scout.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	srv := New(sc, slog.New(slog.NewJSONHandler(&logs, nil)), "test")
	dir, err := os.MkdirTemp("/tmp", "scin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m, err := door.NewMinter(door.MinterConfig{Door: "scout", Dir: filepath.Join(dir, "d"), Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Register: srv.Register, Informational: Informational()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	md, err := m.Mint(context.Background(), door.MintRequest{LaunchID: "L", Account: "acct", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := door.Dial(md.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	c := scoutv1.NewScoutServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	const calls = 300
	for range calls {
		if _, err := c.GetStatus(ctx, &scoutv1.GetStatusRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if !m.Revoke(md.DoorID) {
		t.Fatal("door was not live")
	}

	logs.mu.Lock()
	out := logs.b.String()
	logs.mu.Unlock()
	written, suppressed := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case r["msg"] == door.AuditMsg && r[door.KeyMethod] == "status":
			written++
		case r["msg"] == door.AuditSuppressedMsg:
			// The method is the record's, as on the records written.
			if r[door.KeyMethod] != "status" || r[door.KeyBudget] != door.BudgetInformational ||
				r[door.KeyAllow] != true || r[door.KeyLaunch] != "L" {
				t.Errorf("summary = %v", r)
			}
			suppressed += int(r[door.KeySuppressed].(float64))
		}
	}
	// The budget refills in real time: at most the burst plus what a few
	// seconds of refill can write, never all of them.
	if written < door.DefaultAuditBurst || written > door.DefaultAuditBurst+5*door.DefaultAuditRate {
		t.Errorf("status records written = %d, want the burst %d and little more", written, door.DefaultAuditBurst)
	}
	if written+suppressed != calls {
		t.Errorf("written %d + suppressed %d = %d, want exactly %d", written, suppressed, written+suppressed, calls)
	}
}
