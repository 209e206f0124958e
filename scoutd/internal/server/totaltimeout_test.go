package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
	"github.com/bounded-systems/claude-box/scoutd/internal/wire"
)

// Ceilings of the slow-reader tests: each write to the box completes well
// within idle (with room for a loaded machine: a gRPC send of a 1 MiB
// chunk waits for the reader's next take), and the body would take far
// longer than total to drain.
const (
	slowTotal = time.Second
	slowIdle  = 800 * time.Millisecond
	// slowCut is how long after the total deadline the fetch may end: the
	// request's set-up and the scheduling of a loaded machine, far short of
	// what draining the buffered body at the reader's pace takes (seconds).
	slowCut = 900 * time.Millisecond
)

// A box that reads slowly but steadily, never idle long enough to trip the
// idle ceiling, is cut at the request's total time ceiling, on either
// transport: the write in progress fails, the fetch is audited once as a
// timeout, and the launch's only slot is free again at once.
func TestSlowReaderCutAtTotalTimeout(t *testing.T) {
	for name, raw := range map[string]bool{"raw": true, "grpc": false} {
		t.Run(name, func(t *testing.T) {
			w := newCapWorld(t, 0, func(c *scout.Config) {
				c.Limits.Timeout, c.Limits.Idle = slowTotal, slowIdle
				c.Limits.MaxBytes, c.Limits.MaxDecodedBytes = 1<<30, 1<<30
			})
			w.srv.maxInFlight = 1
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			start := time.Now()
			type result struct {
				n   int64
				err error
			}
			got := make(chan result, 1)
			go func() {
				read := slowGRPC
				if raw {
					read = slowRaw
				}
				n, err := read(ctx, w.doors["a"].SocketPath, w.base+"/endless")
				got <- result{n, err}
			}()
			// scoutd's side ends at the ceiling (the client may still be
			// reading what its buffers hold).
			deadline := start.Add(20 * time.Second)
			for w.srv.Counters()["fetch_failed"] == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the slow fetch never ended: counters %v", w.srv.Counters())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if took := time.Since(start); took > slowTotal+slowCut {
				t.Fatalf("a slow reader kept its fetch %v, past the total ceiling %v", took, slowTotal)
			}
			if r := <-got; r.err != nil || r.n == 0 {
				t.Fatalf("slow reader: %d bytes, %v; want some body, then the cut", r.n, r.err)
			}
			// The fetch was audited once, as a timeout, when it ended.
			if c := w.srv.Counters(); c["fetch_failed"] != 1 || c["fetch_ok"]+c["fetch_denied"] != 0 {
				t.Fatalf("counters after a fetch cut at its total ceiling: %v", c)
			}
			if reasons := fetchReasons(t, w.logs); len(reasons) != 1 || reasons[0] != scout.ReasonTimeout {
				t.Fatalf("audited reasons %q, want one %q", reasons, scout.ReasonTimeout)
			}
			w.srv.mu.Lock()
			held := w.srv.inFlight["a"]
			w.srv.mu.Unlock()
			if held != 0 {
				t.Fatalf("launch a still holds %d in-flight slots", held)
			}
			if err := w.fetch(ctx, "a", "/fast", raw); err != nil {
				t.Fatalf("launch a after its slow fetch was cut: %v", err)
			}
		})
	}
}

// slowRaw fetches url over the raw protocol, taking 32 KiB every 20 ms
// (a 256 KiB write of scoutd's completes in a fraction of the idle
// ceiling), until the connection ends; it returns the bytes it read.
func slowRaw(ctx context.Context, sock, url string) (int64, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	line, err := wire.FormatRequest(wire.Request{URL: url})
	if err != nil {
		return 0, err
	}
	if _, err := conn.Write(line); err != nil {
		return 0, err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return n, errors.New("the slow raw fetch was never cut")
		}
		k, err := io.ReadFull(conn, buf)
		n += int64(k)
		if err != nil {
			return n, nil
		}
	}
}

// slowGRPC fetches url over gRPC, taking one message every 200 ms (a send
// of scoutd's completes well within the idle ceiling), until the stream
// ends, which must be with the timeout reason; it returns the body bytes.
func slowGRPC(ctx context.Context, sock, url string) (int64, error) {
	cc, err := door.Dial(sock)
	if err != nil {
		return 0, err
	}
	defer func() { _ = cc.Close() }()
	st, err := scoutv1.NewScoutServiceClient(cc).Fetch(ctx, &scoutv1.FetchRequest{Url: url})
	if err != nil {
		return 0, err
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var n int64
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return n, errors.New("the slow gRPC fetch was never cut")
		}
		m, err := st.Recv()
		if err != nil {
			if code, reason := statusReason(err); code != codes.DeadlineExceeded || reason != scout.ReasonTimeout {
				return n, fmt.Errorf("ended with %w (reason %q), want DeadlineExceeded/%s", err, reason, scout.ReasonTimeout)
			}
			return n, nil
		}
		n += int64(len(m.GetChunk()))
	}
}

// fetchReasons returns the reasons of the fetch audit records in logs.
func fetchReasons(t *testing.T, logs *syncBuf) []string {
	t.Helper()
	logs.mu.Lock()
	text := logs.b.String()
	logs.mu.Unlock()
	var reasons []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if rec[door.KeyMethod] == "fetch" {
			r, _ := rec[door.KeyReason].(string)
			reasons = append(reasons, r)
		}
	}
	return reasons
}

// A gRPC send (a fetch's or a snapshot's) gives up at the request's total
// deadline when that comes before the idle ceiling, with the time
// ceiling's reason, and a send once the deadline has passed is not
// started.
func TestSendWithinTotalDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	start := time.Now()
	err := sendWithin(time.Minute, start.Add(100*time.Millisecond), func() error { <-block; return nil })
	if e := scout.Classify(context.Background(), err); e == nil || e.Reason != scout.ReasonTimeout {
		t.Fatalf("send past the total deadline: %v, want reason %q", err, scout.ReasonTimeout)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the send gave up after %v, not at the total deadline", took)
	}
	started := false
	err = sendWithin(time.Minute, time.Now().Add(-time.Millisecond), func() error { started = true; return nil })
	if e := scout.Classify(context.Background(), err); started || e == nil || e.Reason != scout.ReasonTimeout {
		t.Fatalf("send after the total deadline: started %v, %v; want not started, reason %q", started, err, scout.ReasonTimeout)
	}
	if err := sendWithin(time.Minute, time.Now().Add(time.Minute), func() error { return nil }); err != nil {
		t.Fatalf("a send within both ceilings: %v", err)
	}
}
