package doors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
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

// lyingMinter is a daemon's control service that answers MintDoor with
// whatever path it is told to: a daemon the launcher trusts with its own
// door and with nothing else on the host.
type lyingMinter struct {
	doorv1.UnimplementedControlServiceServer
	mu      sync.Mutex
	path    string
	n       int
	revoked []string
}

func (f *lyingMinter) set(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.path = path
}

func (f *lyingMinter) wasRevoked(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.revoked, id)
}

func (f *lyingMinter) MintDoor(context.Context, *doorv1.MintDoorRequest) (*doorv1.MintDoorResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return &doorv1.MintDoorResponse{DoorId: fmt.Sprintf("lie-%d", f.n), SocketPath: f.path}, nil
}

func (f *lyingMinter) RevokeDoor(_ context.Context, req *doorv1.RevokeDoorRequest) (*doorv1.RevokeDoorResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, req.GetDoorId())
	return &doorv1.RevokeDoorResponse{}, nil
}

func (f *lyingMinter) HoldLease(stream doorv1.ControlService_HoldLeaseServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		if err := stream.Send(&doorv1.HoldLeaseResponse{DoorIds: req.GetDoorIds()}); err != nil {
			return err
		}
	}
}

// serveLyingMinter serves f on a real control socket in a fresh private
// directory and returns the socket's path.
func serveLyingMinter(t *testing.T, f *lyingMinter) string {
	t.Helper()
	dir := shortDir(t, "cbl-")
	srv := door.NewServer(door.Config{Door: "vault", Authorize: door.SameUser()})
	doorv1.RegisterControlServiceServer(srv.GRPC(), f)
	control := filepath.Join(dir, "vaultd.sock")
	l, err := door.Listen(control)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
	})
	return control
}

// shortDir is a private temp dir with a short path (unix socket paths are
// bounded).
func shortDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// listenAt leaves a live unix socket at path for the test.
func listenAt(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
}

// TestMintRefusesAnUnsafeSocket: whatever path a daemon's MintDoor returns,
// the launcher mounts it in the box only when it is a unix socket of its
// own, in a private directory that holds no control socket; every refusal
// names the door and the exact reason, and revokes every door of the launch.
func TestMintRefusesAnUnsafeSocket(t *testing.T) {
	keeperCtl, keeperM := daemon(t, "keeper")
	f := &lyingMinter{}
	control := serveLyingMinter(t, f)
	ctlDir := filepath.Dir(control)
	sibling := filepath.Join(ctlDir, "netd.sock") // another daemon's control socket
	listenAt(t, sibling)

	own := shortDir(t, "cbo-") // a daemon's private doors directory
	good := filepath.Join(own, "good.sock")
	listenAt(t, good)
	for name, target := range map[string]string{"link.sock": good, "ctl-link.sock": control, "alias": ctlDir} {
		if err := os.Symlink(target, filepath.Join(own, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(control, filepath.Join(own, "hard.sock")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(own, "file.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(own, "dir.sock"), 0o700); err != nil {
		t.Fatal(err)
	}
	shared := shortDir(t, "cbw-")
	if err := os.Chmod(shared, 0o770); err != nil {
		t.Fatal(err)
	}
	listenAt(t, filepath.Join(shared, "s.sock"))

	cases := []struct {
		name, path, reason string
	}{
		{name: "empty", path: "", reason: "it is empty"},
		{name: "relative", path: "doors/x.sock", reason: "it is not an absolute path"},
		{name: "unclean", path: own + "/../" + filepath.Base(own) + "/good.sock", reason: "it is not a clean path"},
		{name: "its own control socket", path: control, reason: "it is the daemon's own control socket"},
		{name: "another door's control socket", path: keeperCtl, reason: `it is the control socket of door "keeper"`},
		{name: "the control socket's directory", path: ctlDir, reason: "it is the directory of the control socket " + control},
		{name: "beside the control socket", path: sibling, reason: "it is in the directory of the control socket " + control},
		{name: "a hard link to its control socket", path: filepath.Join(own, "hard.sock"), reason: "it is the daemon's own control socket"},
		{name: "through a symlink to the control directory", path: filepath.Join(own, "alias", "vaultd.sock"), reason: "it is the daemon's own control socket"},
		{name: "beside the control socket through a symlink", path: filepath.Join(own, "alias", "netd.sock"), reason: "it is in the directory of the control socket " + control},
		{name: "a symlink to a socket", path: filepath.Join(own, "link.sock"), reason: "it is a symlink"},
		{name: "a symlink to its control socket", path: filepath.Join(own, "ctl-link.sock"), reason: "it is a symlink"},
		{name: "a directory", path: filepath.Join(own, "dir.sock"), reason: "it is a directory"},
		{name: "a regular file", path: filepath.Join(own, "file.sock"), reason: "it is not a unix socket"},
		{name: "missing", path: filepath.Join(own, "gone.sock"), reason: "it does not exist"},
		{name: "in a directory others can write", path: filepath.Join(shared, "s.sock"), reason: "its directory " + shared + " is writable by others (mode 0770)"},
	}
	wants := []Want{
		{Grant: guestroom.Grant{Door: guestroom.Door{Name: "keeper"}}, Control: keeperCtl, Daemon: "keeperd"},
		{Grant: guestroom.Grant{Door: guestroom.Door{Name: "vault"}}, Control: control, Daemon: "vaultd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.set(c.path)
			s, err := Mint(context.Background(), "l6", "work", -1, wants)
			var ue *UnsafeSocketError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnsafeSocket) {
				if s != nil {
					s.Close(context.Background())
				}
				t.Fatalf("got %v, want an UnsafeSocketError", err)
			}
			if ue.Door != "vault" || ue.Daemon != "vaultd" || ue.Socket != c.path || ue.Reason != c.reason {
				t.Fatalf("refused door %q of %s at %q because %q; want door \"vault\" of vaultd at %q because %q", ue.Door, ue.Daemon, ue.Socket, ue.Reason, c.path, c.reason)
			}
			f.mu.Lock()
			id := fmt.Sprintf("lie-%d", f.n)
			f.mu.Unlock()
			if !f.wasRevoked(id) {
				t.Fatalf("the refused door %s was not revoked", id)
			}
			if len(keeperM.Live()) != 0 {
				t.Fatal("the keeper door minted before the refusal was not revoked")
			}
		})
	}
	t.Run("a socket of its own", func(t *testing.T) {
		f.set(good)
		s, err := Mint(context.Background(), "l7", "work", -1, wants)
		if err != nil {
			t.Fatalf("a socket in the daemon's own private directory: %v", err)
		}
		defer s.Close(context.Background())
		if got := s.Doors()[1].HostSocket; got != good {
			t.Fatalf("minted %s, want %s", got, good)
		}
	})
}
