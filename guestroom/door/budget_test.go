package door

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// fakeClock is the audit budget's clock in tests: time moves only when the
// test advances it, and timers fire then, synchronously.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]bool
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	f  func()
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), timers: map[*fakeTimer]bool{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers[t] = true
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	live := t.c.timers[t]
	delete(t.c.timers, t)
	return live
}

// Advance moves time by d and runs the timers that became due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
			delete(c.timers, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// pending is the number of timers not yet fired or stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// byMsg returns the logged records whose msg is msg.
func (a *auditLog) byMsg(t *testing.T, msg string) []map[string]any {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(a.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// tally is what the log says about one launch's refusals, and in other
// the summaries of its other budgets.
type tally struct {
	written    map[string]int // individual refusal records, per reason
	suppressed map[string]int // refusals counted in summaries, per reason
	summaries  []map[string]any
	allowed    int
	// allowedBy is the individual allowed records per method.
	allowedBy map[string]int
	// other is the summaries of the informational and unaudited budgets,
	// per budget, and otherN the records they count.
	other  map[string][]map[string]any
	otherN map[string]int
}

func (a *auditLog) tally(t *testing.T, launch string) tally {
	t.Helper()
	tl := tally{written: map[string]int{}, suppressed: map[string]int{}, allowedBy: map[string]int{},
		other: map[string][]map[string]any{}, otherN: map[string]int{}}
	for _, r := range a.records(t) {
		if r[KeyLaunch] != launch {
			continue
		}
		if r[KeyAllow] == true {
			tl.allowed++
			tl.allowedBy[r[KeyMethod].(string)]++
			continue
		}
		tl.written[r[KeyReason].(string)]++
	}
	for _, r := range a.byMsg(t, AuditSuppressedMsg) {
		if r[KeyLaunch] != launch {
			continue
		}
		kind, _ := r[KeyBudget].(string)
		if want := kind != BudgetRefusals; r[KeyAllow] != want {
			t.Errorf("summary of budget %q has allow %v, want %v: %v", kind, r[KeyAllow], want, r)
		}
		if kind != BudgetRefusals {
			tl.other[kind] = append(tl.other[kind], r)
			tl.otherN[kind] += int(r[KeySuppressed].(float64))
			continue
		}
		tl.summaries = append(tl.summaries, r)
		tl.suppressed[r[KeyReason].(string)] += int(r[KeySuppressed].(float64))
	}
	return tl
}

func (tl tally) total(reason string) int { return tl.written[reason] + tl.suppressed[reason] }

func (tl tally) writtenTotal() int {
	n := 0
	for _, v := range tl.written {
		n += v
	}
	return n
}

// floodGuest refuses or allows by target: "caveat" is refused by the handler,
// "invalid" by the runtime (the handler does not audit), anything else is
// allowed; "fail" fails after being allowed, "unaudited" fails without a
// record (the runtime writes one).
type floodGuest struct {
	netv1.UnimplementedEgressServiceServer
	log *slog.Logger
}

func (g floodGuest) CheckTarget(ctx context.Context, req *netv1.CheckTargetRequest) (*netv1.CheckTargetResponse, error) {
	switch req.GetTarget() {
	case "caveat":
		Audit(ctx, g.log, Record{Target: "caveat", Allow: false, Reason: "caveat"})
		return nil, status.Error(codes.PermissionDenied, "caveat refuses")
	case "invalid":
		return nil, status.Error(codes.InvalidArgument, "bad target")
	case "unaudited":
		return nil, status.Error(codes.Unavailable, "gone without a record")
	case "fail":
		Audit(ctx, g.log, Record{Target: "fail", Allow: true, Reason: "ok", Err: errors.New("upstream broke")})
		return nil, status.Error(codes.Unavailable, "upstream broke")
	}
	Audit(ctx, g.log, Record{Target: req.GetTarget(), Allow: true, Reason: "ok"})
	return &netv1.CheckTargetResponse{}, nil
}

// wantCode is the answer the box gets for each target: the budget never
// changes it.
func wantCode(target string) codes.Code {
	switch target {
	case "caveat":
		return codes.PermissionDenied
	case "invalid":
		return codes.InvalidArgument
	case "fail", "unaudited":
		return codes.Unavailable
	}
	return codes.OK
}

// callMany makes the calls on one connection from 16 workers and fails on
// any answer that is not the target's.
func callMany(t *testing.T, path string, targets []string) {
	t.Helper()
	cc := dial(t, path)
	client := netv1.NewEgressServiceClient(cc)
	work := make(chan string)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for target := range work {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := client.CheckTarget(ctx, &netv1.CheckTargetRequest{Target: target})
				cancel()
				if got := status.Code(err); got != wantCode(target) {
					errs <- fmt.Errorf("target %q: code %v (%v), want %v", target, got, err, wantCode(target))
					return
				}
			}
		}()
	}
	for _, target := range targets {
		work <- target
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func floodMinter(t *testing.T, al *auditLog, budget AuditBudget) *Minter {
	t.Helper()
	log := al.logger()
	m, err := NewMinter(MinterConfig{
		Door: "test", Dir: filepath.Join(shortDir(t), "launch"), Logger: log, AuditBudget: budget,
		Register: func(s *grpc.Server) { netv1.RegisterEgressServiceServer(s, floodGuest{log: log}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// TestAuditBudgetFlood: 10,000 refusals from one launch write the burst, one
// refill and summaries that count every other refusal exactly, per reason;
// allowed calls and failures are all written; another launch's refusals are
// all written; revocation writes the final summaries before the revoke
// record and leaves no timer behind.
func TestAuditBudgetFlood(t *testing.T) {
	al := &auditLog{}
	fc := newFakeClock()
	m := floodMinter(t, al, AuditBudget{clock: fc})
	flood, err := m.Mint(context.Background(), MintRequest{LaunchID: "flood", Account: "a", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := m.Mint(context.Background(), MintRequest{LaunchID: "quiet", Account: "a", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}

	// Each phase: 5,000 refusals (half per reason), 500 allowed calls and 50
	// failures on the flooding launch, while the quiet launch has exactly
	// its burst of refusals.
	phase := func() {
		var targets []string
		for i := range 5000 {
			if i%2 == 0 {
				targets = append(targets, "caveat")
			} else {
				targets = append(targets, "invalid")
			}
			if i%10 == 0 {
				targets = append(targets, "ok")
			}
			if i%100 == 0 {
				targets = append(targets, "fail")
			}
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			callMany(t, flood.SocketPath, targets)
		}()
		quietTargets := make([]string, 0, DefaultAuditBurst/2)
		for range DefaultAuditBurst / 2 {
			quietTargets = append(quietTargets, "caveat")
		}
		callMany(t, quiet.SocketPath, quietTargets)
		wg.Wait()
	}

	phase()
	tl := al.tally(t, "flood")
	if got := tl.writtenTotal(); got != DefaultAuditBurst {
		t.Fatalf("refusals written while the clock stood still = %d, want the burst %d", got, DefaultAuditBurst)
	}
	if len(tl.summaries) != 0 {
		t.Fatalf("summaries before a second passed: %v", tl.summaries)
	}

	// A second later the timer summarizes the window and the bucket has
	// regained DefaultAuditRate tokens.
	fc.Advance(time.Second)
	tl = al.tally(t, "flood")
	if len(tl.summaries) != 2 {
		t.Fatalf("summaries after a second = %d, want one per reason: %v", len(tl.summaries), tl.summaries)
	}
	for _, reason := range []string{"caveat", "invalidargument"} {
		if got := tl.total(reason); got != 2500 {
			t.Errorf("%s after phase 1: written %d + suppressed %d = %d, want 2500", reason, tl.written[reason], tl.suppressed[reason], got)
		}
	}
	for _, s := range tl.summaries {
		if s[KeyFinal] != false || s["level"] != "WARN" || s[KeyDoor] != "test" || s[KeyAccount] != "a" || s[KeyAllow] != false ||
			s[KeyMethod] != "/claudebox.net.v1.EgressService/CheckTarget" || !strings.HasPrefix(s[KeyPeer].(string), "uid=") {
			t.Errorf("summary = %v", s)
		}
		first, _ := time.Parse(time.RFC3339Nano, s[KeyFirst].(string))
		last, _ := time.Parse(time.RFC3339Nano, s[KeyLast].(string))
		if start := fc.Now().Add(-time.Second); !first.Equal(start) || !last.Equal(start) {
			t.Errorf("summary window %v..%v, want both at %v (the clock stood still)", first, last, start)
		}
	}

	phase()
	if !m.Revoke(flood.DoorID) {
		t.Fatal("flood door was not live")
	}
	if n := fc.pending(); n != 0 {
		t.Fatalf("%d budget timers left after revoke", n)
	}

	tl = al.tally(t, "flood")
	if got, want := tl.writtenTotal(), DefaultAuditBurst+DefaultAuditRate; got != want {
		t.Errorf("refusals written = %d, want burst + one second of refill = %d", got, want)
	}
	for _, reason := range []string{"caveat", "invalidargument"} {
		if got := tl.total(reason); got != 5000 {
			t.Errorf("%s: written %d + suppressed %d = %d, want exactly 5000", reason, tl.written[reason], tl.suppressed[reason], got)
		}
	}
	if len(tl.suppressed) != 2 || len(tl.summaries) != 4 {
		t.Errorf("summaries = %v, want 2 per reason", tl.summaries)
	}
	final := 0
	for _, s := range tl.summaries {
		if s[KeyFinal] == true {
			final++
		}
	}
	if final != 2 {
		t.Errorf("final summaries = %d, want 2", final)
	}
	if want := 2 * (500 + 50); tl.allowed != want {
		t.Errorf("allowed records = %d, want every one of %d", tl.allowed, want)
	}
	failures := 0
	for _, r := range al.records(t) {
		if r[KeyLaunch] == "flood" && r[KeyTarget] == "fail" {
			if r["level"] != "ERROR" || r[KeyError] != "upstream broke" {
				t.Errorf("failure record = %v", r)
			}
			failures++
		}
	}
	if failures != 100 {
		t.Errorf("failure records = %d, want 100", failures)
	}

	q := al.tally(t, "quiet")
	if q.written["caveat"] != DefaultAuditBurst || len(q.summaries) != 0 {
		t.Errorf("quiet launch: written %v, summaries %v; want all %d refusals written", q.written, q.summaries, DefaultAuditBurst)
	}

	// The final summaries come after every refusal of the launch and before
	// its revoke record.
	al.mu.Lock()
	lines := strings.Split(strings.TrimSpace(al.buf.String()), "\n")
	al.mu.Unlock()
	lastFinal, revoke := -1, -1
	for i, line := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case r["msg"] == AuditSuppressedMsg && r[KeyFinal] == true:
			lastFinal = i
		case r[KeyMethod] == "revoke" && r["revoked_launch"] == "flood":
			revoke = i
		}
	}
	if lastFinal < 0 || revoke < 0 || lastFinal > revoke {
		t.Errorf("final summary at line %d, revoke at %d: want the summary first", lastFinal, revoke)
	}
}

// budgetServer is an unstarted server whose calls are made by hand: begin
// gives the context a call on it would have.
func budgetServer(fc *fakeClock, b *Binding, burst int) *Server {
	return NewServer(Config{Door: "test", AuditBudget: AuditBudget{Burst: burst, Rate: 10, clock: fc}, binding: b})
}

func callCtx(s *Server, p Peer) context.Context {
	ctx, _ := s.begin(withPeer(context.Background(), p), "m")
	return ctx
}

var boxPeer = Peer{UID: 1000, GID: 1000, PID: 7, Unix: true, Known: true}

// TestAuditBudgetSummaryAtMostEvery: a steady flood is summarized at most
// once per second per reason, a flood that stops is summarized by the timer
// without another call, and the counts add up exactly.
func TestAuditBudgetSummaryAtMostEvery(t *testing.T) {
	var al auditLog
	log := al.logger()
	fc := newFakeClock()
	s := budgetServer(fc, &Binding{DoorID: "d", LaunchID: "L", Account: "a"}, 5)
	ctx := callCtx(s, boxPeer)
	// 5 seconds, 100 refusals every 10ms: 50,000 refusals.
	for range 500 {
		for range 100 {
			Audit(ctx, log, Record{Target: "t", Reason: "denied"})
		}
		fc.Advance(10 * time.Millisecond)
	}
	tl := al.tally(t, "L")
	// Burst 5, then 10 a second for 5 seconds (the last tick's refill is
	// not yet spent).
	if got := tl.written["denied"]; got != 5+49 {
		t.Errorf("written = %d, want 54", got)
	}
	// A window opens at the first refusal counted after the last summary;
	// its timer writes it a second later: 5 windows in 5 seconds, the last
	// written by the final Advance.
	if len(tl.summaries) != 5 {
		t.Errorf("summaries in 5 seconds = %d, want 5", len(tl.summaries))
	}
	for _, s := range tl.summaries {
		if s[KeyFinal] != false {
			t.Errorf("summary before close is final: %v", s)
		}
	}
	if got := tl.total("denied"); got != 50000 {
		t.Errorf("written %d + suppressed %d = %d, want 50000", tl.written["denied"], tl.suppressed["denied"], got)
	}
	if n := fc.pending(); n != 0 {
		t.Errorf("%d timers pending after the flood was summarized", n)
	}
	// A quiet budget refills: the next refusals are written again.
	fc.Advance(time.Second)
	for range 5 {
		Audit(ctx, log, Record{Reason: "denied"})
	}
	if got := al.tally(t, "L").written["denied"]; got != 54+5 {
		t.Errorf("written after a quiet second = %d, want 59", got)
	}
	s.closeAudit()
	if got := al.tally(t, "L"); len(got.summaries) != len(tl.summaries) {
		t.Errorf("close wrote a summary with nothing counted: %v", got.summaries)
	}
}

// TestAuditBudgetPerPeerOnUnboundDoors: a standing (or unbound) door budgets
// per peer uid; a new process of the same uid shares its budget.
func TestAuditBudgetPerPeerOnUnboundDoors(t *testing.T) {
	for _, b := range []*Binding{nil, {DoorID: StandingDoorID, LaunchID: StandingDoorID, Account: "default"}} {
		t.Run(fmt.Sprintf("binding=%v", b != nil), func(t *testing.T) {
			var al auditLog
			log := al.logger()
			fc := newFakeClock()
			s := budgetServer(fc, b, 3)
			for pid := range 10 {
				p := boxPeer
				p.PID = 100 + pid
				Audit(callCtx(s, p), log, Record{Reason: "flood"})
			}
			other := Peer{UID: 2000, GID: 2000, PID: 1, Unix: true, Known: true}
			for range 3 {
				Audit(callCtx(s, other), log, Record{Reason: "quiet"})
			}
			s.closeAudit()
			var flood, quiet, suppressed int
			for _, r := range al.records(t) {
				switch r[KeyReason] {
				case "flood":
					flood++
				case "quiet":
					quiet++
				}
			}
			for _, r := range al.byMsg(t, AuditSuppressedMsg) {
				if r[KeyReason] != "flood" || r[KeyFinal] != true || !strings.HasPrefix(r[KeyPeer].(string), "uid=1000 pid=") {
					t.Errorf("summary = %v", r)
				}
				suppressed += int(r[KeySuppressed].(float64))
			}
			if flood != 3 || suppressed != 7 || quiet != 3 {
				t.Errorf("flood written %d suppressed %d, quiet written %d; want 3, 7, 3", flood, suppressed, quiet)
			}
			if n := fc.pending(); n != 0 {
				t.Errorf("%d timers left after close", n)
			}
		})
	}
}

// TestAuditBudgetEdges: more reasons than a window counts apart, refusals
// after close, and a disabled budget.
func TestAuditBudgetEdges(t *testing.T) {
	bound := &Binding{DoorID: "d", LaunchID: "L", Account: "a"}
	t.Run("many reasons", func(t *testing.T) {
		var al auditLog
		log := al.logger()
		s := budgetServer(newFakeClock(), bound, 1)
		ctx := callCtx(s, boxPeer)
		for i := range 100 {
			Audit(ctx, log, Record{Reason: fmt.Sprintf("r%03d", i)})
		}
		s.closeAudit()
		tl := al.tally(t, "L")
		if len(tl.summaries) != maxSuppressedKeys {
			t.Errorf("summaries = %d, want %d", len(tl.summaries), maxSuppressedKeys)
		}
		sum := tl.writtenTotal()
		for _, v := range tl.suppressed {
			sum += v
		}
		if sum != 100 || tl.suppressed[otherReason] != 100-1-(maxSuppressedKeys-1) {
			t.Errorf("total %d (want 100), %s = %d", sum, otherReason, tl.suppressed[otherReason])
		}
	})
	t.Run("after close", func(t *testing.T) {
		var al auditLog
		log := al.logger()
		s := budgetServer(newFakeClock(), bound, 1)
		ctx := callCtx(s, boxPeer)
		s.closeAudit()
		for range 10 {
			Audit(ctx, log, Record{Reason: "late"})
		}
		if tl := al.tally(t, "L"); tl.written["late"] != 10 || len(tl.summaries) != 0 {
			t.Errorf("refusals after close: written %d, summaries %d; want 10, 0", tl.written["late"], len(tl.summaries))
		}
	})
	t.Run("a counted failure keeps its level", func(t *testing.T) {
		var al auditLog
		log := al.logger()
		s := budgetServer(newFakeClock(), bound, 1)
		ctx := callCtx(s, boxPeer)
		Audit(ctx, log, Record{Reason: "denied"})
		Audit(ctx, log, Record{Reason: "denied"})
		Audit(ctx, log, Record{Reason: "denied", Err: errors.New("broke")})
		Audit(ctx, log, Record{Reason: "quiet"})
		s.closeAudit()
		levels := map[string]string{}
		for _, r := range al.byMsg(t, AuditSuppressedMsg) {
			levels[r[KeyReason].(string)] = r["level"].(string)
		}
		if levels["denied"] != "ERROR" || levels["quiet"] != "WARN" {
			t.Errorf("summary levels = %v, want denied ERROR, quiet WARN", levels)
		}
	})
	t.Run("informational failures are counted at error level, apart from refusals", func(t *testing.T) {
		var al auditLog
		log := al.logger()
		fc := newFakeClock()
		s := NewServer(Config{Door: "test", AuditBudget: AuditBudget{Burst: 1, Rate: 10, clock: fc}, Informational: []string{"m"}, binding: bound})
		ctx := callCtx(s, boxPeer)
		Audit(ctx, log, Record{Allow: true, Reason: "ok"})
		Audit(ctx, log, Record{Allow: true, Reason: "ok"})
		Audit(ctx, log, Record{Allow: true, Reason: "ok", Err: errors.New("broke")})
		Audit(ctx, log, Record{Allow: true, Reason: "quiet"})
		Audit(ctx, log, Record{Reason: "denied"})
		s.closeAudit()
		tl := al.tally(t, "L")
		levels := map[string]string{}
		for _, r := range tl.other[BudgetInformational] {
			levels[r[KeyReason].(string)] = r["level"].(string)
		}
		if levels["ok"] != "ERROR" || levels["quiet"] != "INFO" || tl.allowed != 1 || tl.otherN[BudgetInformational] != 3 {
			t.Errorf("summary levels = %v (want ok ERROR, quiet INFO), written %d (want 1), counted %d (want 3)", levels, tl.allowed, tl.otherN[BudgetInformational])
		}
		if tl.written["denied"] != 1 || len(tl.summaries) != 0 {
			t.Errorf("refusal written %d, summaries %v: want its own budget's token", tl.written["denied"], tl.summaries)
		}
		if n := fc.pending(); n != 0 {
			t.Errorf("%d timers left after close", n)
		}
	})
	t.Run("extreme numbers", func(t *testing.T) {
		cases := []struct {
			name        string
			cfg         AuditBudget
			wantWritten int
		}{
			{"tiny rate", AuditBudget{Burst: 3, Rate: 1e-300}, 3},
			{"NaN rate means the default", AuditBudget{Burst: 3, Rate: math.NaN()}, 3},
			{"infinite rate", AuditBudget{Burst: 3, Rate: math.Inf(1)}, 3},
			{"huge burst", AuditBudget{Burst: math.MaxInt, Rate: 1e-9}, 10},
		}
		for _, tc := range cases {
			var al auditLog
			log := al.logger()
			tc.cfg.clock = newFakeClock()
			s := NewServer(Config{Door: "test", AuditBudget: tc.cfg, binding: bound})
			ctx := callCtx(s, boxPeer)
			for range 10 {
				Audit(ctx, log, Record{Reason: "x"})
			}
			s.closeAudit()
			if tl := al.tally(t, "L"); tl.written["x"] != tc.wantWritten || tl.total("x") != 10 {
				t.Errorf("%s: written %d of 10 (want %d), total %d", tc.name, tl.written["x"], tc.wantWritten, tl.total("x"))
			}
		}
	})
	t.Run("disabled", func(t *testing.T) {
		var al auditLog
		log := al.logger()
		s := budgetServer(newFakeClock(), bound, -1)
		ctx := callCtx(s, boxPeer)
		for range 500 {
			Audit(ctx, log, Record{Reason: "all"})
		}
		if tl := al.tally(t, "L"); tl.written["all"] != 500 || len(tl.summaries) != 0 {
			t.Errorf("disabled budget: written %d, summaries %d", tl.written["all"], len(tl.summaries))
		}
	})
}

// BenchmarkAuditAllow measures the allow path with and without a budget on
// the door: the budget must not cost an allowed call anything.
func BenchmarkAuditAllow(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	for _, burst := range []int{-1, 0} {
		s := NewServer(Config{Door: "test", AuditBudget: AuditBudget{Burst: burst}, binding: &Binding{DoorID: "d", LaunchID: "L"}})
		ctx := callCtx(s, boxPeer)
		b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					Audit(ctx, log, Record{Target: "t", Allow: true, Reason: "ok"})
				}
			})
		})
	}
}

// TestAuditBudgetUnauthorizedIsNotTheLaunchs: a caller the door refuses as
// unauthorized (on a TCP door: anything on the host's loopback without the
// launch's token, such as another launch's box) has not proven it is the
// launch, so its refusals are charged per peer: they cannot spend the
// launch's budget and bury the launch's own refusals.
func TestAuditBudgetUnauthorizedIsNotTheLaunchs(t *testing.T) {
	var al auditLog
	log := al.logger()
	fc := newFakeClock()
	s := NewServer(Config{Door: "test", Logger: log, AuditBudget: AuditBudget{Burst: 3, Rate: 10, clock: fc},
		binding: &Binding{DoorID: "d", LaunchID: "L", Account: "a"}})
	intruder := Peer{UID: -1, GID: -1, PID: -1, Addr: "10.0.2.2:40000"}
	for i := range 50 {
		p := intruder
		p.Addr = fmt.Sprintf("10.0.2.2:%d", 40000+i)
		_ = s.deny(callCtx(s, p), "m", errors.New("bad token"))
	}
	launch := Peer{UID: -1, GID: -1, PID: -1, Addr: "10.0.2.2:50000"}
	for range 3 {
		Audit(callCtx(s, launch), log, Record{Reason: "not_allowlisted"})
	}
	s.closeAudit()
	tl := al.tally(t, "L")
	if got := tl.written["not_allowlisted"]; got != 3 {
		t.Errorf("the launch's own refusals written = %d (suppressed %d), want all 3", got, tl.suppressed["not_allowlisted"])
	}
	if got, n := tl.written["unauthorized"], tl.total("unauthorized"); got != 3 || n != 50 {
		t.Errorf("unauthorized written %d of %d counted, want 3 of 50", got, n)
	}
	if n := fc.pending(); n != 0 {
		t.Errorf("%d timers left after close", n)
	}
}

// tunnelGuest is floodGuest with a Tunnel that stands for a state-changing
// call: it is allowed and audited, and ends when the client closes.
type tunnelGuest struct{ floodGuest }

func (g tunnelGuest) Tunnel(stream netv1.EgressService_TunnelServer) error {
	Audit(stream.Context(), g.log, Record{Target: "tunnel", Allow: true, Reason: "opened"})
	return nil
}

func budgetMinter(t *testing.T, al *auditLog, fc *fakeClock, guest netv1.EgressServiceServer, informational []string) *Minter {
	t.Helper()
	m, err := NewMinter(MinterConfig{
		Door: "test", Dir: filepath.Join(shortDir(t), "launch"), Logger: al.logger(),
		AuditBudget: AuditBudget{clock: fc}, Informational: informational,
		Register: func(s *grpc.Server) { netv1.RegisterEgressServiceServer(s, guest) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

// tunnels opens and closes n Tunnel streams on one connection and asserts
// each ends with want.
func tunnels(t *testing.T, path string, n int, want codes.Code) {
	t.Helper()
	client := netv1.NewEgressServiceClient(dial(t, path))
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := client.Tunnel(ctx)
		if err == nil {
			_ = st.CloseSend()
			_, err = st.Recv()
		}
		cancel()
		if got := status.Code(err); err == nil || got != want && !(want == codes.OK && errors.Is(err, io.EOF)) {
			t.Fatalf("tunnel: %v, want %v", err, want)
		}
	}
}

const checkTarget = "/claudebox.net.v1.EgressService/CheckTarget"

// TestAuditBudgetInformational: 10,000 allowed calls of an informational
// method write the burst and summaries (allow=true, budget=informational)
// that count every other one exactly; state-changing allowed calls made
// during the flood are all written; refusals have their own budget, which
// the flood does not spend; another launch's informational calls are all
// written.
func TestAuditBudgetInformational(t *testing.T) {
	al := &auditLog{}
	fc := newFakeClock()
	m := budgetMinter(t, al, fc, tunnelGuest{floodGuest{log: al.logger()}}, []string{checkTarget})
	flood, err := m.Mint(context.Background(), MintRequest{LaunchID: "flood", Account: "a", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := m.Mint(context.Background(), MintRequest{LaunchID: "quiet", Account: "a", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	const (
		asks     = 10000
		refusals = DefaultAuditBurst // exactly the refusal budget's burst
		opens    = 200
	)
	phase := func(n, refused int) {
		var targets []string
		for i := range n {
			targets = append(targets, "ok")
			if i%(n/refused) == 0 {
				targets = append(targets, "caveat")
			}
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			callMany(t, flood.SocketPath, targets)
		}()
		go func() {
			defer wg.Done()
			tunnels(t, flood.SocketPath, opens/2, codes.OK)
		}()
		callMany(t, quiet.SocketPath, slices.Repeat([]string{"ok"}, DefaultAuditBurst/2))
		wg.Wait()
	}

	phase(asks/2, refusals/2)
	tl := al.tally(t, "flood")
	if got := tl.allowedBy[checkTarget]; got != DefaultAuditBurst {
		t.Fatalf("informational records written while the clock stood still = %d, want the burst %d", got, DefaultAuditBurst)
	}
	fc.Advance(time.Second)
	tl = al.tally(t, "flood")
	if n := len(tl.other[BudgetInformational]); n != 1 {
		t.Fatalf("informational summaries after a second = %d, want 1: %v", n, tl.other)
	}
	s := tl.other[BudgetInformational][0]
	if s[KeyFinal] != false || s["level"] != "INFO" || s[KeyMethod] != checkTarget || s[KeyReason] != "ok" ||
		s[KeyLaunch] != "flood" || s[KeyAccount] != "a" || s[KeyTarget] != "ok" {
		t.Errorf("informational summary = %v", s)
	}
	if got := tl.allowedBy[checkTarget] + tl.otherN[BudgetInformational]; got != asks/2 {
		t.Errorf("after phase 1: written %d + suppressed %d = %d, want %d", tl.allowedBy[checkTarget], tl.otherN[BudgetInformational], got, asks/2)
	}

	phase(asks/2, refusals/2)
	if !m.Revoke(flood.DoorID) {
		t.Fatal("flood door was not live")
	}
	if n := fc.pending(); n != 0 {
		t.Fatalf("%d budget timers left after revoke", n)
	}
	tl = al.tally(t, "flood")
	if got, want := tl.allowedBy[checkTarget], DefaultAuditBurst+DefaultAuditRate; got != want {
		t.Errorf("informational records written = %d, want burst + one second of refill = %d", got, want)
	}
	if got := tl.allowedBy[checkTarget] + tl.otherN[BudgetInformational]; got != asks {
		t.Errorf("written %d + suppressed %d = %d, want exactly %d", tl.allowedBy[checkTarget], tl.otherN[BudgetInformational], got, asks)
	}
	final := 0
	for _, s := range tl.other[BudgetInformational] {
		if s[KeyFinal] == true {
			final++
		}
	}
	if len(tl.other[BudgetInformational]) != 2 || final != 1 {
		t.Errorf("informational summaries = %v, want one by the timer and one final", tl.other[BudgetInformational])
	}
	if got := tl.allowedBy["/claudebox.net.v1.EgressService/Tunnel"]; got != opens {
		t.Errorf("tunnel records = %d, want every one of %d", got, opens)
	}
	if tl.written["caveat"] != refusals || len(tl.summaries) != 0 {
		t.Errorf("refusals written %d, summaries %v; want all %d written: the informational flood must not spend their budget",
			tl.written["caveat"], tl.summaries, refusals)
	}
	if len(tl.other[BudgetUnaudited]) != 0 {
		t.Errorf("unaudited summaries %v, want none", tl.other[BudgetUnaudited])
	}
	q := al.tally(t, "quiet")
	if q.allowedBy[checkTarget] != DefaultAuditBurst || len(q.other) != 0 {
		t.Errorf("quiet launch: written %d, summaries %v; want all %d written", q.allowedBy[checkTarget], q.other, DefaultAuditBurst)
	}
}

// TestAuditBudgetUnaudited: calls the runtime audits for a handler that did
// not (here a method the guest API does not implement, and a handler that
// fails with a code that is not a refusal's) are budgeted apart from
// refusals and counted exactly; allowed calls stay written.
func TestAuditBudgetUnaudited(t *testing.T) {
	al := &auditLog{}
	fc := newFakeClock()
	m := budgetMinter(t, al, fc, floodGuest{log: al.logger()}, nil)
	d, err := m.Mint(context.Background(), MintRequest{LaunchID: "L", Account: "a", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	var targets []string
	for range n {
		targets = append(targets, "unaudited", "caveat", "ok")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tunnels(t, d.SocketPath, n, codes.Unimplemented)
	}()
	callMany(t, d.SocketPath, targets)
	wg.Wait()
	if !m.Revoke(d.DoorID) {
		t.Fatal("door was not live")
	}
	if n := fc.pending(); n != 0 {
		t.Fatalf("%d budget timers left after revoke", n)
	}
	tl := al.tally(t, "L")
	// The unaudited records (allow=true with the error) are budgeted: the
	// allowed records of CheckTarget are the n "ok" ones plus the budget's
	// burst of unaudited ones.
	unaudited := 0
	for _, r := range al.records(t) {
		if r[KeyAllow] == true && r[KeyError] != nil {
			if r["level"] != "ERROR" {
				t.Errorf("unaudited failure record = %v", r)
			}
			unaudited++
		}
	}
	if unaudited != DefaultAuditBurst {
		t.Errorf("unaudited records written = %d, want the burst %d", unaudited, DefaultAuditBurst)
	}
	if got := unaudited + tl.otherN[BudgetUnaudited]; got != 2*n {
		t.Errorf("unaudited written %d + suppressed %d = %d, want exactly %d", unaudited, tl.otherN[BudgetUnaudited], got, 2*n)
	}
	reasons := map[string]int{}
	for _, s := range tl.other[BudgetUnaudited] {
		if s["level"] != "ERROR" || s[KeyFinal] != true {
			t.Errorf("unaudited summary = %v", s)
		}
		reasons[s[KeyMethod].(string)+" "+s[KeyReason].(string)] += int(s[KeySuppressed].(float64))
	}
	if len(reasons) != 2 || reasons[checkTarget+" unavailable"] == 0 || reasons["/claudebox.net.v1.EgressService/Tunnel unimplemented"] == 0 {
		t.Errorf("unaudited summaries per method and reason = %v", reasons)
	}
	if got := tl.allowedBy[checkTarget] - countErr(t, al, checkTarget); got != n {
		t.Errorf("allowed CheckTarget records without error = %d, want every one of %d", got, n)
	}
	if tl.written["caveat"] != DefaultAuditBurst || tl.total("caveat") != n {
		t.Errorf("refusals written %d of %d, want the burst of their own budget of exactly %d", tl.written["caveat"], tl.total("caveat"), n)
	}
}

// countErr counts the allowed records of method that carry an error.
func countErr(t *testing.T, al *auditLog, method string) int {
	t.Helper()
	n := 0
	for _, r := range al.records(t) {
		if r[KeyMethod] == method && r[KeyAllow] == true && r[KeyError] != nil {
			n++
		}
	}
	return n
}

// TestInformationalNamesAreFullMethods: a minter refuses an informational
// method that is not a full gRPC method name, which would never match.
func TestInformationalNamesAreFullMethods(t *testing.T) {
	for _, name := range []string{"CheckTarget", "claudebox.net.v1.EgressService/CheckTarget", "/claudebox.net.v1.EgressService/", ""} {
		_, err := NewMinter(MinterConfig{Door: "test", Dir: filepath.Join(shortDir(t), "launch"), Informational: []string{name}})
		if err == nil || !strings.Contains(err.Error(), "not a full gRPC method name") {
			t.Errorf("informational %q: err %v, want a refusal", name, err)
		}
	}
	if _, err := NewMinter(MinterConfig{Door: "test", Dir: filepath.Join(shortDir(t), "launch"), Informational: []string{checkTarget}}); err != nil {
		t.Errorf("informational %q: %v", checkTarget, err)
	}
}
