package door

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Config configures a door server.
type Config struct {
	// Door is the door name used in audit records, e.g. "net".
	Door string
	// Logger receives audit records and runtime events; nil discards them.
	Logger *slog.Logger
	// Authorize decides every call. Nil denies every call: a server must say
	// who may call it.
	Authorize AuthorizeFunc
	// Raw, when set, serves connections that do not start with the HTTP/2
	// preface (see RawHandler).
	Raw RawHandler
	// ServerOptions are appended to the runtime's own (credentials,
	// interceptors, flow-control windows); they cannot replace the
	// interceptors.
	ServerOptions []grpc.ServerOption
	// AuditBudget bounds the refusal, informational and unaudited records
	// of the server's launch, each kind in its own bucket (per uid on a door
	// not bound to a launch); the zero value means the defaults.
	AuditBudget AuditBudget
	// Informational lists the full gRPC method names
	// ("/claudebox.keeper.v1.KeeperService/GetPublicKey") of the calls that
	// only answer a question and change nothing: their allowed records
	// (failures after an allow included) are budgeted (BudgetInformational)
	// instead of always written, since a guest can loop on them at no cost.
	// A method that changes state (a commit, a push, a tunnel, a fetch) must
	// not be listed: its records are the evidence of what a guest did.
	Informational []string
	// binding, when set, is attached to every call (minted and standing doors).
	binding *Binding
	// limits are the connection ceilings; zero means the defaults.
	limits connLimits
}

// Flow-control windows and buffers of every door server. gRPC's 64 KiB
// defaults make a bulk stream (a tunnel, a fetch body) stall on window
// updates and issue many small writes; doors carry bulk data.
const (
	streamWindow = 4 << 20
	connWindow   = 8 << 20
	writeBuffer  = 256 << 10
	// maxStreams bounds the concurrent calls of one connection, so one
	// client cannot make a door hold unbounded goroutines; daemons keep their
	// own, lower, per-launch caps.
	maxStreams = 2048
)

// Server is a gRPC server with the runtime's interceptors: peer credentials,
// one authorization decision per call that denies by default, one audit
// record per call, panic recovery, and the standard health service.
type Server struct {
	cfg     Config
	log     *slog.Logger
	grpc    *grpc.Server
	health  *health.Server
	budgets *doorBudgets
	// informational is the set of Config.Informational.
	informational map[string]bool

	mu      sync.Mutex
	serving bool
	// mux is the listener that tells raw connections from gRPC ones; nil
	// without a raw handler.
	mux *muxListener
}

// NewServer builds a server from cfg. Register services on GRPC() before
// calling Serve.
func NewServer(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, health: health.NewServer(), budgets: newDoorBudgets(cfg.AuditBudget, cfg.binding),
		informational: map[string]bool{}}
	for _, m := range cfg.Informational {
		s.informational[m] = true
	}
	opts := append([]grpc.ServerOption{
		grpc.Creds(peerCreds{}),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.WriteBufferSize(writeBuffer),
		grpc.ReadBufferSize(writeBuffer),
		grpc.MaxConcurrentStreams(maxStreams),
		// A client that never completes the HTTP/2 handshake is dropped.
		grpc.ConnectionTimeout(rawDeadline),
	}, cfg.ServerOptions...)
	opts = append(opts, grpc.ChainUnaryInterceptor(s.unary), grpc.ChainStreamInterceptor(s.stream))
	s.grpc = grpc.NewServer(opts...)
	// Not serving until Serve has a listener.
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	return s
}

// GRPC returns the underlying server for registering services.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Serve serves on l until Stop. Health reports SERVING from here on.
func (s *Server) Serve(l net.Listener) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.mu.Lock()
	s.serving = true
	limits := s.cfg.limits.withDefaults()
	if s.cfg.Raw != nil {
		s.mux = newMuxListener(l, s, limits.sniffing)
		l = s.mux
	}
	s.mu.Unlock()
	l = newLimitListener(l, s, limits.grpc)
	err := s.grpc.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop stops gracefully until ctx is done, then forcefully, and writes the
