package doors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
)

// CallTimeout bounds every unary call to a control socket.
const CallTimeout = 10 * time.Second

// ErrNotRunning reports a door daemon whose control socket does not answer.
var ErrNotRunning = errors.New("door daemon is not running")

// ErrUnsafeDir reports a socket directory others could write to.
var ErrUnsafeDir = errors.New("unsafe socket directory")

// CheckSocket fails closed unless path is a socket in a directory only its
// owner can write to.
func CheckSocket(path string) error {
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotRunning, path, err)
	}
	if di.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("%w: %s is writable by others (mode %v); `chmod 700 %s`", ErrUnsafeDir, dir, di.Mode().Perm(), dir)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: no control socket at %s", ErrNotRunning, path)
		}
		return fmt.Errorf("%w: %s: %w", ErrNotRunning, path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%w: %s is not a socket", ErrNotRunning, path)
	}
	return nil
}

// ErrUnsafeSocket reports a minted socket the launcher refuses to mount in
// the box.
var ErrUnsafeSocket = errors.New("refusing to mount it in the box")

// UnsafeSocketError names the door whose minted socket was refused, the
// daemon that returned it, and why.
type UnsafeSocketError struct {
	Door, Daemon, Socket string
	// Reason is why the socket is refused.
	Reason string
}

func (e *UnsafeSocketError) Error() string {
	return fmt.Sprintf("mint door %q: %s returned socket %q: %v: %s", e.Door, e.Daemon, e.Socket, ErrUnsafeSocket, e.Reason)
}

func (e *UnsafeSocketError) Unwrap() error { return ErrUnsafeSocket }

// refuseMinted says why the socket a daemon minted for w must not be
// bind-mounted into the box, or "" when it may be. The daemon is trusted
// with its own door, not with the host: what it returns must be a unix
// socket itself (no symlink, directory or file), never a control socket of
// this launch, and never beside one (a sibling in the run directory is
// another daemon's control socket; minted sockets live in a directory of
// the daemon's own that only its owner can write to).
//
// all is every door of the launch, w among them.
func refuseMinted(path string, w Want, all []Want) string {
	switch {
	case path == "":
		return "it is empty"
	case !filepath.IsAbs(path):
		return "it is not an absolute path"
	case filepath.Clean(path) != path:
		return "it is not a clean path"
	}
	for _, c := range all {
		ctl := filepath.Clean(c.Control)
		switch path {
		case ctl:
			return controlReason(c, w)
		case filepath.Dir(ctl):
			return "it is the directory of the control socket " + ctl
		}
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "it does not exist"
	case err != nil:
		return fmt.Sprintf("it cannot be inspected: %v", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return "it is a symlink"
	case fi.IsDir():
		return "it is a directory"
	case fi.Mode()&fs.ModeSocket == 0:
		return "it is not a unix socket"
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Sprintf("its directory %s cannot be inspected: %v", dir, err)
	}
	if di.Mode().Perm()&0o022 != 0 && di.Mode()&fs.ModeSticky == 0 {
		return fmt.Sprintf("its directory %s is writable by others (mode %04o)", dir, di.Mode().Perm())
	}
	for _, c := range all {
		if ci, err := os.Stat(c.Control); err == nil && os.SameFile(fi, ci) {
			return controlReason(c, w)
		}
		cdir := filepath.Dir(filepath.Clean(c.Control))
		ci, err := os.Stat(cdir)
		if err != nil {
			return fmt.Sprintf("the directory of the control socket %s cannot be inspected: %v", c.Control, err)
		}
		if os.SameFile(di, ci) {
			return "it is in the directory of the control socket " + c.Control
		}
	}
	return ""
}

// controlReason says which control socket a minted path turned out to be.
func controlReason(c, w Want) string {
	if c.Control == w.Control {
		return "it is the daemon's own control socket"
	}
	return fmt.Sprintf("it is the control socket of door %q", c.Grant.Door.Name)
}

// Want is one door to mint.
type Want struct {
	Grant guestroom.Grant
	// Control is the control socket of the daemon serving the door.
	Control string
	// Daemon names the daemon, for messages.
	Daemon string
	// Bindings are door-specific bindings (keeper's "repo").
	Bindings map[string]string
}

// Minted is one minted door.
type Minted struct {
	Want
	DoorID     string
	HostSocket string
}

// NotRunningError names the daemon, its socket and how to start it.
type NotRunningError struct {
	Daemon, Socket string
	Err            error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("%s at %s: %v", e.Daemon, e.Socket, e.Err)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// Hint says how to start the daemon.
func (e *NotRunningError) Hint() string {
	return fmt.Sprintf("start it: `claude-box doors start` (or `nix run .#%s -- serve`)", e.Daemon)
}

// Session holds the minted doors of one launch and their leases.
type Session struct {
	mu     sync.Mutex
	doors  []Minted
	conns  []*grpc.ClientConn
	leases []context.CancelFunc
	ctrl   []doorv1.ControlServiceClient
}

// Doors returns the minted doors, in the order asked.
func (s *Session) Doors() []Minted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Minted(nil), s.doors...)
}

