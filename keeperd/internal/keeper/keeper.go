package keeper

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Launch is who is asking: what the door was minted for, never what the
// box claims.
type Launch struct {
	// ID is the launch id ("standing" on a standing door).
	ID string
	// Account is the account the launch runs as.
	Account string
	// ManifestDigest is the digest of the launch's capability manifest.
	ManifestDigest string
	// Repo is the host path of the worktree the door was minted for.
	Repo string
	// Pin is that worktree as it was at mint time (PinRepo). A request
	// without one, or whose Repo no longer leads to it, is refused.
	Pin *Pin
}

// Pin is a bound worktree as it was when its door was minted: the
// symlink-resolved path and the directory itself.
type Pin struct {
	dir  string
	info fs.FileInfo
}

// PinRepo checks, at mint time, that repo may be bound (BindRepo) and that
// its git dir is its own (CheckWorktree), and pins the directory it
// resolves to, so that a directory on the bound path replaced later (by a
// box whose worktree contains it) cannot move the door to another
// repository.
func PinRepo(p *Policy, repo string) (*Pin, error) {
	_, dir, err := p.BindRepo(repo)
	if err != nil {
		return nil, err
	}
	if err := CheckWorktree(dir); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: stat the bound repository: %w", ErrInternal, err)
	}
	return &Pin{dir: dir, info: fi}, nil
}

// errRepoMoved refuses a request whose bound path now leads elsewhere.
var errRepoMoved = fmt.Errorf("%w: the bound repository's path no longer leads to the directory the door was minted for (a directory on it was replaced); keeperd works only on the repository the door was bound to: relaunch to bind it again", ErrPrecondition)

// errUnpinned refuses a request whose door was never pinned (PinRepo).
var errUnpinned = fmt.Errorf("%w: this door's repository was not checked when the door was minted", ErrDenied)

// bind resolves the launch's repository under p (BindRepo) and refuses it
// when it is not the one pinned at mint time.
func bind(p *Policy, l Launch) (*RepoPolicy, string, error) {
	rp, dir, err := p.BindRepo(l.Repo)
	if err != nil {
		return nil, "", err
	}
	if l.Pin == nil {
		return nil, "", errUnpinned
	}
	fi, err := os.Stat(dir)
	if dir != l.Pin.dir || err != nil || !os.SameFile(fi, l.Pin.info) {
		return nil, "", errRepoMoved
	}
	return rp, dir, nil
}

// Write is one thing a launch wrote.
type Write struct {
	// Kind is "commit", "push" or "sign".
	Kind string
	// Target is the commit id, the pushed ref, or the signed object.
	Target string
	// Summary is a short human description.
	Summary string
	// Time is when it happened.
	Time time.Time
}

// Config configures a Keeper.
type Config struct {
	// Policy is what is allowed; nil denies everything.
	Policy *Policy
	// Key signs commits, notes and Sign payloads.
	Key *Key
	// Logger receives operational logs (never secrets). Audit records are
	// the adapter's job.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Getenv reads keeperd's environment (HOME, XDG_CONFIG_HOME,
	// GIT_CONFIG_GLOBAL, GIT_CONFIG_SYSTEM, GIT_CONFIG_NOSYSTEM) to find
	// the host user's git config and global excludes file, as git would;
	// nil means os.Getenv.
	Getenv func(string) string
	// PushTimeout bounds one push from its start (waiting for another push
	// to the same remote included) whatever deadline the caller sets — a
	// box's own client may set none. 0 means DefaultPushTimeout.
	PushTimeout time.Duration
}

// DefaultPushTimeout is how long a push may take when Config names no limit.
const DefaultPushTimeout = 5 * time.Minute

// Keeper makes host-side commits and pushes for bound repositories.
type Keeper struct {
	pol atomic.Pointer[Policy]
	key *Key
	log *slog.Logger
	now func() time.Time
	// getenv finds the host user's git config (core.excludesFile).
	getenv func(string) string
	// pushTimeout bounds every push, whatever the caller's deadline.
	pushTimeout time.Duration

	mu       sync.Mutex
	launches map[string]*launchState
	repos    map[string]chan struct{}
	// pushLocks serializes pushes of one repository to one remote: a
	// one-slot semaphore per repository and remote name.
	pushLocks map[string]chan struct{}
}

type launchState struct {
	commits, pushes, signs int
	writes                 []Write
}

