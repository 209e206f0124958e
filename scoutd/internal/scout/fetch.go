package scout

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
)

// FetchRequest asks for one URL.
type FetchRequest struct {
	// URL is the absolute URL, as the box wrote it.
	URL string
	// MaxBytes lowers the body ceilings; 0 keeps the server's.
	MaxBytes int64
	// Timeout lowers the total time ceiling; 0 keeps the server's.
	Timeout time.Duration
	// Caveats are the caveats of the door the request came through.
	Caveats []guestroom.Caveat
}

// Head is the response head of a fetch.
type Head struct {
	// Status is the HTTP status of the final hop.
	Status int
	// ContentType is the final hop's Content-Type.
	ContentType string
	// FinalURL is the URL of the final hop (no userinfo, no query).
	FinalURL string
	// Redirects is the number of hops followed.
	Redirects int
	// DeclaredLength is the Content-Length of the final hop, -1 if none.
	DeclaredLength int64
}

// Digest closes a complete body.
type Digest struct {
	// Size of the (decoded) body in bytes.
	Size int64
	// SHA256 is the lowercase hex sha256 of the body.
	SHA256 string
}

// BodyWriter receives a fetch: the head once, then the body. The body is
// complete only when Fetch returns without error.
type BodyWriter interface {
	WriteHead(Head) error
	io.Writer
}

// DeadlineWriter is a writer to the box that bounds its own writes (a
// socket, a stream). Fetch and Snapshot give it the request's total
// deadline before the first write; it must fail a write still in progress
// at that deadline, and refuse later ones, with a timeout (ReasonTimeout),
// so a box that reads slowly but steadily, never idle long enough to trip
// the idle ceiling, cannot keep a request (its slot, its buffers) past its
// time ceiling.
type DeadlineWriter interface {
	SetTotalDeadline(time.Time)
}

// bindDeadline gives w the total deadline of ctx, if w takes one.
func bindDeadline(ctx context.Context, w any) {
	if d, ok := w.(DeadlineWriter); ok {
		if t, ok := ctx.Deadline(); ok {
			d.SetTotalDeadline(t)
		}
	}
}

// errSink marks a failure of the caller's writer (the client went away),
// as opposed to the upstream.
type errSink struct{ err error }

func (e *errSink) Error() string { return "write to client: " + e.err.Error() }
func (e *errSink) Unwrap() error { return e.err }

// Fetch reads one URL under the policy and streams it to w. On error the
// body written so far is incomplete and must be discarded.
func (s *Scout) Fetch(ctx context.Context, req FetchRequest, w BodyWriter) (Head, Digest, error) {
	maxWire := lower(s.limits.MaxBytes, req.MaxBytes)
	maxDecoded := lower(s.limits.MaxDecodedBytes, req.MaxBytes)
	timeout := lower(s.limits.Timeout, req.Timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTotalTimeout)
	defer cancel()
	bindDeadline(ctx, w)

	sc := scope{caveats: req.Caveats}
	u, err := s.checkURL(req.URL, sc)
	if err != nil {
		return Head{}, Digest{}, Classify(ctx, err)
	}
	hreq, err := http.NewRequestWithContext(withScope(ctx, sc), http.MethodGet, u.String(), nil)
	if err != nil {
		return Head{}, Digest{}, invalid("url %q: %v", req.URL, err)
	}
	hreq.Header.Set("User-Agent", s.ua)
	hreq.Header.Set("Accept-Encoding", "gzip")
	hreq.Header.Set("Accept", "*/*")

	resp, err := s.web.Do(hreq)
	if err != nil {
		return Head{}, Digest{}, Classify(ctx, err)
	}
	defer func() { _ = resp.Body.Close() }()

	head := Head{
		Status:         resp.StatusCode,
		ContentType:    resp.Header.Get("Content-Type"),
		FinalURL:       redact(resp.Request.URL),
		DeclaredLength: resp.ContentLength,
	}
	for r := resp.Request; r != nil && r.Response != nil; r = r.Response.Request {
		head.Redirects++
	}

	var body io.Reader
	switch enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		limit := min(maxWire, maxDecoded)
		if resp.ContentLength > limit {
			return head, Digest{}, tooLarge(ReasonTooLarge, limit)
		}
		body = &capReader{r: resp.Body, max: limit, reason: ReasonTooLarge}
	case "gzip", "x-gzip":
		if resp.ContentLength > maxWire {
			return head, Digest{}, tooLarge(ReasonTooLarge, maxWire)
		}
		zr, err := gzip.NewReader(&capReader{r: resp.Body, max: maxWire, reason: ReasonTooLarge})
		if err != nil {
			return head, Digest{}, Classify(ctx, badEncoding(err))
		}
		body = &capReader{r: &decodeErrs{zr}, max: maxDecoded, reason: ReasonDecodedTooLarge}
	default:
		return head, Digest{}, &Error{Kind: KindUnavailable, Reason: ReasonBadEncoding, Err: fmt.Errorf("content encoding %q was not asked for", enc)}
	}

	if err := w.WriteHead(head); err != nil {
		return head, Digest{}, Classify(ctx, &errSink{err})
	}
	n, sum, err := copyBody(w, body)
	if err != nil {
		return head, Digest{}, Classify(ctx, err)
	}
	return head, Digest{Size: n, SHA256: sum}, nil
}

