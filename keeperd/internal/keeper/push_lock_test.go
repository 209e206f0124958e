package keeper

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds how long a test waits for something that should
// happen at once; hitting it is the failure, not a way to synchronise.
const waitTimeout = 30 * time.Second

type pushOutcome struct {
	res PushResult
	err error
}

// startPush runs Push in the background and waits until the remote holds
// its receive-pack request: the push has resolved what to send and is in
// the middle of its network I/O.
func startPush(t *testing.T, ctx context.Context, f *fixture, held <-chan string, req PushRequest) <-chan pushOutcome {
	t.Helper()
	done := make(chan pushOutcome, 1)
	go func() {
		res, err := f.k.Push(ctx, f.launch, req)
		done <- pushOutcome{res, err}
	}()
	select {
	case <-held:
	case o := <-done:
		t.Fatalf("push ended before reaching the stalled remote: %+v %v", o.res, o.err)
	case <-time.After(waitTimeout):
		t.Fatal("push never reached the stalled remote")
	}
	return done
}

// A push stalled in its network I/O does not hold the repository: a commit
// made meanwhile completes at once, and the push, when the remote answers,
// sends the commit id it resolved when it started, not the newer one.
func TestCommitWhilePushStalls(t *testing.T) {
	f, g := pushFixture(t, nil)
	ctx := context.Background()
	writeFile(t, filepath.Join(f.repo, "README"), "v2\n")
	c1, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "v2", All: true})
	if err != nil {
		t.Fatal(err)
	}
	held, release := g.holdReceivePack(t)
	pushed := startPush(t, ctx, f, held, PushRequest{})

	writeFile(t, filepath.Join(f.repo, "README"), "v3\n")
	committed := make(chan error, 1)
	var c2 CommitResult
	go func() {
		var err error
		c2, err = f.k.Commit(ctx, f.launch, CommitRequest{Message: "v3", All: true})
		committed <- err
	}()
	select {
	case err := <-committed:
		if err != nil {
			t.Fatalf("commit during a stalled push: %v", err)
		}
	case <-time.After(waitTimeout):
		release()
		<-committed
		t.Fatal("commit waited for a push stalled in its network I/O (the push holds the repository lock)")
	}
	if got := run(t, f.repo, "git", "rev-parse", "main"); got != c2.Commit+"\n" {
		t.Fatalf("local main = %q, want the new commit %s", got, c2.Commit)
	}

	release()
	var o pushOutcome
	select {
	case o = <-pushed:
	case <-time.After(waitTimeout):
		t.Fatal("push did not end after the remote was released")
	}
	if o.err != nil {
		t.Fatalf("push: %v", o.err)
	}
	if o.res.New != c1.Commit || o.res.Old != "" || o.res.Commits != 2 {
		t.Fatalf("push = %+v, want %s (resolved when the push started, not %s)", o.res, c1.Commit, c2.Commit)
	}
	if got := g.rev(t, "proj.git", "main"); got != c1.Commit {
		t.Fatalf("server main = %s, want %s (the commit resolved at the push's start; %s came later)", got, c1.Commit, c2.Commit)
	}
	// The local branch is where the commit put it, and the next push sends it.
	if got := run(t, f.repo, "git", "rev-parse", "main"); got != c2.Commit+"\n" {
		t.Fatalf("local main after the push = %q, want %s", got, c2.Commit)
	}
	res, err := f.k.Push(ctx, f.launch, PushRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Old != c1.Commit || res.New != c2.Commit || res.Commits != 1 || g.rev(t, "proj.git", "main") != c2.Commit {
		t.Fatalf("second push = %+v, server main %s", res, g.rev(t, "proj.git", "main"))
	}
}

// A host commit that rewrites the branch while a push is stalled does not
// change what the push sends: it pushes the id it resolved and checked
// (fast-forward) under the lock.
func TestPushSendsResolvedIDAfterBranchRewritten(t *testing.T) {
	f, g := pushFixture(t, nil)
	ctx := context.Background()
	before := run(t, f.repo, "git", "rev-parse", "main")
	held, release := g.holdReceivePack(t)
	pushed := startPush(t, ctx, f, held, PushRequest{})
	run(t, f.repo, "git", "commit", "-q", "--amend", "-m", "rewritten on the host")
	release()
	var o pushOutcome
	select {
	case o = <-pushed:
	case <-time.After(waitTimeout):
		t.Fatal("push did not end after the remote was released")
	}
	if o.err != nil {
		t.Fatalf("push: %v", o.err)
	}
	if o.res.New+"\n" != before || g.rev(t, "proj.git", "main")+"\n" != before {
		t.Fatalf("push = %+v, server main %s, want %s", o.res, g.rev(t, "proj.git", "main"), before)
	}
}

