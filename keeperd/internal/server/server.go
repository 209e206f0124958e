// Package server is the gRPC adapter of the keeper door: it converts
// claudebox.keeper.v1 requests into calls on a keeper.Keeper for the launch
// the door was minted for, maps domain errors to status codes in one
// function, and writes one audit record per request.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/keeperd/internal/keeper"
	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DoorName is the door's name in audit records and on the control socket.
const DoorName = "keeper"

// Binding keys a keeper door may be minted with.
const (
	// BindingRepo is the host path of the worktree (required).
	BindingRepo = "repo"
	// BindingManifest is the launch's manifest digest (optional).
	BindingManifest = "manifest"
)

// Audit attribute keys.
const (
	keyOp     = "op"
	keyRef    = "ref"
	keyCommit = "commit"
	keyOld    = "old"
	keyNew    = "new"
	keyFiles  = "files"
	keyRemote = "remote"
	keyWhy    = "why"
)

// Server serves KeeperService.
type Server struct {
	keeperv1.UnimplementedKeeperServiceServer
	k   *keeper.Keeper
	log *slog.Logger

	commits, pushes, signs, denials, failures atomic.Int64

	mu       sync.Mutex
	inFlight map[string]int // requests in flight, by launch
	// pins is each live door's worktree as it was at mint, by door id.
	pins map[string]*keeper.Pin
}

// MaxInFlightPerLaunch caps one launch's requests in flight: writes to one
// repository are serialized (and pushes of it to one remote), and a box
// must not queue unboundedly many behind those locks, each holding its
// request in memory. A push counts until it ends, however long its remote
// takes.
const MaxInFlightPerLaunch = 4

// enter takes one of the launch's in-flight slots; the returned func gives
// it back.
func (s *Server) enter(launch string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.inFlight[launch]; n >= MaxInFlightPerLaunch {
		return nil, fmt.Errorf("%w: this launch already has %d keeper requests in flight; retry when one ends", keeper.ErrRateLimited, n)
	}
	s.inFlight[launch]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.inFlight[launch]--; s.inFlight[launch] <= 0 {
			delete(s.inFlight, launch)
		}
	}, nil
}

// New builds the adapter. log receives the audit records.
func New(k *keeper.Keeper, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{k: k, log: log, inFlight: map[string]int{}, pins: map[string]*keeper.Pin{}}
}

// Register registers the guest service on g (MinterConfig.Register).
func (s *Server) Register(g *grpc.Server) { keeperv1.RegisterKeeperServiceServer(g, s) }

var manifestRe = regexp.MustCompile(`^[a-z0-9]+:[0-9a-f]{16,128}$`)

// Validate checks a door's binding at mint time: the repo binding must name
// a worktree under a policy repo root, the manifest digest (if any) must be
// well-formed, and the keeper door interprets no caveats. It pins the
// worktree the binding resolves to now: the door's requests work on it or
// are refused.
func (s *Server) Validate(b door.Binding) error {
	if len(b.Caveats) > 0 {
		return fmt.Errorf("keeper door interprets no caveats, refusing %s", b.Caveats[0])
	}
	keys := make([]string, 0, len(b.Bindings))
	for k := range b.Bindings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != BindingRepo && k != BindingManifest {
			return fmt.Errorf("keeper door takes no %q binding (want %q and optionally %q)", k, BindingRepo, BindingManifest)
		}
	}
	if m, ok := b.Bindings[BindingManifest]; ok && !manifestRe.MatchString(m) {
		return fmt.Errorf("manifest binding %q is not a digest", m)
	}
	pin, err := keeper.PinRepo(s.k.Policy(), b.Bindings[BindingRepo])
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pins[b.DoorID] = pin
	return nil
}

// PolicySummary is a one-line description for the control socket's status.
func (s *Server) PolicySummary() string {
	p := s.k.Policy()
	roots := make([]string, 0, len(p.Repos))
	for _, r := range p.Repos {
		roots = append(roots, r.Root)
	}
	return fmt.Sprintf("repo roots %d, branches %d, force %t, tags %t, identities %d, key %s",
		len(roots), len(p.Branches), p.Force, p.Tags, len(p.Identities), ssh.FingerprintSHA256(s.k.Key().PublicKey()))
}