// Mint mints every wanted door for (launch, account) and holds each lease
// until Close. peerUID is the uid the box user has on the host. On any
// failure every door minted so far is revoked.
func Mint(ctx context.Context, launch, account string, peerUID int, wants []Want) (*Session, error) {
	s := &Session{}
	for _, w := range wants {
		if err := s.mintOne(ctx, launch, account, peerUID, w, wants); err != nil {
			s.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return s, nil
}

func (s *Session) mintOne(ctx context.Context, launch, account string, peerUID int, w Want, all []Want) error {
	if err := CheckSocket(w.Control); err != nil {
		if errors.Is(err, ErrUnsafeDir) {
			return err
		}
		return &NotRunningError{Daemon: w.Daemon, Socket: w.Control, Err: err}
	}
	cc, err := door.Dial(w.Control)
	if err != nil {
		return &NotRunningError{Daemon: w.Daemon, Socket: w.Control, Err: err}
	}
	s.conns = append(s.conns, cc)
	ctrl := doorv1.NewControlServiceClient(cc)
	req := &doorv1.MintDoorRequest{LaunchId: launch, Account: account, Bindings: w.Bindings, PeerUid: int32(peerUID)}
	for _, c := range w.Grant.Caveats {
		req.Caveats = append(req.Caveats, &doorv1.Caveat{Key: c.Key, Value: c.Value})
	}
	mctx, cancel := context.WithTimeout(ctx, CallTimeout)
	resp, err := ctrl.MintDoor(mctx, req)
	cancel()
	if err != nil {
		switch status.Code(err) {
		case codes.Unavailable:
			return &NotRunningError{Daemon: w.Daemon, Socket: w.Control, Err: err}
		case codes.Unimplemented:
			return fmt.Errorf("mint door %q: %s answers but is not a door daemon's control socket (name the daemon's control socket, e.g. ~/.claude-box/run/%s.sock): %w", w.Grant.Door.Name, w.Control, w.Daemon, err)
		}
		return fmt.Errorf("mint door %q at %s: %w", w.Grant.Door.Name, w.Control, err)
	}
	m := Minted{Want: w, DoorID: resp.GetDoorId(), HostSocket: resp.GetSocketPath()}
	s.mu.Lock()
	s.doors = append(s.doors, m)
	s.ctrl = append(s.ctrl, ctrl)
	s.mu.Unlock()
	// The door is recorded above, so a refused socket is still revoked.
	if reason := refuseMinted(m.HostSocket, w, all); reason != "" {
		return &UnsafeSocketError{Door: w.Grant.Door.Name, Daemon: w.Daemon, Socket: m.HostSocket, Reason: reason}
	}
	// The lease lives until Close (or until this process dies).
	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	s.leases = append(s.leases, lcancel)
	stream, err := ctrl.HoldLease(lctx)
	if err != nil {
		return fmt.Errorf("hold lease on door %q: %w", w.Grant.Door.Name, err)
	}
	if err := stream.Send(&doorv1.HoldLeaseRequest{DoorIds: []string{m.DoorID}}); err != nil {
		return fmt.Errorf("hold lease on door %q: %w", w.Grant.Door.Name, err)
	}
	ack := make(chan error, 1)
	go func() { _, err := stream.Recv(); ack <- err }()
	select {
	case err := <-ack:
		if err != nil {
			return fmt.Errorf("hold lease on door %q: %w", w.Grant.Door.Name, err)
		}
	case <-time.After(CallTimeout):
		return fmt.Errorf("hold lease on door %q: no acknowledgement in %v", w.Grant.Door.Name, CallTimeout)
	}
	return nil
}

// Close revokes every door and ends the leases. It is safe to call twice.
func (s *Session) Close(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range s.doors {
		rctx, cancel := context.WithTimeout(ctx, CallTimeout)
		_, _ = s.ctrl[i].RevokeDoor(rctx, &doorv1.RevokeDoorRequest{DoorId: d.DoorID})
		cancel()
	}
	for _, l := range s.leases {
		l()
	}
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.doors, s.ctrl, s.leases, s.conns = nil, nil, nil, nil
}
