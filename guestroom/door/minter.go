package door

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bounded-systems/claude-box/guestroom"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
)

var (
	launchIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	accountRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	// fullMethodRe is a full gRPC method name: a misspelt informational
	// method would silently never be budgeted.
	fullMethodRe = regexp.MustCompile(`^/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$`)
)

// Mint errors; the control service maps them to gRPC codes.
var (
	ErrBadMint      = errors.New("bad mint request")
	ErrDuplicate    = errors.New("launch already has a live door")
	ErrUnknownDoor  = errors.New("no such door")
	ErrMinterClosed = errors.New("minter is closed")
)

// StandingDoorID is the DoorID of a standing door.
const StandingDoorID = "standing"

// DefaultLeaseGrace is how long a door minted through the control service
// waits for its lease (see MinterConfig.LeaseGrace).
const DefaultLeaseGrace = time.Minute

// ReasonLeaseNotHeld is the revoke reason of a door no lease claimed in time.
const ReasonLeaseNotHeld = "lease_not_held"

// MinterConfig configures a Minter.
type MinterConfig struct {
	// Door is the door name, e.g. "net".
	Door string
	// Version is the daemon's version, reported by GetStatus.
	Version string
	// Dir holds the launch sockets; created 0700. Use a directory of its own:
	// sockets left in it by a crashed daemon are removed at start.
	Dir string
	// Logger receives audit records; nil discards them.
	Logger *slog.Logger
	// Register registers the guest services on every minted door's server.
	Register func(*grpc.Server)
	// Validate checks a binding at mint time: the daemon refuses caveats it
	// cannot enforce and bindings its policy does not allow. Nil accepts only
	// bindings without caveats and without door-specific bindings.
	Validate func(Binding) error
	// PolicySummary is a one-line summary of the policy for GetStatus.
	PolicySummary func() string
	// Counters are door-specific counters for GetStatus.
	Counters func() map[string]int64
	// OnRevoke, when set, is called once for every door after it is revoked
	// (by request, lease end, TTL or shutdown), so the daemon can drop the
	// launch's state. It must not block.
	OnRevoke func(b Binding, reason string)
	// Raw serves raw connections on every door (see RawHandler).
	Raw RawHandler
	// ServerOptions are passed to every door server (see Config.ServerOptions).
	ServerOptions []grpc.ServerOption
	// AuditBudget bounds the refusal, informational and unaudited records
	// of each door's launch (see AuditBudget); the zero value means the
	// defaults.
	AuditBudget AuditBudget
	// Informational lists the guest API's methods that only answer a
	// question (see Config.Informational); every minted and standing door
	// budgets their allowed records.
	Informational []string
	// MaxTTL caps a requested TTL; zero means no cap.
	MaxTTL time.Duration
	// LeaseGrace is how long a door minted through the control service
	// may go unclaimed by a lease (HoldLease) before it is revoked, so that
	// a launcher that dies between mint and lease leaves no door behind;
	// zero means DefaultLeaseGrace, negative never revokes an unleased door.
	LeaseGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// MintRequest asks for a launch-scoped door.
type MintRequest struct {
	LaunchID string
	Account  string
	Caveats  []guestroom.Caveat
	Bindings map[string]string
	TTL      time.Duration
	// PeerUID is the host uid of the box's user, or -1 when unknown.
	PeerUID int
	// TCP mints a loopback TCP door guarded by a fresh bearer token instead
	// of a unix socket.
	TCP bool
}

// Minted describes a minted door.
type Minted struct {
	Binding
	// SocketPath is the host path of the door's socket; empty for TCP.
	SocketPath string
	// Address is the loopback host:port of a TCP door.
	Address string
	// Token is the bearer token of a TCP door: the grant itself.
	Token string
	// MintedAt is when the door was minted.
	MintedAt time.Time
}

type live struct {
	Minted
	srv   *Server
	l     net.Listener
	timer *time.Timer
	// grace revokes the door unless a lease claims it first; leased is
	// set, under the minter's mu, once one has.
	grace  *time.Timer
	leased bool
}

// Minter mints, tracks and revokes launch-scoped doors, and serves the
// control service that exposes it.
type Minter struct {
	cfg   MinterConfig
	log   *slog.Logger
	start time.Time

	mu     sync.Mutex
	doors  map[string]*live
	closed bool
	wg     sync.WaitGroup
}

// NewMinter creates the socket directory and removes launch sockets a
// previous run left behind that no longer answer.
func NewMinter(cfg MinterConfig) (*Minter, error) {
	if cfg.Door == "" || cfg.Dir == "" {
		return nil, errors.New("minter: door name and socket dir are required")
	}
	for _, name := range cfg.Informational {
		if !fullMethodRe.MatchString(name) {
			return nil, fmt.Errorf("minter: informational method %q is not a full gRPC method name (/package.Service/Method)", name)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ensurePrivateDir(cfg.Dir); err != nil {
		return nil, fmt.Errorf("minter: %w", err)
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("minter: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sock") {
			continue
		}
		p := filepath.Join(cfg.Dir, e.Name())
		if err := removeStale(p); err != nil {
			return nil, fmt.Errorf("minter: stale socket %s: %w", p, err)
		}
		log.Info("removed stale launch socket", slog.String(KeyDoor, cfg.Door), slog.String("socket", p))
	}
	return &Minter{cfg: cfg, log: log, start: cfg.Now(), doors: map[string]*live{}}, nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (m *Minter) validate(b Binding) error {
	// The engine's own rule first (a key, no separator in it, no control
	// character anywhere), so that no daemon's Validate sees a caveat that
	// could not have been granted.
	for _, c := range b.Caveats {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadMint, err)
		}
	}
	if m.cfg.Validate == nil {
		if len(b.Caveats) > 0 {
			return fmt.Errorf("%w: %s door interprets no caveats, refusing %s", ErrBadMint, m.cfg.Door, b.Caveats[0])
		}
		if len(b.Bindings) > 0 {
			return fmt.Errorf("%w: %s door takes no bindings", ErrBadMint, m.cfg.Door)
		}
		return nil
	}
	if err := m.cfg.Validate(b.clone()); err != nil {
		return fmt.Errorf("%w: %w", ErrBadMint, err)
	}
	return nil
}

// Mint creates a launch-scoped door: a fresh socket in Dir whose guest API
// sees req's launch, account, caveats and bindings.
func (m *Minter) Mint(ctx context.Context, req MintRequest) (Minted, error) {
	if !launchIDRe.MatchString(req.LaunchID) {
		return Minted{}, fmt.Errorf("%w: launch id %q must match %s", ErrBadMint, req.LaunchID, launchIDRe)
	}
	if !accountRe.MatchString(req.Account) {
		return Minted{}, fmt.Errorf("%w: account %q must match %s", ErrBadMint, req.Account, accountRe)
	}
	if req.TTL < 0 {
		return Minted{}, fmt.Errorf("%w: negative ttl", ErrBadMint)
	}
	ttl := req.TTL
	if m.cfg.MaxTTL > 0 && (ttl == 0 || ttl > m.cfg.MaxTTL) {
		ttl = m.cfg.MaxTTL
	}
	now := m.cfg.Now()
	b := Binding{
		DoorID:   newID(),
		LaunchID: req.LaunchID,
		Account:  req.Account,
		Caveats:  slices.Clone(req.Caveats),
		Bindings: maps.Clone(req.Bindings),
	}
	if ttl > 0 {
		b.ExpiresAt = now.Add(ttl)
	}
	if err := m.validate(b); err != nil {
		return Minted{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Minted{}, ErrMinterClosed
	}
	for _, d := range m.doors {
		if d.LaunchID == req.LaunchID {
			return Minted{}, fmt.Errorf("%w: %s", ErrDuplicate, req.LaunchID)
		}
	}
	var d *live
	var err error
	path := filepath.Join(m.cfg.Dir, req.LaunchID+"-"+b.DoorID[:8]+".sock")
	if req.TCP {
		d, err = m.serveTCP(b)
		path = d.addr()
	} else {
		d, err = m.serve(path, b, req.PeerUID)
	}
	if err != nil {
		return Minted{}, err
	}
	d.MintedAt = now
	m.doors[b.DoorID] = d
	if ttl > 0 {
		id := b.DoorID
		d.timer = time.AfterFunc(ttl, func() { m.revoke(context.Background(), id, "ttl_expired") })
	}
	Audit(ctx, m.log, Record{Door: m.cfg.Door, Method: "mint", Target: path, Allow: true, Reason: "minted",
		Attrs: []slog.Attr{slog.String("door_id", b.DoorID), slog.String("minted_launch", b.LaunchID),
			slog.String("minted_account", b.Account), slog.Any("caveats", caveatStrings(b.Caveats))}})
	return d.Minted, nil
}

func caveatStrings(cs []guestroom.Caveat) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

// serve listens at path and serves the guest API bound to b. The caller holds mu.
func (m *Minter) serve(path string, b Binding, peerUID int) (*live, error) {
	l, err := Listen(path)
	if err != nil {
		return nil, fmt.Errorf("mint %s door: %w", m.cfg.Door, err)
	}
	if err := grantAccess(path, peerUID); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("mint %s door: %w", m.cfg.Door, err)
	}
	bb := b.clone()
	srv := NewServer(Config{Door: m.cfg.Door, Logger: m.log, Authorize: UnixPeers(), Raw: m.cfg.Raw, ServerOptions: m.cfg.ServerOptions,
		AuditBudget: m.cfg.AuditBudget, Informational: m.cfg.Informational, binding: &bb})
	if m.cfg.Register != nil {
		m.cfg.Register(srv.GRPC())
	}
	d := &live{Minted: Minted{Binding: b, SocketPath: path}, srv: srv, l: l}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := srv.Serve(l); err != nil {
			m.log.Error("door server stopped", slog.String(KeyDoor, m.cfg.Door), slog.String("socket", path), slog.String(KeyError, err.Error()))
		}
	}()
	return d, nil
}

// serveTCP listens on a fresh loopback port and serves the guest API bound
// to b to callers presenting a fresh bearer token. The caller holds mu.
func (m *Minter) serveTCP(b Binding) (*live, error) {
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mint %s door: %w", m.cfg.Door, err)
	}
	var tok [32]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	bb := b.clone()
	srv := NewServer(Config{Door: m.cfg.Door, Logger: m.log, Authorize: BearerToken(token), Raw: m.cfg.Raw, ServerOptions: m.cfg.ServerOptions,
		AuditBudget: m.cfg.AuditBudget, Informational: m.cfg.Informational, binding: &bb})
	if m.cfg.Register != nil {
		m.cfg.Register(srv.GRPC())
	}
	d := &live{Minted: Minted{Binding: b, Address: l.Addr().String(), Token: token}, srv: srv, l: l}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := srv.Serve(l); err != nil {
			m.log.Error("door server stopped", slog.String(KeyDoor, m.cfg.Door), slog.String("address", d.Address), slog.String(KeyError, err.Error()))
		}
	}()
	return d, nil
}

