package doors

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/door"
)

// daemon runs a real in-process door daemon: a Minter behind a control
// socket in a temp dir, as netd/keeperd/scoutd serve it.
func daemon(t *testing.T, name string) (control string, m *door.Minter) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cbd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	m, err = door.NewMinter(door.MinterConfig{
		Door: name, Version: "test", Dir: filepath.Join(dir, "doors"),
		Validate: func(b door.Binding) error {
			for _, c := range b.Caveats {
				if c.Key != "host" {
					return errors.New("only host caveats")
				}
			}
			return nil
		},
		PolicySummary: func() string { return "test policy" },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := door.NewServer(door.Config{Door: name, Authorize: door.SameUser()})
	m.RegisterControl(srv.GRPC())
	control = filepath.Join(dir, name+"d.sock")
	l, err := door.Listen(control)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		m.Close(ctx)
	})
	return control, m
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMintHoldRevoke(t *testing.T) {
	netCtl, netM := daemon(t, "net")
	scoutCtl, scoutM := daemon(t, "scout")
	ctx := context.Background()
	wants := []Want{
		{Grant: guestroom.Grant{Door: guestroom.Door{Name: "net"}}, Control: netCtl, Daemon: "netd"},
		{Grant: guestroom.Grant{Door: guestroom.Door{Name: "scout"}, Caveats: []guestroom.Caveat{{Key: "host", Value: "github.com"}}}, Control: scoutCtl, Daemon: "scoutd"},
	}
	s, err := Mint(ctx, "launch1", "work", os.Getuid(), wants)
	if err != nil {
		t.Fatal(err)
	}
	minted := s.Doors()
	if len(minted) != 2 {
		t.Fatalf("minted %d", len(minted))
	}
	for _, d := range minted {
		fi, err := os.Stat(d.HostSocket)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Fatalf("%s: no socket at %s: %v", d.Daemon, d.HostSocket, err)
		}
		if d.HostSocket == d.Control {
			t.Fatal("minted socket is the control socket")
		}
	}
	live := scoutM.Live()
	if len(live) != 1 || live[0].LaunchID != "launch1" || live[0].Account != "work" || live[0].Caveats[0].Value != "github.com" {
		t.Fatalf("scout live %+v", live)
	}
	st := GetStatus(ctx, Service{Daemon: "netd", Socket: netCtl})
	if !st.Running || len(st.Launches) != 1 || st.Policy != "test policy" || st.Version != "test" {
		t.Fatalf("status %+v", st)
	}
	s.Close(ctx)
	for _, d := range minted {
		if _, err := os.Stat(d.HostSocket); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Close: %v", d.HostSocket, err)
		}
	}
	if len(netM.Live()) != 0 || len(scoutM.Live()) != 0 {
		t.Fatal("doors live after Close")
	}
}

// TestLeaseBreakRevokes: a launcher that dies without revoking (its
// connections drop) loses every door.
func TestLeaseBreakRevokes(t *testing.T) {
	ctl, m := daemon(t, "net")
	s, err := Mint(context.Background(), "launch2", "work", -1, []Want{{Grant: guestroom.Grant{Door: guestroom.Door{Name: "net"}}, Control: ctl, Daemon: "netd"}})
	if err != nil {
		t.Fatal(err)
	}
	sock := s.Doors()[0].HostSocket
	// Drop the connections without RevokeDoor, as a killed process would.
	for _, l := range s.leases {
		l()
	}
	for _, c := range s.conns {
		_ = c.Close()
	}
	eventually(t, "lease break to revoke", func() bool { return len(m.Live()) == 0 })
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket survives a broken lease: %v", err)
	}
}

func TestMintFailsClosed(t *testing.T) {
	ctl, m := daemon(t, "net")
	dir := t.TempDir()
	// A daemon that is not running names itself and how to start it.
	_, err := Mint(context.Background(), "l3", "work", -1, []Want{
		{Grant: guestroom.Grant{Door: guestroom.Door{Name: "net"}}, Control: ctl, Daemon: "netd"},
		{Grant: guestroom.Grant{Door: guestroom.Door{Name: "keeper"}}, Control: filepath.Join(dir, "keeperd.sock"), Daemon: "keeperd"},
	})
	var nr *NotRunningError
	if !errors.As(err, &nr) || nr.Daemon != "keeperd" || nr.Hint() == "" {
		t.Fatalf("got %v, want NotRunningError for keeperd", err)
	}
	if len(m.Live()) != 0 {
		t.Fatal("the net door minted before the failure was not revoked")
	}
	// A caveat the daemon cannot enforce refuses the mint.
	_, err = Mint(context.Background(), "l4", "work", -1, []Want{{Grant: guestroom.Grant{Door: guestroom.Door{Name: "net"}, Caveats: []guestroom.Caveat{{Key: "branch", Value: "x"}}}, Control: ctl, Daemon: "netd"}})
	if err == nil {
		t.Fatal("uninterpretable caveat minted")
	}
	// A world-writable socket directory fails closed.
	ww := t.TempDir()
	if err := os.Chmod(ww, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := CheckSocket(filepath.Join(ww, "netd.sock")); !errors.Is(err, ErrUnsafeDir) {
		t.Fatalf("world-writable dir: %v", err)
	}
}

// TestMintRefusesANonControlSocket: a standing door (or anything else that
// is not a ControlService) is never mounted in place of a minted door.
func TestMintRefusesANonControlSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "cbs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv := door.NewServer(door.Config{Door: "vault", Authorize: door.SameUser()})
	sock := filepath.Join(dir, "vault.sock")
	l, err := door.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop(context.Background())
	_, err = Mint(context.Background(), "l5", "work", -1, []Want{{Grant: guestroom.Grant{Door: guestroom.Door{Name: "vault"}}, Control: sock, Daemon: "vault"}})
	if err == nil || !strings.Contains(err.Error(), "is not a door daemon's control socket") {
		t.Fatalf("got %v", err)
	}
}
