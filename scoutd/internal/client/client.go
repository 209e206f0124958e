// Package client is the in-box half of the scout door: the `scout` command
// and the calls it makes. It asks the door for content and writes it out
// without trusting it: a body counts only once its trailer arrived and its
// digest matched, a snapshot is extracted with internal/extract, and text
// for a terminal has its control characters escaped.
package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/extract"
)

// ErrIncomplete reports a stream that ended without a trailer, or whose
// trailer does not match what arrived.
var ErrIncomplete = errors.New("incomplete")

// Client calls a scout door.
type Client struct {
	api scoutv1.ScoutServiceClient
}

// New returns a Client on cc.
func New(cc grpc.ClientConnInterface) *Client {
	return &Client{api: scoutv1.NewScoutServiceClient(cc)}
}

// FetchResult is what a complete fetch returned.
type FetchResult struct {
	Head    *scoutv1.FetchHead
	Trailer *scoutv1.FetchTrailer
}

// Fetch streams url's body into w and returns the head and trailer. It
// fails with ErrIncomplete when the stream ends without a trailer or the
// trailer disagrees with the bytes received; w then holds a partial body.
func (c *Client) Fetch(ctx context.Context, req *scoutv1.FetchRequest, w io.Writer) (FetchResult, error) {
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
