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

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }
