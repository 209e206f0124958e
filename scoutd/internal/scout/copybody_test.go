package scout

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// copyBody hashes beside the copy: the digest and size are those of every
// byte copied, in order, whatever the read sizes; a failing writer is an
// errSink and a failing reader is its own error.
func TestCopyBody(t *testing.T) {
	body := make([]byte, 3*copyChunk+12345)
	_, _ = rand.Read(body)
	for name, r := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(body) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(body[:70000])) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(body)) },
		"data+eof": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(body)) },
		"empty":    func() io.Reader { return bytes.NewReader(nil) },
	} {
		t.Run(name, func(t *testing.T) {
			src, _ := io.ReadAll(r())
			var out bytes.Buffer
			n, sum, err := copyBody(&out, r())
			w := sha256.Sum256(src)
			if err != nil || n != int64(len(src)) || !bytes.Equal(out.Bytes(), src) || sum != hex.EncodeToString(w[:]) {
				t.Fatalf("copyBody: n=%d err=%v, digest ok=%v", n, err, sum == hex.EncodeToString(w[:]))
			}
		})
	}
	boom := errors.New("boom")
	if _, _, err := copyBody(failWriter{boom}, bytes.NewReader(body)); !errors.Is(err, boom) {
		t.Fatalf("failing writer: %v", err)
	} else if _, ok := err.(*errSink); !ok {
		t.Fatalf("failing writer: %T, want *errSink", err)
	}
	if _, _, err := copyBody(io.Discard, iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Fatalf("failing reader: %v", err)
	}
}

// A failed write stops the copy: the reader is not drained to its end (a
// box that went away does not keep scoutd downloading), and every write
// comes in order, one at a time.
func TestCopyBodyStopsReadingAtAFailedWrite(t *testing.T) {
	boom := errors.New("boom")
	src := &endless{}
	w := &orderedWriter{t: t, failAt: 3, err: boom}
	n, _, err := copyBody(w, src)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the writer's", err)
	}
	if _, ok := err.(*errSink); !ok {
		t.Fatalf("err is %T, want *errSink", err)
	}
	if n != w.ok {
		t.Fatalf("n = %d, want the %d bytes written before the failure", n, w.ok)
	}
	if max := int64(copyBuffers+w.failAt+1) * copyChunk; src.n > max {
		t.Fatalf("read %d bytes after the writer failed, want at most %d", src.n, max)
	}
}

// endless is an upstream that never ends; its bytes count up.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e.n + int64(i))
	}
	e.n += int64(len(p))
	return len(p), nil
}

// orderedWriter checks that the bytes it gets are endless's, in order, from
// one write at a time, and fails its failAt'th write.
type orderedWriter struct {
	t      *testing.T
	failAt int
	err    error
	calls  int
	ok     int64
	busy   bool
}

func (w *orderedWriter) Write(p []byte) (int, error) {
	if w.busy {
		w.t.Error("two writes at once")
	}
	w.busy = true
	defer func() { w.busy = false }()
	w.calls++
	if w.calls == w.failAt {
		return 0, w.err
	}
	for i, b := range p {
		if b != byte(w.ok+int64(i)) {
			w.t.Errorf("byte %d out of order", w.ok+int64(i))
			break
		}
	}
	w.ok += int64(len(p))
	return len(p), nil
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }
