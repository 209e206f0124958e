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

// Audit budget defaults, per budget (see AuditBudget). A guest that loops
// on refused requests, or on cheap questions, must not be able to fill the
// host's journal, nor drown the records that matter.
const (
	// DefaultAuditBurst is how many records of one budget a launch may have
	// written one by one before they start to be counted instead.
	DefaultAuditBurst = 100
	// DefaultAuditRate is how many records per second a launch's budget
	// regains.
	DefaultAuditRate = 20
	// DefaultAuditSummaryEvery is the longest a counted record waits before
	// a summary record reports it.
	DefaultAuditSummaryEvery = time.Second
)

// AuditSuppressedMsg is the message of a summary record: the records of one
// launch, budget, method and reason that were counted instead of written.
const AuditSuppressedMsg = "audit_suppressed"

// Summary record keys, after the fixed audit keys.
const (
	// KeyBudget names the budget the counted records were charged to:
	// BudgetRefusals, BudgetInformational or BudgetUnaudited. The summary's
	// allow is false for refusals and true for the other two.
	KeyBudget = "budget"
	// KeySuppressed is how many records the summary stands for.
	KeySuppressed = "suppressed"
	// KeyFirst and KeyLast bound when they happened.
	KeyFirst = "first"
	KeyLast  = "last"
	// KeyFinal is true on the summary written when the door closes: no
	// further summary of this launch follows.
	KeyFinal = "final"
)

// The budgets of a door, the values of KeyBudget. Each has its own bucket
// of AuditBudget's size, keyed the same way (per launch, or per peer).
const (
	// BudgetRefusals counts refusals (allow=false) of any method.
	BudgetRefusals = "refusals"
	// BudgetInformational counts the allowed records (including failures
	// after an allow) of the methods a door declares informational
	// (Config.Informational): calls that only answer a question, cheap
	// enough to loop on.
	BudgetInformational = "informational"
	// BudgetUnaudited counts the allowed records the runtime writes for a
	// call its handler did not audit (the handler returned without a
	// record, with success or an error that is not a refusal's code).
	BudgetUnaudited = "unaudited"
)

// budgetKind indexes a door's budgets.
type budgetKind int

const (
	kindRefusals budgetKind = iota
	kindInformational
	kindUnaudited
	numKinds
	// kindNone: the record is always written.
	kindNone budgetKind = -1
)

func (k budgetKind) String() string {
	switch k {
	case kindRefusals:
		return BudgetRefusals
	case kindInformational:
		return BudgetInformational
	case kindUnaudited:
		return BudgetUnaudited
	}
	return "none"
}

// chargeOf is the budget a record is charged to: refusals first, then the
// allowed records of an informational method, then the allowed records the
// runtime writes for a handler that did not audit; any other record (an
// allowed state-changing call, or its failure, audited by its handler) is
// always written.
func chargeOf(allow, informational, unaudited bool) budgetKind {
	switch {
	case !allow:
		return kindRefusals
	case informational:
		return kindInformational
	case unaudited:
		return kindUnaudited
	}
	return kindNone
}

const (
	// maxSuppressedKeys bounds the distinct (method, reason) pairs one
	// window counts separately; the rest are counted under otherReason.
	maxSuppressedKeys = 32
	otherReason       = "other_reasons"
	// maxPeerBudgets bounds the per-peer budgets of an unbound server.
	maxPeerBudgets = 1024
)

