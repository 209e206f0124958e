package server

import (
	"bytes"
	"context"
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
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
	"github.com/bounded-systems/claude-box/scoutd/internal/scouttest"
)

// A box cannot make scoutd hold more than a few reads for it at once: the
// launch's next request is refused at once (and audited), while another
// launch is served, and the launch is served again once its reads end.
func TestInFlightCapPerLaunch(t *testing.T) {
	ca := scouttest.NewCA(t, "slow.test")
	release := make(chan struct{})
	var started atomic.Int32
	_, port := ca.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	allow, err := dest.ParseAllowlist("slow.test:" + port)
	if err != nil {
		t.Fatal(err)
	}
	res := &dest.Static{}
	res.Add("slow.test", netip.MustParseAddr("127.0.0.1"))
	sc, err := scout.New(scout.Config{Allow: allow, Resolver: res, RootCAs: ca.Pool,
		Addrs: dest.AddrPolicy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	srv := New(sc, slog.New(slog.NewJSONHandler(&logs, nil)), "test")
	srv.maxInFlight = 2
	dir, err := os.MkdirTemp("/tmp", "scif")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m, err := door.NewMinter(door.MinterConfig{Door: "scout", Dir: filepath.Join(dir, "d"), Register: srv.Register})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	clients := map[string]scoutv1.ScoutServiceClient{}
	for _, l := range []string{"a", "b"} {
		md, err := m.Mint(context.Background(), door.MintRequest{LaunchID: l, Account: "acct", PeerUID: -1})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := door.Dial(md.SocketPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		clients[l] = scoutv1.NewScoutServiceClient(cc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "https://slow.test:" + port
	fetch := func(launch, path string) error {
		st, err := clients[launch].Fetch(ctx, &scoutv1.FetchRequest{Url: base + path})
		if err != nil {
			return err
		}
		for {
			if _, err := st.Recv(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- fetch("a", "/slow") }()
	}
	deadline := time.Now().Add(20 * time.Second)
	for started.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("slow fetches started: %d", started.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	err = fetch("a", "/fast")
	st, _ := status.FromError(err)
	var reason string
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			reason = ei.GetReason()
		}
	}
	if st.Code() != codes.ResourceExhausted || reason != scout.ReasonBusy {
		t.Fatalf("third fetch of launch a: %v (reason %q), want ResourceExhausted/%s", err, reason, scout.ReasonBusy)
	}
	if err := fetch("b", "/fast"); err != nil {
		t.Fatalf("launch b starved by launch a: %v", err)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("slow fetch: %v", err)
		}
	}
	if err := fetch("a", "/fast"); err != nil {
		t.Fatalf("launch a after its reads ended: %v", err)
	}
	if n := srv.Counters()["fetch_denied"]; n != 1 {
		t.Fatalf("fetch_denied = %d, want 1 (the refusal is audited once)", n)
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
