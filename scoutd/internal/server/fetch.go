package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"

	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
	"github.com/bounded-systems/claude-box/scoutd/internal/wire"
)

// fetchArgs is what a transport carries of a fetch request: never the
// caveats, which come from the door's binding.
type fetchArgs struct {
	URL      string
	MaxBytes int64
	Timeout  time.Duration
}

// fetchSink is how one transport delivers a fetch: the head and body as a
// scout.BodyWriter, then the trailer.
type fetchSink interface {
	scout.BodyWriter
	// SetTotalDeadline bounds every write, the trailer's too, by the
	// request's total deadline (scout.DeadlineWriter).
	scout.DeadlineWriter
	// finish delivers the trailer of a complete body.
	finish(scout.Digest) error
}

// counted counts the body bytes a fetch produced, whatever the transport
// buffers, so the audit record's bytes do not depend on the framing.
type counted struct {
	fetchSink
	n int64
}

func (c *counted) Write(p []byte) (int, error) {
	k, err := c.fetchSink.Write(p)
	c.n += int64(k)
	return k, err
}

// fetch is the one fetch both transports (the gRPC stream and the raw fast
// path) run, so they cannot drift: the launch's in-flight cap, the door's
// caveats, the policy and ceilings (a request may lower them only), the
// trailer, and exactly one audit record. It returns the domain error.
func (s *Server) fetch(ctx context.Context, a fetchArgs, sink fetchSink) error {
	start := time.Now()
	target := redactURL(a.URL)
	release, err := s.enter(ctx, false)
	if err != nil {
		s.audit(ctx, "fetch", target, err, start)
		return err
	}
	defer release()
	b, _ := door.BindingFrom(ctx)
	cs := &counted{fetchSink: sink}
	head, dg, err := s.scout.Fetch(ctx, scout.FetchRequest{URL: a.URL, MaxBytes: a.MaxBytes, Timeout: a.Timeout, Caveats: b.Caveats}, cs)
	if err == nil {
		err = sink.finish(dg)
	}
	s.audit(ctx, "fetch", target, err, start,
		slog.Int64(keyBytes, cs.n), slog.Int(keyStatus, head.Status), slog.String(keySHA256, dg.SHA256))
	return err
}

// Fetch implements scoutv1.ScoutServiceServer.
func (s *Server) Fetch(req *scoutv1.FetchRequest, stream grpc.ServerStreamingServer[scoutv1.FetchResponse]) error {
	ctx := stream.Context()
	err := s.fetch(ctx, fetchArgs{URL: req.GetUrl(), MaxBytes: req.GetMaxBytes(), Timeout: time.Duration(req.GetTimeoutMs()) * time.Millisecond},
		&fetchWriter{stream: stream, idle: s.scout.Limits().Idle})
	return toStatus(ctx, err)
}

// fetchWriter turns a fetch into messages: the head first, then body
// chunks of at most ChunkSize, the last one with the trailer.
type fetchWriter struct {
	stream grpc.ServerStreamingServer[scoutv1.FetchResponse]
	idle   time.Duration
	total  time.Time
	buf    []byte
}

func (w *fetchWriter) SetTotalDeadline(t time.Time) { w.total = t }

func (w *fetchWriter) WriteHead(h scout.Head) error {
	return sendWithin(w.idle, w.total, func() error {
		return w.stream.Send(&scoutv1.FetchResponse{Head: &scoutv1.FetchHead{
			Status:         int32(h.Status),
			ContentType:    valid(h.ContentType),
			FinalUrl:       valid(h.FinalURL),
			Redirects:      int32(h.Redirects),
			DeclaredLength: h.DeclaredLength,
		}})
	})
}