// New builds a Keeper.
func New(cfg Config) (*Keeper, error) {
	if cfg.Key == nil {
		return nil, fmt.Errorf("keeper: no key")
	}
	if cfg.Policy == nil {
		cfg.Policy = DenyAll()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.PushTimeout <= 0 {
		cfg.PushTimeout = DefaultPushTimeout
	}
	k := &Keeper{
		key: cfg.Key, log: cfg.Logger, now: cfg.Now, getenv: cfg.Getenv, pushTimeout: cfg.PushTimeout,
		launches: map[string]*launchState{}, repos: map[string]chan struct{}{},
		pushLocks: map[string]chan struct{}{},
	}
	k.pol.Store(cfg.Policy)
	return k, nil
}

// Policy returns the policy in force.
func (k *Keeper) Policy() *Policy { return k.pol.Load() }

// SetPolicy replaces the policy for every later request (a reload). Requests
// in flight finish under the policy they started with.
func (k *Keeper) SetPolicy(p *Policy) {
	if p == nil {
		p = DenyAll()
	}
	k.pol.Store(p)
}

// PublicKey returns the signing key in authorized_keys form.
func (k *Keeper) PublicKey() string { return k.key.AuthorizedKey("keeperd") }

// Key returns the signing key (for verification and ssh auth).
func (k *Keeper) Key() *Key { return k.key }

func (k *Keeper) state(id string) *launchState {
	st, ok := k.launches[id]
	if !ok {
		st = &launchState{}
		k.launches[id] = st
	}
	return st
}

// take spends one unit of a launch's budget for kind.
func (k *Keeper) take(l Launch, kind string) error {
	r := k.Policy().rates()
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state(l.ID)
	var n *int
	var limit int
	switch kind {
	case "commit":
		n, limit = &st.commits, r.CommitsPerLaunch
	case "push":
		n, limit = &st.pushes, r.PushesPerLaunch
	default:
		n, limit = &st.signs, r.SignsPerLaunch
	}
	if *n >= limit {
		return fmt.Errorf("%w: this launch has used its %d %ss (policy rate)", ErrRateLimited, limit, kind)
	}
	*n++
	return nil
}

func (k *Keeper) record(l Launch, w Write) {
	w.Time = k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state(l.ID)
	if len(st.writes) >= maxWritesPerLaunch {
		st.writes = append(st.writes[:0], st.writes[len(st.writes)-maxWritesPerLaunch/2:]...)
	}
	st.writes = append(st.writes, w)
}

// maxWritesPerLaunch bounds a launch's write log; the oldest half is dropped
// when it fills (the audit log keeps everything).
const maxWritesPerLaunch = 10000

// Writes lists what a launch has written, oldest first.
func (k *Keeper) Writes(launchID string) []Write {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, ok := k.launches[launchID]
	if !ok {
		return nil
	}
	return append([]Write(nil), st.writes...)
}

// Forget drops a finished launch's counters and write log.
func (k *Keeper) Forget(launchID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.launches, launchID)
}

// lockRepo serializes writers of one repository inside this process. It is
// held for local work only (a commit; a push's resolving of what it will
// send), never across a network round trip. Waiting for it ends with ctx,
// since the write ahead may be a large commit.
func (k *Keeper) lockRepo(ctx context.Context, dir string) (func(), error) {
	k.mu.Lock()
	slot, ok := k.repos[dir]
	if !ok {
		slot = make(chan struct{}, 1)
		k.repos[dir] = slot
	}
	k.mu.Unlock()
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: another write to this repository is still running: %w", ErrUnavailable, ctx.Err())
	}
}

// lockPush serializes pushes of one repository to one remote inside this
// process, so they do not race each other on the remote; commits do not
// take it. Waiting for it ends with ctx, since the push ahead may be stuck
// on a slow remote for as long as its own deadline allows.
func (k *Keeper) lockPush(ctx context.Context, dir, remote string) (func(), error) {
	key := dir + "\x00" + remote
	k.mu.Lock()
	slot, ok := k.pushLocks[key]
	if !ok {
		slot = make(chan struct{}, 1)
		k.pushLocks[key] = slot
	}
	k.mu.Unlock()
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: another push of this repository to remote %q is still in flight: %w", ErrUnavailable, remote, ctx.Err())
	}
}

func checkCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 72 {
		s = s[:72]
	}
	return s
}
