// Package server adapts the scout domain to the scout/v1 door: it converts
// messages, reads the caller's caveats from the door's binding (never from
// the request), maps domain errors to gRPC status in one function, and
// writes exactly one audit record per request.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/egressdoor"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
	"github.com/bounded-systems/claude-box/scoutd/internal/wire"
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo on every error.
const ErrorDomain = wire.ErrorDomain

// ChunkSize is the largest body chunk sent in one message.
const ChunkSize = 1<<20 - 1024 // a message stays within gRPC's 1 MiB buffer tier

// Audit attribute keys beside the runtime's fixed ones.
const (
	keyKind    = "kind"
	keyBytes   = "bytes"
	keyStatus  = "status"
	keySHA256  = "sha256"
	keyCommit  = "commit"
	keyElapsed = "elapsed_ms"
)

// Server serves scout/v1 on a door.
type Server struct {
	scoutv1.UnimplementedScoutServiceServer
	scout   *scout.Scout
	log     *slog.Logger
	version string
	summary string

	// maxInFlight and maxSnapshots cap one launch's requests in flight.
	maxInFlight, maxSnapshots int

	mu        sync.Mutex
	counts    map[string]int64
	inFlight  map[string]int // by launch
	snapshots map[string]int // by launch
}

// Ceilings on one launch's requests in flight: a box cannot make scoutd
// hold more reads for it at once than this (a snapshot holds a repository
// in memory). Other launches are served regardless.
const (
	MaxInFlightPerLaunch  = 8
	MaxSnapshotsPerLaunch = 2
)

// New returns a Server over s. log receives the audit records.
func New(s *scout.Scout, log *slog.Logger, version string) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{scout: s, log: log, version: version, summary: Summary(s), counts: map[string]int64{},
		maxInFlight: MaxInFlightPerLaunch, maxSnapshots: MaxSnapshotsPerLaunch,
		inFlight: map[string]int{}, snapshots: map[string]int{}}
}

// enter takes one of the launch's in-flight slots (and a snapshot slot for
// a snapshot); the returned func gives them back.
func (s *Server) enter(ctx context.Context, snapshot bool) (func(), error) {
	b, _ := door.BindingFrom(ctx)
	l := b.LaunchID
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight[l] >= s.maxInFlight {
		return nil, &scout.Error{Kind: scout.KindTooLarge, Reason: scout.ReasonBusy, Err: fmt.Errorf("this launch already has %d requests in flight", s.inFlight[l])}
	}
	if snapshot && s.snapshots[l] >= s.maxSnapshots {
		return nil, &scout.Error{Kind: scout.KindTooLarge, Reason: scout.ReasonBusy, Err: fmt.Errorf("this launch already has %d snapshots in flight", s.snapshots[l])}
	}
	s.inFlight[l]++
	if snapshot {
		s.snapshots[l]++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.inFlight[l]--; s.inFlight[l] <= 0 {
			delete(s.inFlight, l)
		}
		if snapshot {
			if s.snapshots[l]--; s.snapshots[l] <= 0 {
				delete(s.snapshots, l)
			}
		}
	}, nil
}

// Counters reports requests by kind and outcome ("fetch_ok",
// "snapshot_denied", "issue_failed"), for the control service's status.
func (s *Server) Counters() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

func (s *Server) count(key string) {
	s.mu.Lock()
	s.counts[key]++
	s.mu.Unlock()
}

// Register registers the scout service on g (for door.MinterConfig.Register).
func (s *Server) Register(g *grpc.Server) { scoutv1.RegisterScoutServiceServer(g, s) }

// Summary is the one-line policy summary of s.
func Summary(s *scout.Scout) string {
	l := s.Limits()
	var b strings.Builder
	b.WriteString("allow=")
	if a := s.Allowlist(); len(a) > 0 {
		b.WriteString(strings.Join(a, ","))
	} else {
		b.WriteString("(none)")
	}
	b.WriteString(" github=" + s.GitHubAPI())
	if s.HasToken() {
		b.WriteString(" (token)")
	}
	b.WriteString(" max_bytes=" + itoa(l.MaxBytes) + " timeout=" + l.Timeout.String())
	return b.String()
}

// Snapshot implements scoutv1.ScoutServiceServer.
func (s *Server) Snapshot(req *scoutv1.SnapshotRequest, stream grpc.ServerStreamingServer[scoutv1.SnapshotResponse]) error {
	ctx := stream.Context()
	start := time.Now()
	release, err := s.enter(ctx, true)
	if err != nil {
		s.audit(ctx, "snapshot", redactURL(req.GetUrl()), err, start)
		return toStatus(ctx, err)
	}
	defer release()
	b, _ := door.BindingFrom(ctx)
	w := &snapWriter{stream: stream, idle: s.scout.Limits().Idle}
	res, err := s.scout.Snapshot(ctx, scout.SnapshotRequest{
		URL:      req.GetUrl(),
		Ref:      req.GetRef(),
		MaxBytes: req.GetMaxBytes(),
		MaxFiles: req.GetMaxFiles(),
		Caveats:  b.Caveats,
	}, w)
	if err == nil {
		err = w.finish(&scoutv1.SnapshotTrailer{Commit: res.Commit, Entries: res.Entries, Size: res.Size, Sha256: res.SHA256})
	}
	target := redactURL(req.GetUrl())
	if req.GetRef() != "" {
		target += "@" + req.GetRef()
	}
	s.audit(ctx, "snapshot", target, err, start,
		slog.Int64(keyBytes, w.sent), slog.String(keyCommit, res.Commit), slog.String(keySHA256, res.SHA256))
	return toStatus(ctx, err)
}

