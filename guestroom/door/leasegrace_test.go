package door

import (
	"context"
	"testing"
	"time"

	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
)

// TestUnleasedDoorIsRevoked: a door minted through the control service that
// no lease claims (the launcher died between mint and lease) does not live
// until the daemon stops; a leased door minted with it lives on.
func TestUnleasedDoorIsRevoked(t *testing.T) {
	f := newFixture(t, nil)
	f.m.mu.Lock()
	f.m.cfg.LeaseGrace = 200 * time.Millisecond
	f.m.mu.Unlock()
	ctx := context.Background()
	leased, err := f.ctl.MintDoor(ctx, &doorv1.MintDoorRequest{LaunchId: "held", Account: "a", PeerUid: -1})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := f.ctl.HoldLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&doorv1.HoldLeaseRequest{DoorIds: []string{leased.GetDoorId()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	orphan, err := f.ctl.MintDoor(ctx, &doorv1.MintDoorRequest{LaunchId: "orphan", Account: "a", PeerUid: -1})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unleased door to be revoked", gone(orphan.GetSocketPath()))
	if gone(leased.GetSocketPath())() {
		t.Fatal("a leased door was revoked for want of a lease")
	}
	if _, err := f.check(t, leased.GetSocketPath(), "x"); err != nil {
		t.Fatalf("leased door: %v", err)
	}
	var reason any
	for _, r := range f.audit.records(t) {
		if r[KeyMethod] == "revoke" && r["revoked_launch"] == "orphan" {
			reason = r[KeyReason]
		}
	}
	if reason != "lease_not_held" {
		t.Fatalf("orphan's revoke reason = %v, want lease_not_held", reason)
	}
}
