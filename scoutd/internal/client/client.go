// Package client is the in-box half of the scout door: the `scout` command
// and the calls it makes. It asks the door for content and writes it out
// without trusting it: a body counts only once its trailer arrived and
// matched what was received (its size, after an explicit end, on the raw
// fast path; its size and digest on gRPC), a snapshot is extracted with
// internal/extract, and text for a terminal has its control characters
// escaped.
package client

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/extract"
	"github.com/bounded-systems/claude-box/scoutd/internal/wire"
)

// ErrIncomplete reports a stream that ended without a trailer, or whose
// trailer does not match what arrived.
var ErrIncomplete = errors.New("incomplete")

// Client calls a scout door.
type Client struct {
	api scoutv1.ScoutServiceClient
	// raw, when set, is the door's unix socket: Fetch takes the raw fast
	// path (package wire) there instead of the gRPC stream.
	raw string
}

// New returns a Client on cc; Fetch uses gRPC until WithRaw.
func New(cc grpc.ClientConnInterface) *Client {
	return &Client{api: scoutv1.NewScoutServiceClient(cc)}
}

// WithRaw returns a copy of c whose fetches take the raw fast path over
// the unix socket at path (the same door cc reaches).
func (c *Client) WithRaw(path string) *Client {
	d := *c
	d.raw = path
	return &d
}

// RawPath is the unix socket path of a door address ("/path" or
// "unix:///path"), or "" for a TCP door, whose bearer token travels in gRPC
// metadata and which refuses raw connections.
func RawPath(addr string) string {
	switch {
	case strings.HasPrefix(addr, "unix:///"):
		return strings.TrimPrefix(addr, "unix://")
	case strings.HasPrefix(addr, "/"):
		return addr
	}
	return ""
}

// FetchResult is what a complete fetch returned.
type FetchResult struct {
	Head    *scoutv1.FetchHead
	Trailer *scoutv1.FetchTrailer
}

// Fetch streams url's body into w and returns the head and trailer. It
// fails with ErrIncomplete when the stream ends without a trailer or the
// trailer disagrees with the bytes received; w then holds a partial body.
// Refusals are gRPC status errors with the reason in an ErrorInfo, on
// either transport.
func (c *Client) Fetch(ctx context.Context, req *scoutv1.FetchRequest, w io.Writer) (FetchResult, error) {
	if c.raw != "" {
		line, err := wire.FormatRequest(wire.Request{URL: req.GetUrl(), MaxBytes: req.GetMaxBytes(), TimeoutMS: req.GetTimeoutMs()})
		if err != nil {
			return FetchResult{}, err
		}
		if len(line) <= wire.MaxRequestLine {
			return c.fetchRaw(ctx, line, w)
		}
		// A request longer than a door reads as a raw line goes by gRPC.
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.api.Fetch(ctx, req)
	if err != nil {
		return FetchResult{}, err
	}
	var res FetchResult
	h := sha256.New()
	var n int64
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		if m.GetHead() != nil {
			if res.Head != nil || n > 0 {
				return res, fmt.Errorf("%w: a second head", ErrIncomplete)
			}
			res.Head = m.GetHead()
		}
		if res.Trailer != nil {
			return res, fmt.Errorf("%w: data after the trailer", ErrIncomplete)
		}
		if c := m.GetChunk(); len(c) > 0 {
			if _, err := w.Write(c); err != nil {
				return res, fmt.Errorf("write body: %w", err)
			}
			_, _ = h.Write(c)
			n += int64(len(c))
		}
		if m.GetTrailer() != nil {
			res.Trailer = m.GetTrailer()
		}
	}
	if res.Head == nil || res.Trailer == nil {
		return res, fmt.Errorf("%w: the stream ended without a trailer", ErrIncomplete)
	}
	if res.Trailer.GetSize() != n || res.Trailer.GetSha256() != hex.EncodeToString(h.Sum(nil)) {
		return res, fmt.Errorf("%w: received %d bytes that do not match the trailer", ErrIncomplete, n)
	}
	return res, nil
}

