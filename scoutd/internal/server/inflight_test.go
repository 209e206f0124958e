package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/client"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
	"github.com/bounded-systems/claude-box/scoutd/internal/scouttest"
)

// capWorld is a scout server on a minter with two launch doors ("a" and
// "b") and an upstream whose /slow path holds until release is closed and
// whose /endless path sends for as long as it is read.
type capWorld struct {
	srv     *Server
	m       *door.Minter
	logs    *syncBuf
	base    string
	release chan struct{}
	started atomic.Int32
	doors   map[string]door.Minted
	grpcs   map[string]*client.Client
}

func newCapWorld(t *testing.T, slowBody int, mods ...func(*scout.Config)) *capWorld {
	t.Helper()
	w := &capWorld{release: make(chan struct{}), logs: &syncBuf{}, doors: map[string]door.Minted{}, grpcs: map[string]*client.Client{}}
	ca := scouttest.NewCA(t, "slow.test")
	_, port := ca.Server(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/endless" {
			// A body that ends only when the exchange does.
			chunk := make([]byte, 256<<10)
			for r.Context().Err() == nil {
				if _, err := rw.Write(chunk); err != nil {
					return
				}
			}
			return
		}
		if r.URL.Path == "/slow" {
			if slowBody > 0 {
				_, _ = rw.Write(make([]byte, slowBody))
				rw.(http.Flusher).Flush()
			}
			w.started.Add(1)
			select {
			case <-w.release:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(rw, "ok")
	}))
	t.Cleanup(func() {
		select {
		case <-w.release:
		default:
			close(w.release)
		}
	})
	allow, err := dest.ParseAllowlist("slow.test:" + port)
	if err != nil {
		t.Fatal(err)
	}
	res := &dest.Static{}
	res.Add("slow.test", netip.MustParseAddr("127.0.0.1"))
	cfg := scout.Config{Allow: allow, Resolver: res, RootCAs: ca.Pool,
		Addrs: dest.AddrPolicy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
	for _, mod := range mods {
		mod(&cfg)
	}
	sc, err := scout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.srv = New(sc, slog.New(slog.NewJSONHandler(w.logs, nil)), "test")
	dir, err := os.MkdirTemp("/tmp", "scif")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w.m, err = door.NewMinter(door.MinterConfig{Door: "scout", Dir: filepath.Join(dir, "d"), Register: w.srv.Register, Raw: w.srv.Raw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.m.Close(ctx)
	})
	for _, l := range []string{"a", "b"} {
		md, err := w.m.Mint(context.Background(), door.MintRequest{LaunchID: l, Account: "acct", PeerUID: -1})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := door.Dial(md.SocketPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		w.doors[l] = md
		w.grpcs[l] = client.New(cc)
	}
	w.base = "https://slow.test:" + port
	return w
}

// fetch fetches path through launch's door, over raw or gRPC.
func (w *capWorld) fetch(ctx context.Context, launch, path string, raw bool) error {
	return w.fetchTo(ctx, launch, path, raw, io.Discard)
}

func (w *capWorld) fetchTo(ctx context.Context, launch, path string, raw bool, out io.Writer) error {
	c := w.grpcs[launch]
	if raw {
		c = c.WithRaw(w.doors[launch].SocketPath)
	}
	_, err := c.Fetch(ctx, &scoutv1.FetchRequest{Url: w.base + path}, out)
	return err
}

// firstWrite closes got at the first body bytes written to it.
type firstWrite struct {
	got  chan struct{}
	once sync.Once
}

func (f *firstWrite) Write(p []byte) (int, error) {
	f.once.Do(func() { close(f.got) })
	return len(p), nil
}

// waitStarted polls until n slow fetches reached the upstream.
func (w *capWorld) waitStarted(t *testing.T, n int32) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for w.started.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("slow fetches started: %d, want %d", w.started.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statusReason(err error) (codes.Code, string) {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), ei.GetReason()
		}
	}
	return st.Code(), ""
}

// A box cannot make scoutd hold more than a few reads for it at once: the
// launch's next request is refused at once (and audited), while another
// launch is served, and the launch is served again once its reads end. The
// raw fast path and the gRPC stream share one cap.
func TestInFlightCapPerLaunch(t *testing.T) {
	for name, tr := range map[string]struct{ slow1, slow2, next bool }{
		"grpc":  {false, false, false},
		"raw":   {true, true, true},
		"mixed": {false, true, true},
	} {
		t.Run(name, func(t *testing.T) {
			w := newCapWorld(t, 0)
			w.srv.maxInFlight = 2
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 2)
			go func() { done <- w.fetch(ctx, "a", "/slow", tr.slow1) }()
			go func() { done <- w.fetch(ctx, "a", "/slow", tr.slow2) }()
			w.waitStarted(t, 2)
			err := w.fetch(ctx, "a", "/fast", tr.next)
			if code, reason := statusReason(err); code != codes.ResourceExhausted || reason != scout.ReasonBusy {
				t.Fatalf("third fetch of launch a: %v (reason %q), want ResourceExhausted/%s", err, reason, scout.ReasonBusy)
			}
			if err := w.fetch(ctx, "b", "/fast", tr.next); err != nil {
				t.Fatalf("launch b starved by launch a: %v", err)
			}
			close(w.release)
			for range 2 {
				if err := <-done; err != nil {
					t.Fatalf("slow fetch: %v", err)
				}
			}
			if err := w.fetch(ctx, "a", "/fast", tr.next); err != nil {
				t.Fatalf("launch a after its reads ended: %v", err)
			}
			if n := w.srv.Counters()["fetch_denied"]; n != 1 {
				t.Fatalf("fetch_denied = %d, want 1 (the refusal is audited once)", n)
			}
		})
	}
}

// Revoking a launch's door mid-body cuts a raw fetch: the client reports
// an incomplete body, the fetch is audited once as failed, and the
// launch's in-flight slot is given back.
func TestRawFetchRevokedMidBody(t *testing.T) {
	w := newCapWorld(t, 3<<20)
	w.srv.maxInFlight = 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	body := &firstWrite{got: make(chan struct{})}
	go func() { done <- w.fetchTo(ctx, "a", "/slow", true, body) }()
	w.waitStarted(t, 1)
	select {
	case <-body.got:
	case err := <-done:
		t.Fatalf("fetch ended before its body: %v", err)
	}
	if !w.m.Revoke(w.doors["a"].DoorID) {
		t.Fatal("revoke: door not live")
	}
	if err := <-done; !errors.Is(err, client.ErrIncomplete) {
		t.Fatalf("fetch cut by revocation: %v, want ErrIncomplete", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := w.srv.Counters()
		if c["fetch_failed"]+c["fetch_denied"] == 1 {
			if c["fetch_ok"] != 0 {
				t.Fatalf("counters after a revoked fetch: %v", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked fetch was not audited: %v", c)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.srv.mu.Lock()
	held := w.srv.inFlight["a"]
	w.srv.mu.Unlock()
	if held != 0 {
		t.Fatalf("launch a still holds %d in-flight slots", held)
	}
}

// syncBuf is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
