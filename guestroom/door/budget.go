package door

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Refusal budget defaults. A guest that loops on refused requests must not
// be able to fill the host's journal, nor drown the records that matter.
const (
	// DefaultAuditBurst is how many refusals a launch may have written one
	// by one before its refusals start to be counted instead.
	DefaultAuditBurst = 100
	// DefaultAuditRate is how many refusals per second a launch's budget
	// regains.
	DefaultAuditRate = 20
	// DefaultAuditSummaryEvery is the longest a counted refusal waits before
	// a summary record reports it.
	DefaultAuditSummaryEvery = time.Second
)

// AuditSuppressedMsg is the message of a summary record: the refusals of one
// launch, method and reason that were counted instead of written.
const AuditSuppressedMsg = "audit_suppressed"

// Summary record keys, after the fixed audit keys.
const (
	// KeySuppressed is how many refusals the summary stands for.
	KeySuppressed = "suppressed"
	// KeyFirst and KeyLast bound when they happened.
	KeyFirst = "first"
	KeyLast  = "last"
	// KeyFinal is true on the summary written when the door closes: no
	// further summary of this launch follows.
	KeyFinal = "final"
)

const (
	// maxSuppressedKeys bounds the distinct (method, reason) pairs one
	// window counts separately; the rest are counted under otherReason.
	maxSuppressedKeys = 32
	otherReason       = "other_reasons"
	// maxPeerBudgets bounds the per-peer budgets of an unbound server.
	maxPeerBudgets = 1024
)

// AuditBudget bounds the audit records the refusals of one launch (on a
// standing or unbound door: of one peer uid) can write. Allowed calls and
// failures after an allow are always written: they are the evidence of
// what a guest did, and the work itself bounds their rate. A refusal is
// written while the launch's token bucket (Burst, refilled at Rate per
// second) has a token; beyond it, refusals are counted per method and
// reason, and a summary record (AuditSuppressedMsg) reports the count and
// its time window at most Every after the first one counted, and when the
// door closes. No refusal goes uncounted; the answer to the guest is
// unchanged.
type AuditBudget struct {
	// Burst is the bucket's size; zero means DefaultAuditBurst, negative
	// writes every refusal.
	Burst int
	// Rate is the refill in refusals per second; zero or less means
	// DefaultAuditRate.
	Rate float64
	// Every is the longest a counted refusal waits for its summary; zero or
	// less means DefaultAuditSummaryEvery.
	Every time.Duration
	// clock is the budget's time; nil means real time.
	clock clock
	// interval is the time one token takes to come back; span is Burst
	// intervals, the most a bucket can owe. Set by withDefaults.
	interval, span time.Duration
}

func (c AuditBudget) withDefaults() AuditBudget {
	if c.Burst == 0 {
		c.Burst = DefaultAuditBurst
	}
	if !(c.Rate > 0) { // also NaN
		c.Rate = DefaultAuditRate
	}
	if c.Every <= 0 {
		c.Every = DefaultAuditSummaryEvery
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	// Bounded so that no configuration overflows a time.
	const most = time.Duration(math.MaxInt64 / 4)
	burst := time.Duration(min(c.Burst, int(most)))
	iv := most
	if f := float64(time.Second) / c.Rate; f < float64(most) {
		iv = time.Duration(f)
	}
	c.interval = max(min(iv, most/burst), 1)
	c.span = burst * c.interval
	return c
}

// clock is the time seam of the audit budget.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) stopper
}

type stopper interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                              { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }

// budgets hands out the budget a refusal is charged to: the door's one
// budget when the door is bound to a launch, else one per peer uid. A
// caller the door refused as unauthorized has not proven it is the launch
// (on a TCP door, anything on the host's loopback can knock): its refusals
// are charged per peer even on a bound door, so they cannot spend the
// launch's budget.
type budgets struct {
	cfg AuditBudget
	one *budget

	mu       sync.Mutex
	byPeer   map[string]*budget
	overflow *budget
	closed   bool
}