// GetIssue implements scoutv1.ScoutServiceServer.
func (s *Server) GetIssue(ctx context.Context, req *scoutv1.GetIssueRequest) (*scoutv1.GetIssueResponse, error) {
	start := time.Now()
	release, err := s.enter(ctx, false)
	if err != nil {
		s.audit(ctx, "issue", req.GetRepo()+"#"+itoa(req.GetNumber()), err, start)
		return nil, toStatus(ctx, err)
	}
	defer release()
	b, _ := door.BindingFrom(ctx)
	is, err := s.scout.Issue(ctx, scout.IssueRequest{Repo: req.GetRepo(), Number: req.GetNumber(), Comments: req.GetComments(), Caveats: b.Caveats})
	s.audit(ctx, "issue", req.GetRepo()+"#"+itoa(req.GetNumber()), err, start)
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &scoutv1.GetIssueResponse{Issue: issueMsg(is)}, nil
}

// GetPullRequest implements scoutv1.ScoutServiceServer.
func (s *Server) GetPullRequest(ctx context.Context, req *scoutv1.GetPullRequestRequest) (*scoutv1.GetPullRequestResponse, error) {
	start := time.Now()
	release, err := s.enter(ctx, false)
	if err != nil {
		s.audit(ctx, "pull_request", req.GetRepo()+"#"+itoa(req.GetNumber()), err, start)
		return nil, toStatus(ctx, err)
	}
	defer release()
	b, _ := door.BindingFrom(ctx)
	pr, err := s.scout.PullRequest(ctx, scout.PullRequestRequest{Repo: req.GetRepo(), Number: req.GetNumber(), Comments: req.GetComments(), Diff: req.GetDiff(), Caveats: b.Caveats})
	s.audit(ctx, "pull_request", req.GetRepo()+"#"+itoa(req.GetNumber()), err, start, slog.Int(keyBytes, len(pr.Diff)))
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	return &scoutv1.GetPullRequestResponse{
		Issue:   issueMsg(pr.Issue),
		Head:    valid(pr.Head),
		Base:    valid(pr.Base),
		Diff:    valid(pr.Diff),
		HeadSha: valid(pr.HeadSHA),
		Merged:  pr.Merged,
		Draft:   pr.Draft,
	}, nil
}

// GetStatus implements scoutv1.ScoutServiceServer.
func (s *Server) GetStatus(ctx context.Context, _ *scoutv1.GetStatusRequest) (*scoutv1.GetStatusResponse, error) {
	b, _ := door.BindingFrom(ctx)
	l := s.scout.Limits()
	resp := &scoutv1.GetStatusResponse{
		PolicySummary:    s.summary,
		MaxBytes:         l.MaxBytes,
		MaxDecodedBytes:  l.MaxDecodedBytes,
		TimeoutMs:        l.Timeout.Milliseconds(),
		MaxSnapshotBytes: l.MaxSnapshotBytes,
		MaxFiles:         l.MaxFiles,
		Allow:            s.scout.Allowlist(),
		GithubToken:      s.scout.HasToken(),
		Account:          b.Account,
		LaunchId:         b.LaunchID,
		Version:          s.version,
	}
	for _, c := range b.Caveats {
		resp.Caveats = append(resp.Caveats, c.String())
	}
	door.Audit(ctx, s.log, door.Record{Method: "status", Allow: true, Reason: "ok", Attrs: []slog.Attr{slog.String(keyKind, "status")}})
	return resp, nil
}

// audit writes the one record of a request. Refusals (policy, bad
// requests, ceilings) are allow=false; failures after the request was
// allowed are allow=true with the error.
func (s *Server) audit(ctx context.Context, kind, target string, err error, start time.Time, attrs ...slog.Attr) {
	r := door.Record{Method: kind, Target: bounded(target), Allow: true, Reason: "ok"}
	if err != nil {
		e := scout.Classify(ctx, err)
		r.Reason = e.Reason
		switch e.Kind {
		case scout.KindDenied, scout.KindInvalid, scout.KindTooLarge:
			r.Allow = false
			attrs = append(attrs, slog.String("why", bounded(e.Error())))
		default:
			r.Err = errors.New(bounded(e.Error()))
		}
	}
	r.Attrs = append([]slog.Attr{slog.String(keyKind, kind), slog.Int64(keyElapsed, time.Since(start).Milliseconds())}, attrs...)
	door.Audit(ctx, s.log, r)
	switch {
	case !r.Allow:
		s.count(kind + "_denied")
	case r.Err != nil:
		s.count(kind + "_failed")
	default:
		s.count(kind + "_ok")
	}
}