// Counters reports request counts for the control socket's status.
func (s *Server) Counters() map[string]int64 {
	return map[string]int64{
		"commits": s.commits.Load(), "pushes": s.pushes.Load(), "signs": s.signs.Load(),
		"denials": s.denials.Load(), "failures": s.failures.Load(),
	}
}

// OnRevoke drops a finished launch's counters, rate budget and write log
// (MinterConfig.OnRevoke). The audit log keeps the record of its writes.
func (s *Server) OnRevoke(b door.Binding, _ string) {
	s.mu.Lock()
	delete(s.pins, b.DoorID)
	s.mu.Unlock()
	s.k.Forget(b.LaunchID)
}

// launch is what the door was minted for. The repository comes only from
// the binding, never from a request, and must still be the one pinned at
// mint.
func (s *Server) launch(ctx context.Context) (keeper.Launch, bool) {
	b, ok := door.BindingFrom(ctx)
	if !ok {
		return keeper.Launch{}, false
	}
	s.mu.Lock()
	pin := s.pins[b.DoorID]
	s.mu.Unlock()
	if pin == nil {
		// Every door keeperd serves was pinned by Validate; one that was
		// not is no door of this server's, and gets nothing.
		return keeper.Launch{}, false
	}
	return keeper.Launch{ID: b.LaunchID, Account: b.Account, Repo: b.Bindings[BindingRepo], ManifestDigest: b.Bindings[BindingManifest], Pin: pin}, true
}

var errUnbound = fmt.Errorf("%w: this socket is not a keeper door", keeper.ErrDenied)

