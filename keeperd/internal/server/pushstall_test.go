package server

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/keeperd/internal/keeper"
	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stalledRemote is a loopback TLS server that accepts every request and
// answers none until released, as a hanging git remote would.
func stalledRemote(t *testing.T) (url, caFile string, held <-chan struct{}, release func()) {
	t.Helper()
	h := make(chan struct{}, 64)
	gate := make(chan struct{})
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h <- struct{}{}
		select {
		case <-gate:
			http.Error(w, "released", http.StatusServiceUnavailable)
		case <-r.Context().Done():
		}
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(ts.Close)
	t.Cleanup(release) // runs first: no handler is left blocking Close
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ts.URL + "/proj.git", caFile, h, release
}

func (f *fixture) clientFor(t *testing.T, launch string) keeperv1.KeeperServiceClient {
	t.Helper()
	minted, err := f.m.Mint(context.Background(), door.MintRequest{LaunchID: launch, Account: "work", Bindings: map[string]string{"repo": f.repo}, PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := door.Dial(minted.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return keeperv1.NewKeeperServiceClient(cc)
}

// pollInFlight waits until launch has want requests in flight.
func (f *fixture) pollInFlight(t *testing.T, launch string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.srv.mu.Lock()
		n := f.srv.inFlight[launch]
		f.srv.mu.Unlock()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("launch %s has %d requests in flight, want %d", launch, n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Pushes stuck on a hanging remote hold no repository lock: another launch
// bound to the same repository commits at once. They still count as in
// flight for their launch, so a box cannot pile up more than
// MaxInFlightPerLaunch of them (the ones behind the first wait for the
// per-remote push lock).
func TestStalledPushesDoNotBlockCommits(t *testing.T) {
	f := newFixture(t)
	url, caFile, held, release := stalledRemote(t)
	p := *f.srv.k.Policy()
	p.Repos = append([]keeper.RepoPolicy(nil), p.Repos...)
	p.Repos[0].Remotes = map[string]keeper.Remote{"origin": {URL: url, CAFile: caFile}}
	p.Repos[0].DefaultRemote = "origin"
	f.srv.k.SetPolicy(&p)
	l1, l2 := f.clientFor(t, "L1"), f.clientFor(t, "L2")

	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pushes := make(chan error, MaxInFlightPerLaunch)
	for range MaxInFlightPerLaunch {
		go func() {
			_, err := l1.Push(pctx, &keeperv1.PushRequest{})
			pushes <- err
		}()
	}
	select {
	case <-held:
	case err := <-pushes:
		t.Fatalf("a push ended before reaching the stalled remote: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no push reached the stalled remote")
	}
	f.pollInFlight(t, "L1", MaxInFlightPerLaunch)
	select {
	case <-held:
		t.Fatal("a second push of the same remote reached it while the first was in flight")
	default:
	}

	if err := os.WriteFile(filepath.Join(f.repo, "README"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := l1.Commit(ctx5(t), &keeperv1.CommitRequest{Message: "m", All: true})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("commit of a launch with %d pushes in flight: %v, want ResourceExhausted", MaxInFlightPerLaunch, err)
	}
	res, err := l2.Commit(ctx5(t), &keeperv1.CommitRequest{Message: "from L2", All: true})
	if err != nil {
		t.Fatalf("another launch's commit while pushes of the repository stall: %v", err)
	}
	if got := git(t, f.repo, "rev-parse", "main"); got != res.GetCommit()+"\n" {
		t.Fatalf("main = %q, want %s", got, res.GetCommit())
	}

	release()
	for range MaxInFlightPerLaunch {
		select {
		case err := <-pushes:
			if err == nil {
				t.Fatal("a push to a remote that answered 503 succeeded")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("pushes did not end after the remote was released")
		}
	}
	f.pollInFlight(t, "L1", 0)
	if err := os.WriteFile(filepath.Join(f.repo, "README"), []byte("again\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := l1.Commit(ctx5(t), &keeperv1.CommitRequest{Message: "m", All: true}); err != nil {
		t.Fatalf("commit after the pushes ended: %v", err)
	}
}