func (d *live) addr() string {
	if d == nil {
		return ""
	}
	if d.SocketPath != "" {
		return d.SocketPath
	}
	return d.Address
}

// grantAccess makes a minted socket connectable by the box's user as the
// container runtime maps it, decided once, here:
//   - the daemon runs as the box user's host uid (rootless podman, keep-id):
//     the socket stays 0600;
//   - the daemon is root and knows the uid (rootful podman): the socket is
//     chowned to it and stays 0600;
//   - otherwise the socket is 0666. Its directory is 0700 and owned by the
//     daemon, so on the host nobody else can reach it; in the box the bind
//     mount exposes only this one socket, to the box's user.
//
// It changes only the socket: a path that is not one (a link put in its
// place) is refused, and the chown does not follow links.
func grantAccess(path string, peerUID int) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s is not a socket (mode %s): refusing to grant access to it", path, fi.Mode())
	}
	self := os.Geteuid()
	switch {
	case peerUID >= 0 && peerUID == self:
		return nil
	case peerUID >= 0 && self == 0:
		return os.Lchown(path, peerUID, -1)
	default:
		return os.Chmod(path, 0o666)
	}
}

// Standing serves an unscoped door at path, bound to b, for standalone use
// without a launcher (a daemon's --door flag). It lives until Close.
func (m *Minter) Standing(path string, b Binding) error {
	b.DoorID = StandingDoorID
	if b.Account == "" {
		b.Account = "default"
	}
	if b.LaunchID == "" {
		b.LaunchID = StandingDoorID
	}
	if err := m.validate(b); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrMinterClosed
	}
	if _, ok := m.doors[StandingDoorID]; ok {
		return fmt.Errorf("%w: a standing door is already served", ErrDuplicate)
	}
	d, err := m.serve(path, b, os.Geteuid())
	if err != nil {
		return err
	}
	d.MintedAt = m.cfg.Now()
	m.doors[StandingDoorID] = d
	return nil
}

// Revoke closes the door: its socket file is removed and its calls fail. It
// reports whether the door was live.
func (m *Minter) Revoke(doorID string) bool { return m.revoke(context.Background(), doorID, "revoked") }

func (m *Minter) revoke(ctx context.Context, doorID, reason string) bool {
	m.mu.Lock()
	d, ok := m.doors[doorID]
	if ok {
		delete(m.doors, doorID)
	}
	m.mu.Unlock()
	if !ok {
		return false
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.grace != nil {
		d.grace.Stop()
	}
	// Revocation cuts: open streams end now. The launch's counted refusals
	// are summarized before its revoke record.
	d.srv.GRPC().Stop()
	_ = d.l.Close()
	d.srv.closeAudit()
	if d.SocketPath != "" {
		_ = os.Remove(d.SocketPath)
	}
	if m.cfg.OnRevoke != nil {
		m.cfg.OnRevoke(d.Binding.clone(), reason)
	}
	Audit(ctx, m.log, Record{Door: m.cfg.Door, Method: "revoke", Target: d.addr(), Allow: true, Reason: reason,
		Attrs: []slog.Attr{slog.String("door_id", d.DoorID), slog.String("revoked_launch", d.LaunchID), slog.String("revoked_account", d.Account)}})
	return true
}

// Live returns the live doors, oldest first.
func (m *Minter) Live() []Minted {
	m.mu.Lock()
	out := make([]Minted, 0, len(m.doors))
	for _, d := range m.doors {
		out = append(out, Minted{Binding: d.Binding.clone(), SocketPath: d.SocketPath, Address: d.Address, MintedAt: d.MintedAt})
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Minted) int { return a.MintedAt.Compare(b.MintedAt) })
	return out
}