// Two pushes of one repository to one remote still run one at a time, and
// the one that waits gives up when its deadline ends, without spending the
// launch's push budget.
func TestPushesToOneRemoteAreSerialized(t *testing.T) {
	f, g := pushFixture(t, func(p *Policy) { p.Rate.PushesPerLaunch = 2 })
	ctx := context.Background()
	held, release := g.holdReceivePack(t)
	pushed := startPush(t, ctx, f, held, PushRequest{})

	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := f.k.Push(wctx, f.launch, PushRequest{})
		second <- err
	}()
	select {
	case err := <-second:
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second push while the first is in flight: %v, want ErrUnavailable wrapping the deadline", err)
		}
	case <-time.After(waitTimeout):
		release()
		<-second
		t.Fatal("a push waiting for another push of the same remote ignored its deadline")
	}
	select {
	case r := <-held:
		t.Fatalf("the second push reached the remote (%s) while the first was in flight", r)
	default:
	}
	release()
	if o := <-pushed; o.err != nil {
		t.Fatalf("first push: %v", o.err)
	}
	// The waiting push spent nothing: the budget of 2 still has one left.
	if _, err := f.k.Push(ctx, f.launch, PushRequest{}); err != nil {
		t.Fatalf("push after the first ended: %v", err)
	}
	if _, err := f.k.Push(ctx, f.launch, PushRequest{}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("third push: %v, want ErrRateLimited", err)
	}
}

// A push ends at keeperd's own limit even when its caller set no deadline
// (a box's own client may not), freeing the remote's push lock.
func TestPushEndsAtKeeperdsLimit(t *testing.T) {
	f, g := pushFixture(t, nil)
	f.k.pushTimeout = 300 * time.Millisecond
	ctx := context.Background()
	writeFile(t, filepath.Join(f.repo, "README"), "v2\n")
	c, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "v2", All: true})
	if err != nil {
		t.Fatal(err)
	}
	held, release := g.holdReceivePack(t)
	pushed := startPush(t, ctx, f, held, PushRequest{})
	var o pushOutcome
	select {
	case o = <-pushed:
	case <-time.After(waitTimeout):
		release()
		t.Fatal("a push with no caller deadline outlived keeperd's limit")
	}
	release()
	if !errors.Is(o.err, ErrUnavailable) || !strings.Contains(o.err.Error(), "push did not finish within keeperd's limit of 300ms") {
		t.Fatalf("push past the limit = %+v, %v; want ErrUnavailable naming the limit", o.res, o.err)
	}
	if o.res != (PushResult{}) {
		t.Fatalf("a push that timed out reported a result: %+v", o.res)
	}
	// The remote's push lock is free again: the next push goes through.
	f.k.pushTimeout = DefaultPushTimeout
	res, err := f.k.Push(ctx, f.launch, PushRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.New != c.Commit || g.rev(t, "proj.git", "main") != c.Commit {
		t.Fatalf("push after the timeout = %+v, server main %s", res, g.rev(t, "proj.git", "main"))
	}
}

// An ssh remote that accepts the connection and never speaks (a stalled
// host, a half-open route) holds keeperd no longer than its limit either:
// go-git's ssh transport runs the handshake without the push's context.
func TestPushOverSSHEndsAtKeeperdsLimit(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{}, 16)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			accepted <- struct{}{}
		}
	}()
	known := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, known, "")
	f := newFixture(t, func(p *Policy) {
		p.Repos[0].Remotes = map[string]Remote{"origin": {URL: "ssh://git@" + l.Addr().String() + "/proj.git", KnownHosts: known}}
	})
	f.k.pushTimeout = 300 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := f.k.Push(context.Background(), f.launch, PushRequest{})
		done <- err
	}()
	select {
	case <-accepted:
	case err := <-done:
		t.Fatalf("push ended before reaching the silent remote: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("push never reached the silent remote")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "push did not finish within keeperd's limit of 300ms") {
			t.Fatalf("push to a silent ssh remote = %v; want ErrUnavailable naming the limit", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("a push to an ssh remote that never speaks outlived keeperd's limit")
	}
	// A caller's own deadline ends it the same way, as unavailable.
	f.k.pushTimeout = DefaultPushTimeout
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = f.k.Push(ctx, f.launch, PushRequest{})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("push to a silent ssh remote past the caller's deadline = %v; want ErrUnavailable wrapping the deadline", err)
	}
}

// A push waiting for the repository lock (a large commit ahead of it)
// gives up at its deadline, and a commit does the same.
func TestRepoLockWaitEndsWithDeadline(t *testing.T) {
	f, _ := pushFixture(t, nil)
	_, dir, err := f.k.Policy().BindRepo(f.launch.Repo)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := f.k.lockRepo(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for name, call := range map[string]func(ctx context.Context) error{
		"push": func(ctx context.Context) error {
			_, err := f.k.Push(ctx, f.launch, PushRequest{})
			return err
		},
		"commit": func(ctx context.Context) error {
			_, err := f.k.Commit(ctx, f.launch, CommitRequest{Message: "x", All: true})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "another write to this repository is still running") {
			t.Errorf("%s behind a held repository lock: %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > waitTimeout {
			t.Errorf("%s waited %s past its deadline", name, d)
		}
	}
}