func (w *fetchWriter) Write(p []byte) (int, error) {
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

func (w *fetchWriter) flush(tr *scoutv1.FetchTrailer) error {
	if len(w.buf) == 0 && tr == nil {
		return nil
	}
	m := &scoutv1.FetchResponse{Chunk: w.buf, Trailer: tr}
	if err := sendWithin(w.idle, w.total, func() error { return w.stream.Send(m) }); err != nil {
		w.buf = nil // an abandoned Send may still hold it
		return err
	}
	w.buf = w.buf[:0] // Send has encoded the message: the buffer is ours again
	return nil
}

func (w *fetchWriter) finish(d scout.Digest) error {
	return w.flush(&scoutv1.FetchTrailer{Size: d.Size, Sha256: d.SHA256})
}

// Raw serves the raw fetch protocol (package wire) on a door, the fast path
// of `scout fetch` on a unix door (door.MinterConfig.Raw). It runs the same
// fetch as the gRPC method; only the framing differs. A request line that
// is not one fetch request is refused with bad_request, and audited.
func (s *Server) Raw(ctx context.Context, line string, conn net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Revocation and shutdown cut the connection, as they end a stream.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer func() { _ = conn.Close() }()
	// The client says nothing after its line: a read that returns means it
	// went away (or broke the protocol), and the fetch stops, as a cancelled
	// stream would.
	go func() {
		var b [1]byte
		_, _ = conn.Read(b[:])
		cancel()
	}()
	w := &rawWriter{conn: conn, idle: s.scout.Limits().Idle}
	req, err := wire.ParseRequest(line)
	if err != nil {
		err = &scout.Error{Kind: scout.KindInvalid, Reason: scout.ReasonBadRequest, Err: err}
		s.audit(ctx, "fetch", "", err, time.Now())
	} else {
		err = s.fetch(ctx, fetchArgs{URL: req.URL, MaxBytes: req.MaxBytes, Timeout: time.Duration(req.TimeoutMS) * time.Millisecond}, w)
	}
	if err != nil {
		w.fail(ctx, err)
	}
}

// rawWriter frames a fetch for the raw protocol: a head line, body frames
// of up to wire.MaxFrame bytes, a zero-length frame and an end line. A
// frame is written straight from the caller's buffer, its length prefix
// beside it (net.Buffers: one writev where the connection has it), so the
// body is never copied on its way to the socket.
type rawWriter struct {
	conn     net.Conn
	idle     time.Duration
	total    time.Time // the request's total deadline; zero: none
	hdr      [wire.FrameHeader]byte
	headSent bool
}

func (w *rawWriter) SetTotalDeadline(t time.Time) { w.total = t }

// deadline arms the ceilings for the next write: the idle one (a client
// that takes no bytes for that long fails the write, so a box that stops
// reading does not hold its slot forever), and no later than the request's
// total deadline (a box that reads slowly but steadily does not either).
func (w *rawWriter) deadline() {
	d := w.total
	if w.idle > 0 {
		if i := time.Now().Add(w.idle); d.IsZero() || i.Before(d) {
			d = i
		}
	}
	if !d.IsZero() {
		_ = w.conn.SetWriteDeadline(d)
	}
}

// failed is the error of a failed write: a timeout once the request's
// total deadline has passed, so the fetch ends with the time ceiling's
// reason whichever fired first, the write deadline or the fetch's context;
// an idle timeout when the client took nothing within the idle ceiling.
func (w *rawWriter) failed(err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if !w.total.IsZero() && !time.Now().Before(w.total) {
		return &scout.Error{Kind: scout.KindTimeout, Reason: scout.ReasonTimeout, Err: fmt.Errorf("%w: %w", errClientTooSlow.Err, err)}
	}
	// The idle ceiling: the same refusal as a stalled gRPC client's.
	return &scout.Error{Kind: scout.KindTimeout, Reason: scout.ReasonIdleTimeout, Err: fmt.Errorf("%w: %w", errClientStalled.Err, err)}
}

// write writes p under the ceilings.
func (w *rawWriter) write(p []byte) error {
	w.deadline()
	if _, err := w.conn.Write(p); err != nil {
		return w.failed(err)
	}
	return nil
}

func (w *rawWriter) WriteHead(h scout.Head) error {
	line, err := wire.Line(wire.Head{
		Status:         int32(h.Status),
		ContentType:    valid(h.ContentType),
		FinalURL:       valid(h.FinalURL),
		Redirects:      int32(h.Redirects),
		DeclaredLength: h.DeclaredLength,
	})
	if err != nil {
		return err
	}
	w.headSent = true
	return w.write(line)
}

// Write sends p as frames of at most wire.MaxFrame bytes. It returns only
// when every frame was written, so the caller may reuse p.
func (w *rawWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), wire.MaxFrame)
		wire.PutFrameHeader(w.hdr[:], k)
		w.deadline()
		bufs := net.Buffers{w.hdr[:], p[:k]}
		if _, err := bufs.WriteTo(w.conn); err != nil {
			return 0, w.failed(err)
		}
		p = p[k:]
	}
	return n, nil
}

// end writes the zero-length frame and the end line.
func (w *rawWriter) end(e wire.End) error {
	line, err := wire.Line(e)
	if err != nil {
		return err
	}
	return w.write(append(make([]byte, wire.FrameHeader), line...))
}

func (w *rawWriter) finish(d scout.Digest) error {
	return w.end(wire.End{Size: d.Size, SHA256: d.SHA256})
}

// fail tells the client why the fetch failed: as the head when no head was
// sent, else after the body frames sent so far, as the end line. describe
// is the gRPC path's mapping.
//
// The request is over by then (audited, its slot given back), so the
// failure itself is written under the idle ceiling alone: a fetch that hit
// its total deadline can still say so.
func (w *rawWriter) fail(ctx context.Context, err error) {
	w.total = time.Time{}
	code, msg, reason := describe(ctx, err)
	we := &wire.Error{Code: wire.CodeName(code), Reason: reason, Message: msg}
	if !w.headSent {
		if line, lerr := wire.Line(wire.Head{Error: we}); lerr == nil {
			_ = w.write(line)
		}
		return
	}
	_ = w.end(wire.End{Error: we})
}

// errClientStalled is a send that the client did not take within the idle
// ceiling.
var errClientStalled = &scout.Error{Kind: scout.KindTimeout, Reason: scout.ReasonIdleTimeout, Err: errors.New("the client took no bytes within the idle ceiling")}

// errClientTooSlow is a send that the client had not taken when the
// request's total deadline passed: the time ceiling bounds the delivery to
// the box too.
var errClientTooSlow = &scout.Error{Kind: scout.KindTimeout, Reason: scout.ReasonTimeout, Err: errors.New("the client had not taken the response within the request's time ceiling")}

// sendWithin runs send, giving up when it has not returned within idle,
// or by the request's total deadline (zero: none), whichever is first:
// gRPC's Send blocks for as long as the client keeps its stream open and
// does not read, and a box that stops reading must not hold its slot (and
// a snapshot's repository in memory) forever, as the raw path's write
// deadline ensures there. The handler then returns with the error, which
// ends the stream and with it the abandoned Send; nothing sends on the
// stream after a failed send. A send once the total deadline has passed
// is not started.
func sendWithin(idle time.Duration, total time.Time, send func() error) error {
	wait, cut := idle, error(errClientStalled)
	if !total.IsZero() {
		left := time.Until(total)
		if left <= 0 {
			return errClientTooSlow
		}
		if wait <= 0 || left < wait {
			wait, cut = left, errClientTooSlow
		}
	}
	if wait <= 0 {
		return send()
	}
	done := make(chan error, 1)
	go func() { done <- send() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return cut
	}
}