// final summaries of the records its budgets counted.
func (s *Server) Stop(ctx context.Context) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
	s.closeAudit()
}

// closeAudit writes the final summaries and stops the budget's timers. A
// refusal audited after it (a handler still returning) is written.
func (s *Server) closeAudit() { s.budgets.close() }

// healthPrefix is exempt from authorization: health reveals nothing and is
// how supervisors know a door is up.
const healthPrefix = "/grpc.health.v1.Health/"

func (s *Server) begin(ctx context.Context, method string) (context.Context, *callState) {
	cs := &callState{door: s.cfg.Door, method: method, budgets: s.budgets, informational: s.informational[method]}
	ctx = withCall(ctx, cs)
	if s.cfg.binding != nil {
		ctx = withBinding(ctx, *s.cfg.binding)
	}
	return ctx, cs
}

func (s *Server) authorize(ctx context.Context, method string) error {
	if strings.HasPrefix(method, healthPrefix) {
		return nil
	}
	if s.cfg.Authorize == nil {
		return ErrNoAuthorizer
	}
	return s.cfg.Authorize(ctx, method)
}

// finish audits a call its handler did not audit, and turns a panic into an
// Internal error. A refusal's code makes it a refusal; any other outcome is
// written as allowed (with the error, if any) and charged to the unaudited
// budget (the informational one for an informational method): the runtime
// cannot tell what such a call cost, and a guest may be able to repeat it
// for nothing (an unimplemented method, a call cancelled before its handler
// audits).
func (s *Server) finish(ctx context.Context, cs *callState, method string, err error) {
	if cs.audited.Load() || strings.HasPrefix(method, healthPrefix) {
		return
	}
	r := Record{Method: method, Allow: err == nil}
	if err != nil {
		st, _ := status.FromError(err)
		r.Reason = strings.ToLower(st.Code().String())
		if st.Code() != codes.PermissionDenied && st.Code() != codes.Unauthenticated &&
			st.Code() != codes.InvalidArgument && st.Code() != codes.FailedPrecondition {
			r.Allow = true
			r.Err = err
		}
	}
	audit(ctx, s.log, r, true)
}

func (s *Server) recovered(method string, p any) error {
	s.log.Error("panic in handler", slog.String(KeyDoor, s.cfg.Door), slog.String(KeyMethod, method),
		slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
	return status.Error(codes.Internal, "internal error")
}

func (s *Server) deny(ctx context.Context, method string, err error) error {
	if cs, ok := ctx.Value(callKey{}).(*callState); ok {
		cs.unauthorized.Store(true)
	}
	Audit(ctx, s.log, Record{Method: method, Allow: false, Reason: "unauthorized", Attrs: []slog.Attr{slog.String("why", err.Error())}})
	return status.Error(codes.PermissionDenied, fmt.Sprintf("%s door: permission denied", s.cfg.Door))
}

func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	ctx, cs := s.begin(ctx, info.FullMethod)
	if aerr := s.authorize(ctx, info.FullMethod); aerr != nil {
		return nil, s.deny(ctx, info.FullMethod, aerr)
	}
	defer func() {
		if p := recover(); p != nil {
			err = s.recovered(info.FullMethod, p)
		}
		s.finish(ctx, cs, info.FullMethod, err)
	}()
	return handler(ctx, req)
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w wrappedStream) Context() context.Context { return w.ctx }

func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ctx, cs := s.begin(ss.Context(), info.FullMethod)
	if aerr := s.authorize(ctx, info.FullMethod); aerr != nil {
		return s.deny(ctx, info.FullMethod, aerr)
	}
	defer func() {
		if p := recover(); p != nil {
			err = s.recovered(info.FullMethod, p)
		}
		s.finish(ctx, cs, info.FullMethod, err)
	}()
	return handler(srv, wrappedStream{ServerStream: ss, ctx: ctx})
}
