package door

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
)

func TestServeControlLifecycle(t *testing.T) {
	root := shortDir(t)
	m, err := NewMinter(MinterConfig{Door: "test", Dir: filepath.Join(root, "launch")})
	if err != nil {
		t.Fatal(err)
	}
	ctlPath := filepath.Join(root, "ctl.sock")
	c, err := ServeControl(m, ctlPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctl := doorv1.NewControlServiceClient(dial(t, ctlPath))
	minted, err := ctl.MintDoor(context.Background(), &doorv1.MintDoorRequest{LaunchId: "L", Account: "a", PeerUid: -1})
	if err != nil {
		t.Fatal(err)
	}
	// A second daemon cannot take over a live control socket.
	m2, err := NewMinter(MinterConfig{Door: "test", Dir: filepath.Join(root, "launch2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ServeControl(m2, ctlPath, nil); err == nil {
		t.Fatal("second ServeControl on a live socket succeeded")
	}
	c.Shutdown(2 * time.Second)
	if err := <-c.Done(); err != nil {
		t.Fatalf("served: %v", err)
	}
	for _, p := range []string{ctlPath, minted.GetSocketPath()} {
		if !gone(p)() {
			t.Fatalf("%s remains after Shutdown", p)
		}
	}
}
