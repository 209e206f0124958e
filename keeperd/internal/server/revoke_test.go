package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
)

// A revoked launch's counters and write log are dropped: keeperd does not
// accumulate state for launches that have ended.
func TestRevokeForgetsTheLaunch(t *testing.T) {
	f := newFixture(t)
	minted, err := f.m.Mint(context.Background(), door.MintRequest{LaunchID: "L7", Account: "work", Bindings: map[string]string{"repo": f.repo}, PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := door.Dial(minted.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	os.WriteFile(filepath.Join(f.repo, "README"), []byte("changed\n"), 0o644)
	if _, err := keeperv1.NewKeeperServiceClient(cc).Commit(ctx5(t), &keeperv1.CommitRequest{Message: "m", All: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.srv.k.Writes("L7")); n != 1 {
		t.Fatalf("writes before revoke = %d, want 1", n)
	}
	if !f.m.Revoke(minted.DoorID) {
		t.Fatal("door was not live")
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.srv.k.Writes("L7") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("launch state kept after revoke: %v", f.srv.k.Writes("L7"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