func tooLarge(reason string, limit int64) *Error {
	return &Error{Kind: KindTooLarge, Reason: reason, Err: fmt.Errorf("body exceeds %d bytes", limit)}
}

func badEncoding(err error) *Error {
	return &Error{Kind: KindUnavailable, Reason: ReasonBadEncoding, Err: fmt.Errorf("gzip body: %w", err)}
}

// Body copying: buffers of copyChunk bytes, copyBuffers of them in flight.
const (
	copyChunk   = 256 << 10
	copyFill    = 128 << 10 // a read stops filling a buffer past this
	copyBuffers = 12
)

// copyBody copies r to w like io.Copy and returns the size and the hex
// sha256 of what it copied, telling writer failures (errSink) from reader
// failures. Reading, hashing and writing are three stages on their own
// goroutines, a buffer passing from one to the next (read → hash → write
// → free), so on a machine of a few cores the upstream read, the digest
// and the write to the box overlap instead of adding up: a reader that
// had to wait for each write to drain would stall the upstream as well.
// w sees its writes in order, from one goroutine, and copyBody returns
// only after the last one.
func copyBody(w io.Writer, r io.Reader) (int64, string, error) {
	free := make(chan []byte, copyBuffers)
	for range copyBuffers {
		free <- make([]byte, copyChunk)
	}
	toHash := make(chan []byte, copyBuffers)
	toWrite := make(chan []byte, copyBuffers)
	hashed := make(chan string, 1)
	go func() {
		h := sha256.New()
		for b := range toHash {
			_, _ = h.Write(b)
			toWrite <- b
		}
		close(toWrite)
		hashed <- hex.EncodeToString(h.Sum(nil))
	}()
	// The writer stage: after a failed write it only returns buffers, and
	// failed tells the reader to stop.
	var (
		n    int64
		werr error
	)
	failed := make(chan struct{})
	written := make(chan struct{})
	go func() {
		defer close(written)
		for b := range toWrite {
			if werr == nil {
				if _, err := w.Write(b); err != nil {
					werr = err
					close(failed)
				} else {
					n += int64(len(b))
				}
			}
			free <- b[:cap(b)]
		}
	}()
	// finish drains the stages; the writer's failure comes first in the
	// body's order, so it wins over the reader's.
	finish := func(rerr error) (int64, string, error) {
		close(toHash)
		sum := <-hashed
		<-written
		switch {
		case werr != nil:
			return n, "", &errSink{werr}
		case rerr != nil:
			return n, "", rerr
		}
		return n, sum, nil
	}
	for {
		// A failed write stops the reading at once, whether or not a free
		// buffer is waiting too.
		select {
		case <-failed:
			return finish(nil)
		default:
		}
		var buf []byte
		select {
		case buf = <-free:
		case <-failed:
			return finish(nil)
		}
		k, rerr := fill(r, buf)
		if k > 0 {
			toHash <- buf[:k]
		} else {
			free <- buf
		}
		if rerr == io.EOF {
			return finish(nil)
		}
		if rerr != nil {
			return finish(rerr)
		}
	}
}

// fill reads into buf until it holds copyFill bytes, r fails or ends, or
// a read returns nothing.
func fill(r io.Reader, buf []byte) (int, error) {
	k := 0
	for k < copyFill {
		m, err := r.Read(buf[k:])
		k += m
		if err != nil || m == 0 {
			return k, err
		}
	}
	return k, nil
}

// capReader fails with a too-large error once more than max bytes came
// through: it reads one byte past the ceiling to know.
type capReader struct {
	r      io.Reader
	max    int64
	n      int64
	reason string
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, tooLarge(c.reason, c.max)
	}
	if room := c.max + 1 - c.n; int64(len(p)) > room {
		p = p[:room]
	}
	k, err := c.r.Read(p)
	c.n += int64(k)
	if c.n > c.max {
		return 0, tooLarge(c.reason, c.max)
	}
	return k, err
}

// decodeErrs marks errors of the gzip decoder as bad encoding, leaving
// classified errors (ceilings, timeouts) from below it alone.
type decodeErrs struct{ r io.Reader }

func (d *decodeErrs) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		var e *Error
		if !errors.As(err, &e) {
			return n, badEncoding(err)
		}
	}
	return n, err
}