// fetchRaw is Fetch over the raw protocol: one connection, the request
// line, the head line, length-prefixed frames read straight into one
// buffer, and the end line. The body counts only when the end line came
// after a zero-length frame, nothing followed it, and its size matches what
// arrived.
//
// The client does not hash the body again. The trailer exists to tell a
// complete body from a cut one (a ceiling, a revoked door, a crash), and the
// framing, the explicit end and the size do that; the bytes cross a local
// socket, which does not corrupt them; and the one party that could lie
// about them is scoutd, which computes the digest itself, so a second hash
// here would defend against nothing but a framing bug (which the tests
// pin). It would cost as much CPU as the whole direct read on a 2-core box
// (sha256 runs at ~1.4 GB/s with SHA-NI, AES-GCM at several). The printed
// sha256 is scoutd's, of the body it read and sent.
func (c *Client) fetchRaw(ctx context.Context, line []byte, w io.Writer) (FetchResult, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.raw)
	if err != nil {
		return FetchResult{}, status.Error(codes.Unavailable, err.Error())
	}
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	// cut reports a connection that ended or failed before the end line.
	cut := func(what string, err error) error {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return fmt.Errorf("%w: %s: %v", ErrIncomplete, what, err)
	}
	if _, err := conn.Write(line); err != nil {
		return FetchResult{}, status.Error(codes.Unavailable, err.Error())
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	var head wire.Head
	if err := wire.ReadLine(br, &head); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && ctx.Err() == nil {
			// Closed without a word: the door is gone or not a scout door.
			return FetchResult{}, status.Error(codes.Unavailable, "the door closed the connection")
		}
		return FetchResult{}, cut("the head", err)
	}
	if head.Error != nil {
		return FetchResult{}, wireStatus(head.Error)
	}
	if head.Status == 0 {
		return FetchResult{}, fmt.Errorf("%w: a head without a status", ErrIncomplete)
	}
	res := FetchResult{Head: &scoutv1.FetchHead{Status: head.Status, ContentType: head.ContentType, FinalUrl: head.FinalURL,
		Redirects: head.Redirects, DeclaredLength: head.DeclaredLength}}
	buf := make([]byte, wire.MaxFrame)
	var hdr [wire.FrameHeader]byte
	var n int64
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return res, cut("the body ended without a trailer", err)
		}
		k, err := wire.FrameLen(hdr[:])
		if err != nil {
			return res, fmt.Errorf("%w: %v", ErrIncomplete, err)
		}
		if k == 0 {
			break
		}
		if _, err := io.ReadFull(br, buf[:k]); err != nil {
			return res, cut("the body ended within a frame", err)
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return res, fmt.Errorf("write body: %w", err)
		}
		n += int64(k)
	}
	var end wire.End
	if err := wire.ReadLine(br, &end); err != nil {
		return res, cut("the trailer", err)
	}
	if end.Error != nil {
		return res, wireStatus(end.Error)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return res, fmt.Errorf("%w: data after the trailer", ErrIncomplete)
	}
	if end.Size != n || !wire.ValidDigest(end.SHA256) {
		return res, fmt.Errorf("%w: received %d bytes that do not match the trailer", ErrIncomplete, n)
	}
	res.Trailer = &scoutv1.FetchTrailer{Size: end.Size, Sha256: end.SHA256}
	return res, nil
}

// wireStatus is a raw refusal as the gRPC status the same refusal has on
// the gRPC path, so both are reported alike.
func wireStatus(e *wire.Error) error {
	st := status.New(wire.ParseCode(e.Code), e.Message)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: e.Reason, Domain: wire.ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// SnapshotResult is what a complete snapshot returned.
type SnapshotResult struct {
	Trailer *scoutv1.SnapshotTrailer
	Stats   extract.Stats
}

// Snapshot streams a repository tree into dir (which must exist) through
// the safe extractor. On error dir holds a partial tree the caller must
// remove.
func (c *Client) Snapshot(ctx context.Context, req *scoutv1.SnapshotRequest, dir string, lim extract.Limits) (SnapshotResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.api.Snapshot(ctx, req)
	if err != nil {
		return SnapshotResult{}, err
	}
	pr, pw := io.Pipe()
	type done struct {
		stats extract.Stats
		err   error
	}
	ch := make(chan done, 1)
	go func() {
		s, err := extract.Extract(pr, dir, lim)
		if err == nil {
			// Drain tar padding so the writer never blocks.
			_, err = io.Copy(io.Discard, pr)
		}
		_ = pr.CloseWithError(err)
		ch <- done{s, err}
	}()
	var res SnapshotResult
	h := sha256.New()
	var n int64
	recvErr := func() error {
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if res.Trailer != nil {
				return fmt.Errorf("%w: data after the trailer", ErrIncomplete)
			}
			if c := m.GetChunk(); len(c) > 0 {
				_, _ = h.Write(c)
				n += int64(len(c))
				if _, err := pw.Write(c); err != nil {
					return fmt.Errorf("extract: %w", err)
				}
			}
			if m.GetTrailer() != nil {
				res.Trailer = m.GetTrailer()
			}
		}
	}()
	if recvErr == nil && res.Trailer == nil {
		recvErr = fmt.Errorf("%w: the stream ended without a trailer", ErrIncomplete)
	}
	if recvErr == nil && (res.Trailer.GetSize() != n || res.Trailer.GetSha256() != hex.EncodeToString(h.Sum(nil))) {
		recvErr = fmt.Errorf("%w: received %d bytes that do not match the trailer", ErrIncomplete, n)
	}
	_ = pw.CloseWithError(recvErr)
	d := <-ch
	res.Stats = d.stats
	var re *extract.RefusedError
	switch {
	case d.err != nil && errors.As(d.err, &re) && re.Reason != extract.ReasonBadArchive:
		// The extractor refused what arrived: that is the cause.
		return res, fmt.Errorf("extract: %w", d.err)
	case recvErr != nil:
		return res, recvErr
	case d.err != nil:
		return res, fmt.Errorf("extract: %w", d.err)
	}
	return res, nil
}

// Issue reads an issue.
func (c *Client) Issue(ctx context.Context, req *scoutv1.GetIssueRequest) (*scoutv1.GetIssueResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.api.GetIssue(ctx, req)
}

// PullRequest reads a pull request.
func (c *Client) PullRequest(ctx context.Context, req *scoutv1.GetPullRequestRequest) (*scoutv1.GetPullRequestResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.api.GetPullRequest(ctx, req)
}

// Status reads the door's status.
func (c *Client) Status(ctx context.Context) (*scoutv1.GetStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return c.api.GetStatus(ctx, &scoutv1.GetStatusRequest{})
}