// AuditBudget bounds the audit records one launch (on a standing or unbound
// door: one peer uid) can write of each kind that is cheap to repeat: its
// refusals, the allowed calls of its door's informational methods, and the
// records the runtime writes for calls whose handler did not audit (see
// BudgetRefusals, BudgetInformational, BudgetUnaudited). Each kind has its
// own token bucket (Burst, refilled at Rate per second), so one kind's
// flood does not bury another's records. A record is written while its
// bucket has a token; beyond it, records are counted per method and reason,
// and a summary record (AuditSuppressedMsg) reports the count and its time
// window at most Every after the first one counted, and when the door
// closes. Allowed state-changing calls and their failures are always
// written: they are the evidence of what a guest did, and the work itself
// bounds their rate. No record goes uncounted; the answer to the guest is
// unchanged.
type AuditBudget struct {
	// Burst is each bucket's size; zero means DefaultAuditBurst, negative
	// writes every record.
	Burst int
	// Rate is each bucket's refill in records per second; zero or less
	// means DefaultAuditRate.
	Rate float64
	// Every is the longest a counted record waits for its summary; zero or
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

// budgets hands out the budget of one kind a record is charged to: the
// door's one budget when the door is bound to a launch, else one per peer
// uid. A
// caller the door refused as unauthorized has not proven it is the launch
// (on a TCP door, anything on the host's loopback can knock): its refusals
// are charged per peer even on a bound door, so they cannot spend the
// launch's budget.
type budgets struct {
	cfg  AuditBudget
	kind budgetKind
	one  *budget

	mu       sync.Mutex
	byPeer   map[string]*budget
	overflow *budget
	closed   bool
}

// doorBudgets are a server's budgets, one per kind; nil when records are
// not budgeted.
type doorBudgets [numKinds]*budgets

func newDoorBudgets(cfg AuditBudget, b *Binding) *doorBudgets {
	if cfg.Burst < 0 {
		return nil
	}
	var d doorBudgets
	for k := range numKinds {
		d[k] = newBudgets(cfg, b, k)
	}
	return &d
}

// admit charges a record to its kind's budget; see budgets.admit.
func (d *doorBudgets) admit(kind budgetKind, log *slog.Logger, r Record, c caller) bool {
	if d == nil || kind < 0 || kind >= numKinds {
		return true
	}
	return d[kind].admit(log, r, c)
}

// close writes every budget's final summaries (refusals first).
func (d *doorBudgets) close() {
	if d == nil {
		return
	}
	for _, bs := range d {
		bs.close()
	}
}

// newBudgets returns the budgets of one kind of a server. A door bound to
// a launch (not a standing door) has one budget.
func newBudgets(cfg AuditBudget, b *Binding, kind budgetKind) *budgets {
	bs := &budgets{cfg: cfg.withDefaults(), kind: kind}
	if b != nil && b.DoorID != StandingDoorID {
		bs.one = bs.newBudget()
	}
	return bs
}

func (bs *budgets) newBudget() *budget { return &budget{cfg: &bs.cfg, kind: bs.kind} }

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
			bs.overflow = bs.newBudget()
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
			bs.overflow = bs.newBudget()
		}
		return bs.overflow
	}
	b := bs.newBudget()
	bs.byPeer[key] = b
	return b
}

// admit charges a record to its budget. It reports whether the record is
// to be written; a record it does not admit is counted. It writes the
// summaries that are due.
func (bs *budgets) admit(log *slog.Logger, r Record, c caller) bool {
	ok, due := bs.forPeer(c.peerValue, c.unauthorized).admit(log, r, c)
	writeSummaries(due)
	return ok
}

// close writes the final summaries; records after it are written one by
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

// budget is the token bucket and the counted records of one kind of one
// launch (or peer).
type budget struct {
	cfg  *AuditBudget
	kind budgetKind

	mu sync.Mutex
	// full is when the bucket is full again: each written record pushes it
	// one interval later, and a record is written while it is at most
	// Burst intervals away. Exact in durations, unlike a float of tokens.
	full   time.Time
	closed bool
	// The current window: records counted since opened, per method and
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
	// The last counted record's fields.
	door, account, launch, peer, target string
}

// caller is what Audit knows of a record's call beyond its Record.
type caller struct {
	account, launch string
	peerValue       Peer
	// unauthorized: the door refused the caller itself (see budgets).
	unauthorized bool
}

type summary struct {
	kind  budgetKind
	key   suppressKey
	s     suppressed
	final bool
}

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

func (b *budget) admit(log *slog.Logger, r Record, rec caller) (bool, []summary) {
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
			s = &suppressed{first: now, level: slog.LevelInfo}
			if b.kind == kindRefusals {
				s.level = slog.LevelWarn
			}
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
// summarized within Every, not at the next record.
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
		out = append(out, summary{kind: b.kind, key: k, s: *s, final: final})
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
// fixed audit fields first, as on every audit record; allow is false for
// refusals and true for the records of the other budgets.
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
			slog.Bool(KeyAllow, d.kind != kindRefusals),
			slog.String(KeyReason, d.key.reason),
			slog.String(KeyBudget, d.kind.String()),
			slog.Int64(KeySuppressed, d.s.n),
			slog.Time(KeyFirst, d.s.first),
			slog.Time(KeyLast, d.s.last),
			slog.Bool(KeyFinal, d.final),
		)
	}
}