// newBudgets returns the budgets of a server; nil when refusals are not
// budgeted. A door bound to a launch (not a standing door) has one budget.
func newBudgets(cfg AuditBudget, b *Binding) *budgets {
	if cfg.Burst < 0 {
		return nil
	}
	bs := &budgets{cfg: cfg.withDefaults()}
	if b != nil && b.DoorID != StandingDoorID {
		bs.one = newBudget(&bs.cfg)
	}
	return bs
}

// peerKey names who a per-peer budget belongs to: the uid, not the process,
// so a guest cannot reset its budget by starting a new process.
func peerKey(p Peer) string {
	switch {
	case p.Unix && p.Known:
		return "uid=" + strconv.Itoa(p.UID)
	case p.Unix:
		return "unix unknown"
	default:
		host := p.Addr
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		return "tcp " + host
	}
}

func (bs *budgets) forPeer(p Peer, unauthorized bool) *budget {
	if bs.one != nil && !unauthorized {
		return bs.one
	}
	key := peerKey(p)
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b, ok := bs.byPeer[key]; ok {
		return b
	}
	if bs.closed {
		// Refusals after close are written one by one; one closed budget
		// serves them all.
		if bs.overflow == nil {
			bs.overflow = newBudget(&bs.cfg)
			bs.overflow.closed = true
		}
		return bs.overflow
	}
	if bs.byPeer == nil {
		bs.byPeer = map[string]*budget{}
	}
	if len(bs.byPeer) >= maxPeerBudgets {
		now := bs.cfg.clock.Now()
		for k, b := range bs.byPeer {
			if b.idle(now) {
				delete(bs.byPeer, k)
			}
		}
	}
	if len(bs.byPeer) >= maxPeerBudgets {
		if bs.overflow == nil {
			bs.overflow = newBudget(&bs.cfg)
		}
		return bs.overflow
	}
	b := newBudget(&bs.cfg)
	bs.byPeer[key] = b
	return b
}

// admit charges a refusal to its budget. It reports whether the refusal's
// own record is to be written; a refusal it does not admit is counted. It
// writes the summaries that are due.
func (bs *budgets) admit(log *slog.Logger, r Record, rec refusal) bool {
	ok, due := bs.forPeer(rec.peerValue, rec.unauthorized).admit(log, r, rec)
	writeSummaries(due)
	return ok
}

// close writes the final summaries; refusals after it are written one by
// one. It stops every timer.
func (bs *budgets) close() {
	if bs == nil {
		return
	}
	var all []*budget
	if bs.one != nil {
		all = append(all, bs.one)
	}
	bs.mu.Lock()
	bs.closed = true
	for _, b := range bs.byPeer {
		all = append(all, b)
	}
	bs.byPeer = nil
	if bs.overflow != nil {
		all = append(all, bs.overflow)
	}
	bs.mu.Unlock()
	for _, b := range all {
		writeSummaries(b.close())
	}
}

// budget is the token bucket and the counted refusals of one launch (or
// peer).
type budget struct {
	cfg *AuditBudget

	mu sync.Mutex
	// full is when the bucket is full again: each written refusal pushes it
	// one interval later, and a refusal is written while it is at most
	// Burst intervals away. Exact in durations, unlike a float of tokens.
	full   time.Time
	closed bool
	// The current window: refusals counted since opened, per method and
	// reason. gen tells a stale timer from the current window's.
	window map[suppressKey]*suppressed
	opened time.Time
	gen    uint64
	timer  stopper
}

type suppressKey struct{ method, reason string }

// suppressed is what a summary record reports for one method and reason.
type suppressed struct {
	n           int64
	first, last time.Time
	level       slog.Level
	log         *slog.Logger
	// The last counted refusal's fields.
	door, account, launch, peer, target string
}

