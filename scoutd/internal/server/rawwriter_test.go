package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
	"github.com/bounded-systems/claude-box/scoutd/internal/wire"
)

// The raw writer frames each write straight from the caller's buffer: a
// write larger than a frame is split into frames of at most wire.MaxFrame,
// the bytes arrive in order and unchanged, the caller's buffer is not
// kept, and the end line follows a zero-length frame.
func TestRawWriterFrames(t *testing.T) {
	writes := [][]byte{make([]byte, 3*wire.MaxFrame+5), make([]byte, 1), make([]byte, wire.MaxFrame)}
	var want []byte
	for _, p := range writes {
		_, _ = rand.Read(p)
		want = append(want, p...)
	}
	srv, cli := net.Pipe()
	defer func() { _ = cli.Close() }()
	errc := make(chan error, 1)
	go func() {
		defer func() { _ = srv.Close() }()
		w := &rawWriter{conn: srv, idle: time.Minute}
		if err := w.WriteHead(scout.Head{Status: 200}); err != nil {
			errc <- err
			return
		}
		for _, p := range writes {
			if n, err := w.Write(p); err != nil || n != len(p) {
				errc <- errors.Join(err, errors.New("short write"))
				return
			}
			// The writer returned: the buffer is the caller's again.
			clear(p)
		}
		errc <- w.finish(scout.Digest{Size: int64(len(want)), SHA256: "00"})
	}()

	br := bufio.NewReader(cli)
	var head wire.Head
	if err := wire.ReadLine(br, &head); err != nil || head.Status != 200 {
		t.Fatalf("head: %+v %v", head, err)
	}
	var got []byte
	var sizes []int
	for {
		var hdr [wire.FrameHeader]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("frame header: %v", err)
		}
		k, err := wire.FrameLen(hdr[:])
		if err != nil {
			t.Fatal(err)
		}
		if k == 0 {
			break
		}
		sizes = append(sizes, k)
		b := make([]byte, k)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatalf("frame: %v", err)
		}
		got = append(got, b...)
	}
	var end wire.End
	if err := wire.ReadLine(br, &end); err != nil || end.Size != int64(len(want)) {
		t.Fatalf("end: %+v %v", end, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the body arrived changed")
	}
	wantSizes := []int{wire.MaxFrame, wire.MaxFrame, wire.MaxFrame, 5, 1, wire.MaxFrame}
	if len(sizes) != len(wantSizes) {
		t.Fatalf("frames %v, want %v", sizes, wantSizes)
	}
	for i := range sizes {
		if sizes[i] != wantSizes[i] {
			t.Fatalf("frames %v, want %v", sizes, wantSizes)
		}
	}
}

// A client that stops reading fails the write at the idle ceiling: the
// fetch does not hold its slot forever.
func TestRawWriterIdleCeiling(t *testing.T) {
	srv, cli := net.Pipe()
	defer func() { _ = cli.Close(); _ = srv.Close() }()
	w := &rawWriter{conn: srv, idle: 50 * time.Millisecond}
	done := make(chan error, 1)
	go func() { _, err := w.Write(make([]byte, 1<<16)); done <- err }()
	select {
	case err := <-done:
		var ne net.Error
		var se *scout.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &se) || se.Reason != scout.ReasonIdleTimeout {
			t.Fatalf("write to a client that does not read: %v, want an %s refusal", err, scout.ReasonIdleTimeout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write never gave up")
	}
}