// Close revokes every door and waits for their servers to stop.
func (m *Minter) Close(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	ids := slices.Collect(maps.Keys(m.doors))
	m.mu.Unlock()
	for _, id := range ids {
		m.revoke(ctx, id, "shutdown")
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// awaitLease revokes the door id after the lease grace unless a lease has
// claimed it by then.
func (m *Minter) awaitLease(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	grace := m.cfg.LeaseGrace
	if grace == 0 {
		grace = DefaultLeaseGrace
	}
	d, ok := m.doors[id]
	if !ok || grace < 0 || d.leased {
		return
	}
	d.grace = time.AfterFunc(grace, func() {
		m.mu.Lock()
		d, ok := m.doors[id]
		leased := ok && d.leased
		m.mu.Unlock()
		if ok && !leased {
			m.revoke(context.Background(), id, ReasonLeaseNotHeld)
		}
	})
}

// RegisterControl serves the control service (mint, revoke, lease, status)
// on s, which must be a control server (see SameUser).
func (m *Minter) RegisterControl(s *grpc.Server) {
	doorv1.RegisterControlServiceServer(s, &control{m: m})
}

// control adapts the Minter to claudebox.door.v1.ControlService.
type control struct {
	doorv1.UnimplementedControlServiceServer
	m *Minter
}

// controlStatus maps minter errors to gRPC status, in one place.
func controlStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrBadMint):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrDuplicate):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ErrUnknownDoor):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrMinterClosed):
		return status.Error(codes.Unavailable, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

func (c *control) MintDoor(ctx context.Context, req *doorv1.MintDoorRequest) (*doorv1.MintDoorResponse, error) {
	mr := MintRequest{
		LaunchID: req.GetLaunchId(),
		Account:  req.GetAccount(),
		Bindings: req.GetBindings(),
		TTL:      req.GetTtl().AsDuration(),
		PeerUID:  int(req.GetPeerUid()),
		TCP:      req.GetTransport() == doorv1.Transport_TRANSPORT_TCP,
	}
	for _, cv := range req.GetCaveats() {
		mr.Caveats = append(mr.Caveats, guestroom.Caveat{Key: cv.GetKey(), Value: cv.GetValue()})
	}
	got, err := c.m.Mint(ctx, mr)
	if err != nil {
		Audit(ctx, c.m.log, Record{Door: c.m.cfg.Door, Method: "mint", Target: req.GetLaunchId(), Allow: false, Reason: "mint_refused",
			Attrs: []slog.Attr{slog.String("why", err.Error())}})
		return nil, controlStatus(err)
	}
	c.m.awaitLease(got.DoorID)
	resp := &doorv1.MintDoorResponse{SocketPath: got.SocketPath, DoorId: got.DoorID, Address: got.Address, Token: got.Token}
	if !got.ExpiresAt.IsZero() {
		resp.ExpiresAt = timestamppb.New(got.ExpiresAt)
	}
	return resp, nil
}

func (c *control) RevokeDoor(ctx context.Context, req *doorv1.RevokeDoorRequest) (*doorv1.RevokeDoorResponse, error) {
	return &doorv1.RevokeDoorResponse{Revoked: c.m.revoke(ctx, req.GetDoorId(), "revoked")}, nil
}

func (c *control) HoldLease(stream doorv1.ControlService_HoldLeaseServer) error {
	var held []string
	defer func() {
		for _, id := range held {
			c.m.revoke(stream.Context(), id, "lease_ended")
		}
	}()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(req.GetDoorIds()) == 0 && len(held) == 0 {
			return status.Error(codes.InvalidArgument, "lease: first message must name at least one door")
		}
		c.m.mu.Lock()
		var missing []string
		for _, id := range req.GetDoorIds() {
			if _, ok := c.m.doors[id]; !ok || id == StandingDoorID {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			for _, id := range req.GetDoorIds() {
				d := c.m.doors[id]
				d.leased = true
				if d.grace != nil {
					d.grace.Stop()
				}
			}
		}
		c.m.mu.Unlock()
		if len(missing) > 0 {
			return status.Error(codes.NotFound, fmt.Sprintf("lease: %v: %s", ErrUnknownDoor, strings.Join(missing, ", ")))
		}
		for _, id := range req.GetDoorIds() {
			if !slices.Contains(held, id) {
				held = append(held, id)
			}
		}
		if err := stream.Send(&doorv1.HoldLeaseResponse{DoorIds: slices.Clone(held)}); err != nil {
			return err
		}
	}
}

func (c *control) GetStatus(context.Context, *doorv1.GetStatusRequest) (*doorv1.GetStatusResponse, error) {
	m := c.m
	resp := &doorv1.GetStatusResponse{
		Door:    m.cfg.Door,
		Version: m.cfg.Version,
		Uptime:  durationpb.New(m.cfg.Now().Sub(m.start)),
	}
	for _, d := range m.Live() {
		l := &doorv1.Launch{
			DoorId: d.DoorID, LaunchId: d.LaunchID, Account: d.Account,
			MintedAt: timestamppb.New(d.MintedAt), SocketPath: d.SocketPath + d.Address,
		}
		for _, cv := range d.Caveats {
			l.Caveats = append(l.Caveats, &doorv1.Caveat{Key: cv.Key, Value: cv.Value})
		}
		if !d.ExpiresAt.IsZero() {
			l.ExpiresAt = timestamppb.New(d.ExpiresAt)
		}
		resp.Launches = append(resp.Launches, l)
	}
	if m.cfg.PolicySummary != nil {
		resp.PolicySummary = m.cfg.PolicySummary()
	}
	if m.cfg.Counters != nil {
		resp.Counters = m.cfg.Counters()
	}
	return resp, nil
}