// maxAuditString bounds a string the box chose in an audit record, so one
// request cannot write megabytes into the host's log.
const maxAuditString = 1024

// bounded cuts s to maxAuditString bytes (on a rune boundary), marking the cut.
func bounded(s string) string { return door.Clip(s, maxAuditString) }

// toStatus is the one place domain errors become gRPC status: a code by
// kind, a message with the reason and a hint, and an ErrorInfo carrying
// the machine-stable reason (see describe). Status errors that carry no
// domain classification (a failed Send) pass through.
func toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isDomain(err) {
		return err
	}
	code, msg, reason := describe(ctx, err)
	st := status.New(code, msg)
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); derr == nil {
		st = d
	}
	return st.Err()
}

// describe is what the box is told about a failed request, on either
// transport: a code by kind, a message with the reason and a hint, and the
// machine-stable reason. Internal failures say nothing more.
func describe(ctx context.Context, err error) (codes.Code, string, string) {
	e := scout.Classify(ctx, err)
	var code codes.Code
	switch e.Kind {
	case scout.KindInvalid:
		code = codes.InvalidArgument
	case scout.KindDenied:
		code = codes.PermissionDenied
	case scout.KindTooLarge:
		code = codes.ResourceExhausted
	case scout.KindTimeout:
		code = codes.DeadlineExceeded
	case scout.KindUnavailable:
		code = codes.Unavailable
	case scout.KindNotFound:
		code = codes.NotFound
	default:
		code = codes.Internal
	}
	msg := valid(e.Error())
	switch {
	case code == codes.Internal:
		msg = "internal error"
	case errors.Is(err, egressdoor.ErrDoorDown):
		// The door's path and gRPC's dial error are the host's: scoutd's
		// log has them, the box does not.
		msg = e.Reason + ": scoutd's egress door does not answer"
	}
	if h := hint(err, e.Reason); h != "" {
		msg += "\nhint: " + h
	}
	return code, msg, e.Reason
}

// hint says how to get past err. A refusal or outage of the egress door
// is netd's, not scoutd's: its hint points at netd.
func hint(err error, reason string) string {
	switch {
	case errors.Is(err, egressdoor.ErrRefused):
		return "netd refused it: scoutd sends its own traffic through netd (--egress-door), so the operator must allow the host in netd's policy (netd --allow, its config or a profile) as well as scoutd's"
	case errors.Is(err, egressdoor.ErrDoorDown):
		return "netd, scoutd's egress door, does not answer: start it (`claude-box doors start`, or `netd serve` with the door scoutd names in --egress-door)"
	}
	return scout.Hint(reason)
}

// isDomain reports whether err carries a domain classification (a status
// error from a failed Send does not).
func isDomain(err error) bool {
	var e *scout.Error
	return errors.As(err, &e)
}

func issueMsg(is scout.Issue) *scoutv1.Issue {
	m := &scoutv1.Issue{
		Number:    is.Number,
		Title:     valid(is.Title),
		Body:      valid(is.Body),
		State:     valid(is.State),
		Author:    valid(is.Author),
		CreatedAt: valid(is.CreatedAt),
		UpdatedAt: valid(is.UpdatedAt),
		ClosedAt:  valid(is.ClosedAt),
		HtmlUrl:   valid(is.HTMLURL),
	}
	for _, l := range is.Labels {
		m.Labels = append(m.Labels, valid(l))
	}
	for _, c := range is.Comments {
		m.Comments = append(m.Comments, &scoutv1.Comment{Author: valid(c.Author), Body: valid(c.Body), CreatedAt: valid(c.CreatedAt)})
	}
	return m
}

// valid makes s valid UTF-8, as proto strings must be.
func valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// redactURL drops userinfo, query and fragment, for audit records.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		if len(raw) > 200 {
			raw = raw[:200]
		}
		return valid(raw)
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return valid(u.String())
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// snapWriter turns a snapshot into messages: tar chunks of at most
// ChunkSize, the last one with the trailer.
type snapWriter struct {
	stream grpc.ServerStreamingServer[scoutv1.SnapshotResponse]
	idle   time.Duration
	total  time.Time
	buf    []byte
	sent   int64
}

func (w *snapWriter) SetTotalDeadline(t time.Time) { w.total = t }

func (w *snapWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(ChunkSize-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == ChunkSize {
			if err := w.flush(nil); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *snapWriter) flush(tr *scoutv1.SnapshotTrailer) error {
	if len(w.buf) == 0 && tr == nil {
		return nil
	}
	m := &scoutv1.SnapshotResponse{Chunk: w.buf, Trailer: tr}
	if err := sendWithin(w.idle, w.total, func() error { return w.stream.Send(m) }); err != nil {
		w.buf = nil // an abandoned Send may still hold it
		return err
	}
	w.sent += int64(len(w.buf))
	w.buf = w.buf[:0] // Send has encoded the message: the buffer is ours again
	return nil
}

func (w *snapWriter) finish(tr *scoutv1.SnapshotTrailer) error { return w.flush(tr) }
