package door

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bounded-systems/claude-box/guestroom"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// shortDir returns a temp dir short enough for unix socket paths.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "door")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// auditLog captures JSON log records.
type auditLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (a *auditLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

func (a *auditLog) records(t *testing.T) []map[string]any {
	t.Helper()
	return a.byMsg(t, AuditMsg)
}

func (a *auditLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(a, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// echoGuest is a guest API for tests: CheckTarget answers with what the door
// was bound to and enforces the host caveat.
type echoGuest struct {
	netv1.UnimplementedEgressServiceServer
	log *slog.Logger
}

func (g echoGuest) CheckTarget(ctx context.Context, req *netv1.CheckTargetRequest) (*netv1.CheckTargetResponse, error) {
	b, ok := BindingFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no binding")
	}
	v := guestroom.Verifiers{"host": func(value string, r guestroom.Request) error {
		if r["host"] != value {
			return fmt.Errorf("host %q is not %q", r["host"], value)
		}
		return nil
	}}
	if err := guestroom.CheckCaveats(b.Caveats, v, guestroom.Request{"host": req.GetTarget()}); err != nil {
		Audit(ctx, g.log, Record{Target: req.GetTarget(), Allow: false, Reason: "caveat"})
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	Audit(ctx, g.log, Record{Target: req.GetTarget(), Allow: true, Reason: "ok"})
	p, _ := PeerFrom(ctx)
	return &netv1.CheckTargetResponse{Verdict: &netv1.Verdict{
		Message: b.Account + "/" + b.LaunchID,
		Host:    fmt.Sprintf("uid=%d pid=%d", p.UID, p.PID),
	}}, nil
}

func (g echoGuest) Tunnel(stream netv1.EgressService_TunnelServer) error {
	_, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := stream.Send(&netv1.TunnelResponse{Verdict: &netv1.Verdict{Decision: netv1.Decision_DECISION_ALLOW}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gone(path string) func() bool {
	return func() bool { _, err := os.Lstat(path); return errors.Is(err, os.ErrNotExist) }
}

func TestListenPermissions(t *testing.T) {
	dir := filepath.Join(shortDir(t), "run")
	path := filepath.Join(dir, "x.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	di, _ := os.Stat(dir)
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("dir mode = %04o, want 0700", got)
	}
	si, _ := os.Lstat(path)
	if got := si.Mode().Perm(); got != 0o600 {
		t.Errorf("socket mode = %04o, want 0600", got)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	if _, err := Listen(path); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second Listen on a live socket: err = %v, want ErrSocketInUse", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(path)() {
		t.Fatal("socket file remains after Close")
	}
}

func TestListenRefusals(t *testing.T) {
	dir := shortDir(t)
	stale := filepath.Join(dir, "stale.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	_ = ul.Close() // leaves a dead socket file behind
	l, err := Listen(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	_ = l.Close()

	plain := filepath.Join(dir, "plain.sock")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wide := filepath.Join(dir, "wide")
	if err := os.Mkdir(wide, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(wide, 0o777); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, want string
	}{
		{"empty", "", "empty socket path"},
		{"too long", "/tmp/" + strings.Repeat("a", 120) + ".sock", "longer than"},
		{"not a socket", plain, "is not a socket"},
		{"world-writable dir", filepath.Join(wide, "x.sock"), "writable by others"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Listen(tc.path)
			if err == nil {
				_ = l.Close()
				t.Fatal("Listen succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestListenTCPLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "localhost:0", "192.0.2.1:0"} {
		if l, err := ListenTCP(addr); err == nil {
			_ = l.Close()
			t.Errorf("ListenTCP(%q) succeeded, want refusal", addr)
		}
	}
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
}

func serve(t *testing.T, cfg Config, register func(*grpc.Server)) (string, *Server) {
	t.Helper()
	path := filepath.Join(shortDir(t), "s.sock")
	s := NewServer(cfg)
	if register != nil {
		register(s.GRPC())
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return path, s
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestServerDeniesByDefault(t *testing.T) {
	var al auditLog
	log := al.logger()
	path, _ := serve(t, Config{Door: "test", Logger: log}, func(s *grpc.Server) {
		netv1.RegisterEgressServiceServer(s, echoGuest{log: log})
	})
	cc := dial(t, path)
	if err := Ping(context.Background(), cc, path); err != nil {
		t.Fatalf("health must answer without authorization: %v", err)
	}
	_, err := netv1.NewEgressServiceClient(cc).CheckTarget(context.Background(), &netv1.CheckTargetRequest{Target: "x"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("err = %v, want PermissionDenied", err)
	}
	recs := al.records(t)
	if len(recs) != 1 {
		t.Fatalf("audit records = %d, want exactly 1: %v", len(recs), recs)
	}
	r := recs[0]
	if r[KeyAllow] != false || r[KeyReason] != "unauthorized" || r[KeyDoor] != "test" ||
		r[KeyMethod] != "/claudebox.net.v1.EgressService/CheckTarget" || r["level"] != "WARN" {
		t.Fatalf("deny record = %v", r)
	}
	for _, k := range []string{KeyDoor, KeyMethod, KeyAccount, KeyLaunch, KeyPeer, KeyTarget, KeyAllow, KeyReason} {
		if _, ok := r[k]; !ok {
			t.Errorf("audit record lacks %q", k)
		}
	}
}

func TestServerPeerCredentialsAndRecover(t *testing.T) {
	var al auditLog
	log := al.logger()
	var gotPeer Peer
	desc := grpc.ServiceDesc{
		ServiceName: "test.Panic",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Boom", Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			var req healthpb.HealthCheckRequest
			if err := dec(&req); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, _ any) (any, error) {
				gotPeer, _ = PeerFrom(ctx)
				panic("boom")
			}
			return in(ctx, &req, &grpc.UnaryServerInfo{FullMethod: "/test.Panic/Boom"}, h)
		}}},
	}
	path, _ := serve(t, Config{Door: "test", Logger: log, Authorize: SameUser()}, func(s *grpc.Server) {
		s.RegisterService(&desc, struct{}{})
	})
	cc := dial(t, path)
	var resp healthpb.HealthCheckResponse
	err := cc.Invoke(context.Background(), "/test.Panic/Boom", &healthpb.HealthCheckRequest{}, &resp)
	if status.Code(err) != codes.Internal {
		t.Fatalf("err = %v, want Internal from a recovered panic", err)
	}
	if !gotPeer.Known || gotPeer.UID != os.Getuid() || gotPeer.PID != os.Getpid() {
		t.Fatalf("peer = %+v, want uid %d pid %d", gotPeer, os.Getuid(), os.Getpid())
	}
	recs := al.records(t)
	if len(recs) != 1 || recs[0]["level"] != "ERROR" {
		t.Fatalf("want one error audit record, got %v", recs)
	}
}

func TestBearerTokenOverTCP(t *testing.T) {
	s := NewServer(Config{Door: "test", Authorize: BearerToken("s3cret")})
	netv1.RegisterEgressServiceServer(s.GRPC(), echoGuest{})
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	defer s.Stop(context.Background())
	cc := dial(t, l.Addr().String())
	client := netv1.NewEgressServiceClient(cc)
	cases := []struct {
		name  string
		md    []string
		allow bool
	}{
		{"none", nil, false},
		{"wrong", []string{MetadataToken, "Bearer nope"}, false},
		{"no scheme", []string{MetadataToken, "s3cret"}, false},
		{"two tokens", []string{MetadataToken, "Bearer s3cret", MetadataToken, "Bearer s3cret"}, false},
		{"right", []string{MetadataToken, "Bearer s3cret"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			}
			_, err := client.CheckTarget(ctx, &netv1.CheckTargetRequest{Target: "x"})
			// "right" reaches the handler, which has no binding on an unminted server.
			if tc.allow && status.Code(err) == codes.PermissionDenied {
				t.Fatalf("denied: %v", err)
			}
			if !tc.allow && status.Code(err) != codes.PermissionDenied {
				t.Fatalf("err = %v, want PermissionDenied", err)
			}
		})
	}
}

type fixture struct {
	m       *Minter
	ctlPath string
	ctl     doorv1.ControlServiceClient
	dir     string
	audit   *auditLog
}

func newFixture(t *testing.T, validate func(Binding) error) *fixture {
	t.Helper()
	al := &auditLog{}
	log := al.logger()
	root := shortDir(t)
	dir := filepath.Join(root, "launch")
	m, err := NewMinter(MinterConfig{
		Door: "test", Version: "v0", Dir: dir, Logger: log, Validate: validate,
		Register:      func(s *grpc.Server) { netv1.RegisterEgressServiceServer(s, echoGuest{log: log}) },
		PolicySummary: func() string { return "allow example.com" },
		Counters:      func() map[string]int64 { return map[string]int64{"allowed": 3} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctlPath := filepath.Join(root, "ctl.sock")
	s := NewServer(Config{Door: "test", Logger: log, Authorize: SameUser()})
	m.RegisterControl(s.GRPC())
	l, err := Listen(ctlPath)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.Close(ctx)
		s.Stop(ctx)
	})
	return &fixture{m: m, ctlPath: ctlPath, ctl: doorv1.NewControlServiceClient(dial(t, ctlPath)), dir: dir, audit: al}
}

func hostCaveats(b Binding) error {
	for _, c := range b.Caveats {
		if c.Key != "host" {
			return fmt.Errorf("unknown caveat %s", c)
		}
	}
	return nil
}

func (f *fixture) check(t *testing.T, path, target string) (*netv1.CheckTargetResponse, error) {
	t.Helper()
	cc, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return netv1.NewEgressServiceClient(cc).CheckTarget(ctx, &netv1.CheckTargetRequest{Target: target})
}

func TestMintBindsAndRevokes(t *testing.T) {
	f := newFixture(t, hostCaveats)
	ctx := context.Background()
	resp, err := f.ctl.MintDoor(ctx, &doorv1.MintDoorRequest{
		LaunchId: "L1", Account: "work", PeerUid: -1,
		Caveats: []*doorv1.Caveat{{Key: "host", Value: "example.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := resp.GetSocketPath()
	if filepath.Dir(path) != f.dir {
		t.Fatalf("socket %s not in %s", path, f.dir)
	}
	di, _ := os.Stat(f.dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("launch dir mode %04o, want 0700", di.Mode().Perm())
	}
	got, err := f.check(t, path, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetVerdict().GetMessage() != "work/L1" {
		t.Fatalf("guest saw binding %q, want work/L1", got.GetVerdict().GetMessage())
	}
	if want := fmt.Sprintf("uid=%d pid=%d", os.Getuid(), os.Getpid()); got.GetVerdict().GetHost() != want {
		t.Fatalf("peer = %q, want %q", got.GetVerdict().GetHost(), want)
	}
	if _, err := f.check(t, path, "evil.example"); status.Code(err) != codes.PermissionDenied ||
		!strings.Contains(err.Error(), `host "evil.example" is not "example.com"`) {
		t.Fatalf("caveat not enforced: %v", err)
	}
	st, err := f.ctl.GetStatus(ctx, &doorv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetLaunches()) != 1 || st.GetLaunches()[0].GetAccount() != "work" || st.GetPolicySummary() != "allow example.com" ||
		st.GetCounters()["allowed"] != 3 || st.GetVersion() != "v0" {
		t.Fatalf("status = %v", st)
	}
	rv, err := f.ctl.RevokeDoor(ctx, &doorv1.RevokeDoorRequest{DoorId: resp.GetDoorId()})
	if err != nil || !rv.GetRevoked() {
		t.Fatalf("revoke: %v %v", rv, err)
	}
	if !gone(path)() {
		t.Fatal("socket file remains after revoke")
	}
	if _, err := f.check(t, path, "example.com"); status.Code(err) != codes.Unavailable {
		t.Fatalf("call after revoke: err = %v, want Unavailable", err)
	}
	rv, _ = f.ctl.RevokeDoor(ctx, &doorv1.RevokeDoorRequest{DoorId: resp.GetDoorId()})
	if rv.GetRevoked() {
		t.Fatal("second revoke reported revoked")
	}
	// One audit record per decision: mint, allowed check, denied check, revoke.
	var kinds []string
	for _, r := range f.audit.records(t) {
		kinds = append(kinds, fmt.Sprintf("%v:%v", r[KeyMethod], r[KeyAllow]))
		if r[KeyMethod] == "/claudebox.net.v1.EgressService/CheckTarget" && (r[KeyAccount] != "work" || r[KeyLaunch] != "L1") {
			t.Errorf("guest audit record lacks bound account/launch: %v", r)
		}
	}
	want := []string{"mint:true", "/claudebox.net.v1.EgressService/CheckTarget:true", "/claudebox.net.v1.EgressService/CheckTarget:false",
		"/claudebox.door.v1.ControlService/GetStatus:true", "revoke:true", "/claudebox.door.v1.ControlService/RevokeDoor:true"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("audit = %v, want %v", kinds, want)
	}
}

func TestMintRefusals(t *testing.T) {
	f := newFixture(t, hostCaveats)
	noCaveats := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.ctl.MintDoor(ctx, &doorv1.MintDoorRequest{LaunchId: "dup", Account: "a", PeerUid: -1}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		f    *fixture
		req  *doorv1.MintDoorRequest
		code codes.Code
		want string
	}{
		{"bad launch id", f, &doorv1.MintDoorRequest{LaunchId: "../x", Account: "a"}, codes.InvalidArgument, "launch id"},
		{"empty launch id", f, &doorv1.MintDoorRequest{Account: "a"}, codes.InvalidArgument, "launch id"},
		{"bad account", f, &doorv1.MintDoorRequest{LaunchId: "x", Account: "a/b"}, codes.InvalidArgument, "account"},
		{"duplicate launch", f, &doorv1.MintDoorRequest{LaunchId: "dup", Account: "a"}, codes.AlreadyExists, "already has a live door"},
		{"unknown caveat", f, &doorv1.MintDoorRequest{LaunchId: "x", Account: "a", Caveats: []*doorv1.Caveat{{Key: "path", Value: "/"}}}, codes.InvalidArgument, "unknown caveat path=/"},
		{"empty caveat key", f, &doorv1.MintDoorRequest{LaunchId: "x", Account: "a", Caveats: []*doorv1.Caveat{{Value: "v"}}}, codes.InvalidArgument, "empty key"},
		{"caveat value with a newline", f, &doorv1.MintDoorRequest{LaunchId: "x", Account: "a", Caveats: []*doorv1.Caveat{{Key: "host", Value: "a\nb"}}}, codes.InvalidArgument, "control character"},
		{"caveat key with a separator", f, &doorv1.MintDoorRequest{LaunchId: "x", Account: "a", Caveats: []*doorv1.Caveat{{Key: "host=x", Value: "v"}}}, codes.InvalidArgument, "separator"},
		{"caveat on a door without verifiers", noCaveats, &doorv1.MintDoorRequest{LaunchId: "x", Account: "a", Caveats: []*doorv1.Caveat{{Key: "host", Value: "h"}}}, codes.InvalidArgument, "interprets no caveats"},
		{"bindings on a door without bindings", noCaveats, &doorv1.MintDoorRequest{LaunchId: "x", Account: "a", Bindings: map[string]string{"repo": "/"}}, codes.InvalidArgument, "takes no bindings"},
		{"negative ttl", f, &doorv1.MintDoorRequest{LaunchId: "x", Account: "a", Ttl: durationpb.New(-time.Second)}, codes.InvalidArgument, "negative ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.f.ctl.MintDoor(ctx, tc.req)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.code, tc.want)
			}
		})
	}
}

func TestLeaseBreakRevokes(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	var paths []string
	var ids []string
	for _, id := range []string{"A", "B"} {
		resp, err := f.ctl.MintDoor(ctx, &doorv1.MintDoorRequest{LaunchId: id, Account: "a", PeerUid: -1})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, resp.GetSocketPath())
		ids = append(ids, resp.GetDoorId())
	}
	lctx, cancel := context.WithCancel(ctx)
	stream, err := f.ctl.HoldLease(lctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&doorv1.HoldLeaseRequest{DoorIds: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	ack, err := stream.Recv()
	if err != nil || len(ack.GetDoorIds()) != 1 {
		t.Fatalf("ack %v %v", ack, err)
	}
	cancel() // the launcher dies: the stream breaks
	waitFor(t, "leased door revoked", gone(paths[0]))
	if gone(paths[1])() {
		t.Fatal("a door outside the lease was revoked")
	}
	if _, err := f.check(t, paths[0], "x"); status.Code(err) != codes.Unavailable {
		t.Fatalf("call after lease break: %v", err)
	}

	// A lease naming an unknown door fails and holds nothing.
	s2, err := f.ctl.HoldLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s2.Send(&doorv1.HoldLeaseRequest{DoorIds: []string{"nope"}})
	if _, err := s2.Recv(); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown door lease: %v", err)
	}
}

func TestTTLRevokes(t *testing.T) {
	f := newFixture(t, nil)
	revoked := make(chan string, 1)
	f.m.cfg.OnRevoke = func(b Binding, reason string) { revoked <- b.LaunchID + ":" + reason }
	resp, err := f.ctl.MintDoor(context.Background(), &doorv1.MintDoorRequest{LaunchId: "T", Account: "a", PeerUid: -1, Ttl: durationpb.New(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetExpiresAt() == nil {
		t.Fatal("no expiry reported")
	}
	waitFor(t, "ttl revocation", gone(resp.GetSocketPath()))
	if got := <-revoked; got != "T:ttl_expired" {
		t.Fatalf("OnRevoke got %q", got)
	}
	if len(f.m.Live()) != 0 {
		t.Fatalf("live after ttl: %v", f.m.Live())
	}
}

func TestCloseAndRestartCleanup(t *testing.T) {
	dir := filepath.Join(shortDir(t), "launch")
	m, err := NewMinter(MinterConfig{Door: "test", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Mint(context.Background(), MintRequest{LaunchID: "C", Account: "a", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	m.Close(context.Background())
	if !gone(got.SocketPath)() {
		t.Fatal("socket remains after Close")
	}
	// A crash leaves a dead socket file behind; the next start removes it.
	crashed := filepath.Join(dir, "crashed-00000000.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: crashed, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	_ = ul.Close()
	if _, err := NewMinter(MinterConfig{Door: "test", Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if !gone(crashed)() {
		t.Fatal("stale launch socket survived a restart")
	}
}

func TestSocketAccessForBoxUser(t *testing.T) {
	dir := filepath.Join(shortDir(t), "launch")
	m, err := NewMinter(MinterConfig{Door: "test", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	self := os.Geteuid()
	cases := []struct {
		name     string
		peer     int
		wantMode os.FileMode
		wantUID  int
	}{
		{"same uid stays private", self, 0o600, self},
		{"unknown uid is reachable only through the 0700 dir", -1, 0o666, self},
	}
	if self == 0 {
		cases = append(cases, struct {
			name     string
			peer     int
			wantMode os.FileMode
			wantUID  int
		}{"root chowns to the box uid", 1000, 0o600, 1000})
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Mint(context.Background(), MintRequest{LaunchID: fmt.Sprintf("P%d", i), Account: "a", PeerUID: tc.peer})
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(got.SocketPath)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.wantMode {
				t.Errorf("mode %04o, want %04o", fi.Mode().Perm(), tc.wantMode)
			}
			if uid := fileUID(fi); uid != tc.wantUID {
				t.Errorf("owner %d, want %d", uid, tc.wantUID)
			}
		})
	}
}

func TestStandingDoor(t *testing.T) {
	f := newFixture(t, nil)
	path := filepath.Join(shortDir(t), "standing.sock")
	if err := f.m.Standing(path, Binding{}); err != nil {
		t.Fatal(err)
	}
	got, err := f.check(t, path, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetVerdict().GetMessage() != "default/standing" {
		t.Fatalf("standing binding = %q", got.GetVerdict().GetMessage())
	}
}

func TestDialErrors(t *testing.T) {
	for _, addr := range []string{"", "unix://relative", "http://x", "nohostport"} {
		if _, err := Dial(addr); err == nil {
			t.Errorf("Dial(%q) succeeded", addr)
		}
	}
	path := filepath.Join(shortDir(t), "nobody.sock")
	cc := dial(t, path)
	err := Ping(context.Background(), cc, path)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want ErrUnavailable naming %s", err, path)
	}
}

var _ = io.EOF

func TestMintTCPNeedsItsToken(t *testing.T) {
	f := newFixture(t, nil)
	resp, err := f.ctl.MintDoor(context.Background(), &doorv1.MintDoorRequest{LaunchId: "tcp", Account: "mac", Transport: doorv1.Transport_TRANSPORT_TCP})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSocketPath() != "" || resp.GetToken() == "" || !strings.HasPrefix(resp.GetAddress(), "127.0.0.1:") {
		t.Fatalf("tcp mint = %v", resp)
	}
	call := func(opts ...grpc.DialOption) error {
		cc, err := Dial(resp.GetAddress(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cc.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		got, err := netv1.NewEgressServiceClient(cc).CheckTarget(ctx, &netv1.CheckTargetRequest{Target: "x"})
		if err == nil && got.GetVerdict().GetMessage() != "mac/tcp" {
			t.Fatalf("binding = %q", got.GetVerdict().GetMessage())
		}
		return err
	}
	if err := call(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("no token: %v", err)
	}
	if err := call(WithBearer("wrong")); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("wrong token: %v", err)
	}
	if err := call(WithBearer(resp.GetToken())); err != nil {
		t.Fatalf("right token: %v", err)
	}
	f.m.Revoke(resp.GetDoorId())
	if err := call(WithBearer(resp.GetToken())); status.Code(err) != codes.Unavailable {
		t.Fatalf("after revoke: %v", err)
	}
}

func TestAuditClipsGuestChosenFields(t *testing.T) {
	var al auditLog
	Audit(context.Background(), al.logger(), Record{Door: "d", Target: strings.Repeat("x", 1<<20), Allow: true})
	r := al.records(t)
	if len(r) != 1 {
		t.Fatalf("records = %d", len(r))
	}
	if got := r[0][KeyTarget].(string); len(got) > 1100 || !strings.HasSuffix(got, "(1048576 bytes)") {
		t.Fatalf("target not clipped: %d bytes", len(got))
	}
}