// refusal is what Audit knows of a refusal beyond its Record.
type refusal struct {
	account, launch string
	peerValue       Peer
	// unauthorized: the door refused the caller itself (see budgets).
	unauthorized bool
}

type summary struct {
	key   suppressKey
	s     suppressed
	final bool
}

func newBudget(cfg *AuditBudget) *budget { return &budget{cfg: cfg} }

// take1 spends a token if there is one. The caller holds mu.
func (b *budget) take1(now time.Time) bool {
	next := b.full
	if next.Before(now) {
		next = now
	}
	next = next.Add(b.cfg.interval)
	if next.Sub(now) > b.cfg.span {
		return false
	}
	b.full = next
	return true
}

// idle reports whether b is as good as a fresh budget: full and counting
// nothing.
func (b *budget) idle(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.window == nil && !b.full.After(now)
}

func (b *budget) admit(log *slog.Logger, r Record, rec refusal) (bool, []summary) {
	now := b.cfg.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var due []summary
	if b.window != nil && now.Sub(b.opened) >= b.cfg.Every {
		due = b.take(false)
	}
	if b.closed || b.take1(now) {
		return true, due
	}
	if b.window == nil {
		b.window = map[suppressKey]*suppressed{}
		b.opened = now
		b.gen++
		gen := b.gen
		b.timer = b.cfg.clock.AfterFunc(b.cfg.Every, func() { b.tick(gen) })
	}
	key := suppressKey{method: r.Method, reason: r.Reason}
	s, ok := b.window[key]
	if !ok {
		if len(b.window) >= maxSuppressedKeys-1 {
			key = suppressKey{reason: otherReason}
			s, ok = b.window[key]
		}
		if !ok {
			s = &suppressed{first: now, level: slog.LevelWarn}
			b.window[key] = s
		}
	}
	s.n++
	s.last = now
	if r.Err != nil {
		s.level = slog.LevelError
	}
	s.log = log
	s.door, s.account, s.launch, s.peer, s.target = r.Door, rec.account, rec.launch, rec.peerValue.String(), r.Target
	return false, due
}

// tick writes the window gen when it is still open: a flood that stops is
// summarized within Every, not at the next refusal.
func (b *budget) tick(gen uint64) {
	b.mu.Lock()
	var due []summary
	if b.gen == gen && b.window != nil {
		due = b.take(false)
	}
	b.mu.Unlock()
	writeSummaries(due)
}

func (b *budget) close() []summary {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.take(true)
}

// take closes the current window and returns its summaries, in a stable
// order. The caller holds mu.
func (b *budget) take(final bool) []summary {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if b.window == nil {
		return nil
	}
	out := make([]summary, 0, len(b.window))
	for k, s := range b.window {
		out = append(out, summary{key: k, s: *s, final: final})
	}
	b.window = nil
	slices.SortFunc(out, func(x, y summary) int {
		if c := strings.Compare(x.key.method, y.key.method); c != 0 {
			return c
		}
		return strings.Compare(x.key.reason, y.key.reason)
	})
	return out
}

// writeSummaries writes one summary record per method and reason, with the
// fixed audit fields first, as on every audit record.
func writeSummaries(due []summary) {
	for _, d := range due {
		if d.s.log == nil {
			continue
		}
		d.s.log.LogAttrs(context.Background(), d.s.level, AuditSuppressedMsg,
			slog.String(KeyDoor, d.s.door),
			slog.String(KeyMethod, d.key.method),
			slog.String(KeyAccount, d.s.account),
			slog.String(KeyLaunch, d.s.launch),
			slog.String(KeyPeer, d.s.peer),
			slog.String(KeyTarget, d.s.target),
			slog.Bool(KeyAllow, false),
			slog.String(KeyReason, d.key.reason),
			slog.Int64(KeySuppressed, d.s.n),
			slog.Time(KeyFirst, d.s.first),
			slog.Time(KeyLast, d.s.last),
			slog.Bool(KeyFinal, d.final),
		)
	}
}