// toStatus maps a domain error to a gRPC status. It is the only place that
// does. Internal details stay in the audit log; the box gets a reason it
// can act on.
func toStatus(err error, repo string) error {
	if err == nil {
		return nil
	}
	// The box knows its worktree as /work: the host path of the bound
	// repository (in the audit record) is not the box's to read.
	msg := err.Error()
	if repo != "" {
		msg = strings.ReplaceAll(msg, repo, "<bound repository>")
	}
	switch {
	case errors.Is(err, keeper.ErrDenied), errors.Is(err, keeper.ErrPath):
		return status.Error(codes.PermissionDenied, msg)
	case errors.Is(err, keeper.ErrInvalid):
		return status.Error(codes.InvalidArgument, msg)
	case errors.Is(err, keeper.ErrPrecondition):
		return status.Error(codes.FailedPrecondition, msg)
	case errors.Is(err, keeper.ErrRateLimited), errors.Is(err, keeper.ErrTooLarge):
		return status.Error(codes.ResourceExhausted, msg)
	case errors.Is(err, keeper.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.Error(codes.Unavailable, msg)
	}
	return status.Error(codes.Internal, "keeperd internal error (see the keeperd log on the host)")
}

// Audit reasons: machine-stable, one per domain error kind. The exact
// text of a refusal is in the record's "why".
const (
	ReasonOK           = "ok"
	ReasonDenied       = "denied"
	ReasonPath         = "path_refused"
	ReasonInvalid      = "invalid"
	ReasonPrecondition = "precondition"
	ReasonRateLimited  = "rate_limited"
	ReasonTooLarge     = "too_large"
	ReasonUnavailable  = "unavailable"
	ReasonInternal     = "internal"
)

// reasonOf maps a domain error to its audit reason.
func reasonOf(err error) string {
	switch {
	case err == nil:
		return ReasonOK
	case errors.Is(err, keeper.ErrPath):
		return ReasonPath
	case errors.Is(err, keeper.ErrDenied):
		return ReasonDenied
	case errors.Is(err, keeper.ErrInvalid):
		return ReasonInvalid
	case errors.Is(err, keeper.ErrPrecondition):
		return ReasonPrecondition
	case errors.Is(err, keeper.ErrRateLimited):
		return ReasonRateLimited
	case errors.Is(err, keeper.ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, keeper.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ReasonUnavailable
	}
	return ReasonInternal
}

// maxAuditString bounds a string the box chose in an audit record, so one
// request cannot write megabytes into the host's log.
const maxAuditString = 1024

// bounded cuts s to maxAuditString bytes (on a rune boundary), marking the cut.
func bounded(s string) string { return door.Clip(s, maxAuditString) }

// finish audits one request and converts its error.
func (s *Server) finish(ctx context.Context, l keeper.Launch, op string, err error, attrs ...slog.Attr) error {
	for i, a := range attrs {
		if a.Value.Kind() == slog.KindString {
			attrs[i].Value = slog.StringValue(bounded(a.Value.String()))
		}
	}
	r := door.Record{Door: DoorName, Target: l.Repo, Allow: err == nil, Reason: reasonOf(err),
		Attrs: append([]slog.Attr{slog.String(keyOp, op)}, attrs...)}
	if err != nil {
		r.Attrs = append(r.Attrs, slog.String(keyWhy, bounded(err.Error())))
		code := status.Code(toStatus(err, l.Repo))
		if code == codes.Internal || code == codes.Unavailable {
			r.Allow, r.Err = true, errors.New(bounded(err.Error()))
			s.failures.Add(1)
		} else {
			s.denials.Add(1)
		}
	}
	door.Audit(ctx, s.log, r)
	return toStatus(err, l.Repo)
}

func files(cs []keeper.Change) []*keeperv1.FileStatus {
	out := make([]*keeperv1.FileStatus, 0, len(cs))
	for _, c := range cs {
		out = append(out, &keeperv1.FileStatus{Path: c.Path, Status: c.Kind})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Commit makes one signed commit in the bound repository.
func (s *Server) Commit(ctx context.Context, req *keeperv1.CommitRequest) (*keeperv1.CommitResponse, error) {
	l, ok := s.launch(ctx)
	if !ok {
		return nil, s.finish(ctx, l, "commit", errUnbound)
	}
	release, err := s.enter(l.ID)
	if err != nil {
		return nil, s.finish(ctx, l, "commit", err)
	}
	defer release()
	res, err := s.k.Commit(ctx, l, keeper.CommitRequest{Message: req.GetMessage(), All: req.GetAll(), Paths: req.GetPaths(), Author: req.GetAuthor()})
	if err != nil {
		return nil, s.finish(ctx, l, "commit", err, slog.Bool("all", req.GetAll()), slog.Int("paths", len(req.GetPaths())))
	}
	s.commits.Add(1)
	_ = s.finish(ctx, l, "commit", nil, slog.String(keyRef, res.Branch), slog.String(keyCommit, res.Commit), slog.Int(keyFiles, len(res.Files)))
	return &keeperv1.CommitResponse{Commit: res.Commit, Branch: res.Branch, Files: files(res.Files)}, nil
}

// Push pushes one branch or tag of the bound repository.
func (s *Server) Push(ctx context.Context, req *keeperv1.PushRequest) (*keeperv1.PushResponse, error) {
	l, ok := s.launch(ctx)
	if !ok {
		return nil, s.finish(ctx, l, "push", errUnbound)
	}
	release, err := s.enter(l.ID)
	if err != nil {
		return nil, s.finish(ctx, l, "push", err)
	}
	defer release()
	ref := req.GetBranch()
	if t := req.GetTag(); t != "" {
		if ref != "" {
			return nil, s.finish(ctx, l, "push", fmt.Errorf("%w: name a branch or a tag, not both", keeper.ErrInvalid))
		}
		ref = "refs/tags/" + t
	}
	res, err := s.k.Push(ctx, l, keeper.PushRequest{Remote: req.GetRemote(), Ref: ref, Force: req.GetForce()})
	if err != nil {
		return nil, s.finish(ctx, l, "push", err, slog.String(keyRemote, req.GetRemote()), slog.String(keyRef, ref), slog.Bool("force", req.GetForce()))
	}
	s.pushes.Add(1)
	_ = s.finish(ctx, l, "push", nil, slog.String(keyRemote, res.Remote), slog.String(keyRef, res.Ref), slog.String(keyOld, res.Old), slog.String(keyNew, res.New), slog.Int("commits", res.Commits))
	return &keeperv1.PushResponse{Remote: res.Remote, Ref: res.Ref, OldCommit: res.Old, NewCommit: res.New, Commits: int32(min(res.Commits, 1<<30))}, nil
}

// Sign signs a commit or tag payload (the gpg.ssh.program path).
func (s *Server) Sign(ctx context.Context, req *keeperv1.SignRequest) (*keeperv1.SignResponse, error) {
	l, ok := s.launch(ctx)
	if !ok {
		return nil, s.finish(ctx, l, "sign", errUnbound)
	}
	release, err := s.enter(l.ID)
	if err != nil {
		return nil, s.finish(ctx, l, "sign", err)
	}
	defer release()
	sig, err := s.k.Sign(ctx, l, req.GetNamespace(), req.GetPayload())
	if err != nil {
		return nil, s.finish(ctx, l, "sign", err, slog.String("namespace", req.GetNamespace()), slog.Int("payload_bytes", len(req.GetPayload())))
	}
	s.signs.Add(1)
	_ = s.finish(ctx, l, "sign", nil, slog.Int("payload_bytes", len(req.GetPayload())))
	return &keeperv1.SignResponse{Signature: sig}, nil
}

// GetStatus reports what `keeper commit -a` would commit.
func (s *Server) GetStatus(ctx context.Context, _ *keeperv1.GetStatusRequest) (*keeperv1.GetStatusResponse, error) {
	l, ok := s.launch(ctx)
	if !ok {
		return nil, s.finish(ctx, l, "status", errUnbound)
	}
	release, err := s.enter(l.ID)
	if err != nil {
		return nil, s.finish(ctx, l, "status", err)
	}
	defer release()
	st, err := s.k.Status(ctx, l)
	if err != nil {
		return nil, s.finish(ctx, l, "status", err)
	}
	_ = s.finish(ctx, l, "status", nil, slog.String(keyRef, st.Branch), slog.String(keyCommit, st.Head), slog.Int(keyFiles, len(st.Files)))
	return &keeperv1.GetStatusResponse{Branch: st.Branch, Head: st.Head, Files: files(st.Files),
		BranchAllowed: st.Branch != "" && s.k.Policy().BranchAllowed(st.Branch)}, nil
}

// GetPublicKey returns the signing public key.
func (s *Server) GetPublicKey(ctx context.Context, _ *keeperv1.GetPublicKeyRequest) (*keeperv1.GetPublicKeyResponse, error) {
	l, _ := s.launch(ctx)
	_ = s.finish(ctx, l, "public_key", nil)
	return &keeperv1.GetPublicKeyResponse{AuthorizedKey: s.k.PublicKey(), Fingerprint: ssh.FingerprintSHA256(s.k.Key().PublicKey())}, nil
}

// ListWrites lists what this launch has written.
func (s *Server) ListWrites(ctx context.Context, _ *keeperv1.ListWritesRequest) (*keeperv1.ListWritesResponse, error) {
	l, ok := s.launch(ctx)
	if !ok {
		return nil, s.finish(ctx, l, "list_writes", errUnbound)
	}
	ws := s.k.Writes(l.ID)
	out := make([]*keeperv1.Write, 0, len(ws))
	for _, w := range ws {
		out = append(out, &keeperv1.Write{Kind: w.Kind, Target: w.Target, Summary: w.Summary, Time: w.Time.UTC().Format(time.RFC3339)})
	}
	_ = s.finish(ctx, l, "list_writes", nil, slog.Int("writes", len(out)))
	return &keeperv1.ListWritesResponse{Writes: out}, nil
}
