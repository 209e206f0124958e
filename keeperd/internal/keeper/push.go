package keeper

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// PushRequest asks to push one ref.
type PushRequest struct {
	// Remote is a remote name from policy; empty means the default.
	Remote string
	// Ref is a branch name (empty: the current branch), or refs/tags/NAME
	// for a tag. A leading ":" (a delete) is always refused.
	Ref string
	// Force asks for a non-fast-forward update; refused unless policy
	// allows force.
	Force bool
}

// PushResult describes a push.
type PushResult struct {
	// Remote is the remote name pushed to.
	Remote string
	// Ref is the full ref updated on the remote.
	Ref string
	// Old is the remote's previous id, empty when the ref was created.
	Old string
	// New is the id pushed.
	New string
	// Commits counts the commits the remote did not have (capped).
	Commits int
}

const maxCountCommits = 10000

// Push pushes one allowed branch (or, when policy allows, one new tag) of
// the launch's repository to a remote named in policy, at the URL policy
// gives for it. The repository's own remote configuration, url.insteadOf,
// pushurl and core.sshCommand are never read. Fast-forward only, no deletes.
func (k *Keeper) Push(ctx context.Context, l Launch, req PushRequest) (res PushResult, err error) {
	// keeperd's own limit, whatever the caller's deadline: a stalled remote
	// holds this launch's in-flight slot and the remote's push lock no
	// longer than this.
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, k.pushTimeout)
	defer cancel()
	defer func() {
		if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w: push did not finish within keeperd's limit of %s (%w)", ErrUnavailable, k.pushTimeout, err)
			res = PushResult{}
		}
	}()
	p := k.Policy()
	rp, dir, err := bind(p, l)
	if err != nil {
		return PushResult{}, err
	}
	name := req.Remote
	if name == "" {
		name = rp.DefaultRemote
	}
	if name == "" && len(rp.Remotes) == 1 {
		for n := range rp.Remotes {
			name = n
		}
	}
	if name == "" {
		return PushResult{}, fmt.Errorf("%w: no remote named and policy has no default remote for this repository", ErrDenied)
	}
	rem, ok := rp.Remotes[name]
	if !ok {
		return PushResult{}, fmt.Errorf("%w: remote %q is not in policy", ErrDenied, name)
	}
	if strings.HasPrefix(req.Ref, ":") || strings.HasPrefix(req.Ref, "+") || strings.Contains(req.Ref, ":") {
		return PushResult{}, fmt.Errorf("%w: %q: refspecs and deletes are never allowed (name one branch)", ErrDenied, req.Ref)
	}
	if req.Force && !p.Force {
		return PushResult{}, fmt.Errorf("%w: force push is not allowed by policy", ErrDenied)
	}
	// Pushes of this repository to this remote run one at a time; commits
	// do not wait for them.
	unlockPush, err := k.lockPush(ctx, dir, name)
	if err != nil {
		return PushResult{}, err
	}
	defer unlockPush()
	w, local, err := k.resolvePush(ctx, l, dir, p, req.Ref)
	if err != nil {
		return PushResult{}, err
	}
	defer w.Close()
	// The repository lock is released: from here on the push reads only
	// objects (immutable) and the one reference resolved under the lock,
	// so a commit made meanwhile neither waits for the network nor changes
	// what is sent. Nothing below writes to the repository.
	ref, newH, isTag := local.Name(), local.Hash(), local.Name().IsTag()
	sto, ok := w.repo.Storer.(*filesystem.Storage)
	if !ok {
		return PushResult{}, fmt.Errorf("%w: unexpected repository storage %T", ErrInternal, w.repo.Storer)
	}
	t, err := k.transport(rem)
	if err != nil {
		return PushResult{}, err
	}
	remote := git.NewRemote(pinnedRefs{Storage: sto, ref: local}, &config.RemoteConfig{Name: name, URLs: []string{t.url}})
	var refs []*plumbing.Reference
	err = boundedByCtx(ctx, func() (err error) {
		refs, err = remote.ListContext(ctx, &git.ListOptions{Auth: t.auth, CABundle: t.ca})
		return err
	})
	if err != nil && !errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return PushResult{}, t.explain(name, err)
	}
	var oldH plumbing.Hash
	for _, r := range refs {
		if r.Name() == ref && r.Type() == plumbing.HashReference {
			oldH = r.Hash()
		}
	}
	res = PushResult{Remote: name, Ref: ref.String(), New: newH.String()}
	if !oldH.IsZero() {
		res.Old = oldH.String()
	}
	if oldH == newH {
		return res, nil
	}
	if isTag && !oldH.IsZero() {
		return PushResult{}, fmt.Errorf("%w: tag %s already exists on %s (tags are never moved)", ErrDenied, ref.Short(), name)
	}
	force := false
	if !oldH.IsZero() {
		ff, err := isAncestor(w, oldH, newH)
		if err != nil {
			return PushResult{}, err
		}
		if !ff {
			if !req.Force {
				return PushResult{}, fmt.Errorf("%w: non-fast-forward: %s on %s has commits this push would drop (fetch and merge on the host)", ErrDenied, ref.Short(), name)
			}
			force = true
		}
	}
	res.Commits = countCommits(w, newH, oldH)
	spec := config.RefSpec(ref.String() + ":" + ref.String())
	if force {
		spec = "+" + spec
	}
	opts := &git.PushOptions{
		RemoteName: name,
		RefSpecs:   []config.RefSpec{spec},
		Auth:       t.auth,
		CABundle:   t.ca,
		Force:      false,
		Prune:      false,
		FollowTags: false,
	}
	// The update command carries the old id we checked; receive-pack
	// refuses it if the remote ref moved meanwhile (compare-and-swap).
	if !oldH.IsZero() {
		opts.RequireRemoteRefs = []config.RefSpec{config.RefSpec(oldH.String() + ":" + ref.String())}
	}
	err = boundedByCtx(ctx, func() error { return remote.PushContext(ctx, opts) })
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return PushResult{}, t.explain(name, err)
	}
	k.record(l, Write{Kind: "push", Target: name + " " + ref.String(), Summary: fmt.Sprintf("%s..%s", short(res.Old), short(res.New))})
	return res, nil
}

// resolvePush resolves, under the repository lock, the ref a push names to
// the id it points at, checks it against policy, and spends one push of
// the launch's budget. The returned worktree stays open for reading
// objects after the lock is released; the caller closes it.
func (k *Keeper) resolvePush(ctx context.Context, l Launch, dir string, p *Policy, reqRef string) (*worktree, *plumbing.Reference, error) {
	unlock, err := k.lockRepo(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	w, err := openWorktree(dir)
	if err != nil {
		return nil, nil, err
	}
	local, err := k.resolvePushRef(l, w, p, reqRef)
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	return w, local, nil
}

// resolvePushRef is resolvePush's work, under the repository lock.
func (k *Keeper) resolvePushRef(l Launch, w *worktree, p *Policy, reqRef string) (*plumbing.Reference, error) {
	var err error
	var ref plumbing.ReferenceName
	switch {
	case strings.HasPrefix(reqRef, "refs/tags/"):
		if !p.Tags {
			return nil, fmt.Errorf("%w: pushing tags is not allowed by policy", ErrDenied)
		}
		if err := CheckBranchName(strings.TrimPrefix(reqRef, "refs/tags/")); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		ref = plumbing.ReferenceName(reqRef)
	case strings.HasPrefix(reqRef, "refs/") && !strings.HasPrefix(reqRef, "refs/heads/"):
		return nil, fmt.Errorf("%w: %q: only branches (and tags, if policy allows) may be pushed", ErrDenied, reqRef)
	case reqRef == "":
		ref, err = w.branch()
		if err != nil {
			return nil, err
		}
	default:
		b := strings.TrimPrefix(reqRef, "refs/heads/")
		if err := CheckBranchName(b); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		ref = plumbing.NewBranchReferenceName(b)
	}
	if !ref.IsTag() && !p.BranchAllowed(ref.Short()) {
		return nil, fmt.Errorf("%w: branch %q is not allowed by policy", ErrDenied, ref.Short())
	}
	local, err := w.repo.Storer.Reference(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not exist in this repository", ErrPrecondition, ref.Short())
	}
	if local.Type() != plumbing.HashReference {
		return nil, fmt.Errorf("%w: %s is a symbolic ref", ErrInvalid, ref)
	}
	if err := k.take(l, "push"); err != nil {
		return nil, err
	}
	return plumbing.NewHashReference(ref, local.Hash()), nil
}

// boundedByCtx runs f, which must stop using what it captures once ctx
// ends, and returns when f does or when ctx ends, whichever is first.
// go-git's ssh transport dials, handshakes and starts the remote command
// without the context, so a remote that accepts the connection and never
// speaks would otherwise hold the push (its launch's in-flight slot and the
// remote's push lock) for good. Abandoned, f ends by itself: every read and
// write after the handshake honours ctx, which has ended, so nothing is sent.
func boundedByCtx(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errPinned reports a reference write during a push, which never happens:
// the push runs without the repository lock and must leave refs alone.
var errPinned = errors.New("keeper: a push writes no reference")

// pinnedRefs is the repository's storage as the network half of a push
// sees it: objects as stored, and exactly one reference, pinned to the id
// resolved under the repository lock. go-git builds the update command
// from it, so a branch that moves while the remote is slow cannot change
// what is sent, and no ref file is read while a commit may be rewriting it.
type pinnedRefs struct {
	*filesystem.Storage
	ref *plumbing.Reference
}

func (s pinnedRefs) Reference(n plumbing.ReferenceName) (*plumbing.Reference, error) {
	if n == s.ref.Name() {
		return s.ref, nil
	}
	return nil, plumbing.ErrReferenceNotFound
}

func (s pinnedRefs) IterReferences() (storer.ReferenceIter, error) {
	return storer.NewReferenceSliceIter([]*plumbing.Reference{s.ref}), nil
}

func (s pinnedRefs) SetReference(*plumbing.Reference) error { return errPinned }

func (s pinnedRefs) CheckAndSetReference(_, _ *plumbing.Reference) error { return errPinned }

func (s pinnedRefs) RemoveReference(plumbing.ReferenceName) error { return errPinned }

func (s pinnedRefs) PackRefs() error { return errPinned }

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "(new)"
	}
	return h
}

// isAncestor reports whether old is reachable from new in the local
// repository; an old commit this repository does not have is not.
func isAncestor(w *worktree, old, new plumbing.Hash) (bool, error) {
	oc, err := object.GetCommit(w.repo.Storer, old)
	if err != nil {
		return false, nil
	}
	nc, err := object.GetCommit(w.repo.Storer, new)
	if err != nil {
		return false, fmt.Errorf("%w: read %s: %w", ErrInternal, new, err)
	}
	ok, err := oc.IsAncestor(nc)
	if err != nil {
		return false, fmt.Errorf("%w: ancestry: %w", ErrInternal, err)
	}
	return ok, nil
}

func countCommits(w *worktree, from, stop plumbing.Hash) int {
	seen := map[plumbing.Hash]bool{stop: true}
	queue := []plumbing.Hash{from}
	n := 0
	for len(queue) > 0 && n < maxCountCommits {
		h := queue[0]
		queue = queue[1:]
		if seen[h] {
			continue
		}
		seen[h] = true
		c, err := object.GetCommit(w.repo.Storer, h)
		if err != nil {
			break
		}
		n++
		queue = append(queue, c.ParentHashes...)
	}
	return n
}

// remoteTransport is how to reach one policy remote.
type remoteTransport struct {
	url        string
	scheme     string
	host       string
	knownHosts string
	auth       transport.AuthMethod
	ca         []byte

	mu      sync.Mutex
	hostErr error // what the host key check refused, if it did
}

func (k *Keeper) transport(rem Remote) (*remoteTransport, error) {
	u, err := ParseRemoteURL(rem.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: remote url: %w", ErrDenied, err)
	}
	t := &remoteTransport{url: u.String(), scheme: u.Scheme, host: u.Host}
	switch u.Scheme {
	case "ssh":
		port := u.Port()
		if port == "" {
			port = "22"
		}
		hostPort := net.JoinHostPort(u.Hostname(), port)
		t.knownHosts = rem.KnownHosts
		db, err := knownhosts.NewDB(rem.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("%w: known_hosts %s: %w", ErrInternal, rem.KnownHosts, err)
		}
		check := db.HostKeyCallback()
		signer := k.key.Signer()
		if rem.IdentityFile != "" {
			ik, err := LoadKey(rem.IdentityFile)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInternal, err)
			}
			signer = ik.Signer()
		}
		user := "git"
		if u.User != nil && u.User.Username() != "" {
			user = u.User.Username()
		}
		auth := &gitssh.PublicKeys{User: user, Signer: signer}
		auth.HostKeyCallback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := check(hostname, remote, key)
			if err != nil {
				t.mu.Lock()
				t.hostErr = err
				t.mu.Unlock()
			}
			return err
		}
		auth.HostKeyAlgorithms = db.HostKeyAlgorithms(hostPort)
		t.auth = auth
	case "https":
		if rem.TokenFile != "" {
			tok, err := readSecretFile(rem.TokenFile)
			if err != nil {
				return nil, err
			}
			user := rem.Username
			if user == "" {
				user = "x-access-token"
			}
			t.auth = &githttp.BasicAuth{Username: user, Password: tok}
		}
		if rem.CAFile != "" {
			b, err := os.ReadFile(rem.CAFile)
			if err != nil {
				return nil, fmt.Errorf("%w: ca_file: %w", ErrInternal, err)
			}
			t.ca = b
		}
	}
	return t, nil
}

// readSecretFile reads a token file, refusing loose permissions. The token
// never appears in an error.
func readSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%w: token_file: %w", ErrInternal, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: token_file %s: permissions %04o are too open (want 0600)", ErrInternal, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: token_file: %w", ErrInternal, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\n\r") {
		return "", fmt.Errorf("%w: token_file %s: want one line", ErrInternal, path)
	}
	return tok, nil
}

// explain turns a transport failure into a reason the box can act on.
func (t *remoteTransport) explain(name string, err error) error {
	t.mu.Lock()
	hostErr := t.hostErr
	t.mu.Unlock()
	switch {
	case hostErr != nil && knownhosts.IsHostUnknown(hostErr):
		return fmt.Errorf("%w: remote %q: ssh host key of %s is not in the known_hosts file policy names for it (unknown host refused)", ErrDenied, name, t.host)
	case hostErr != nil && knownhosts.IsHostKeyChanged(hostErr):
		return fmt.Errorf("%w: remote %q: ssh host key of %s does not match the known_hosts file policy names for it (changed host key refused)", ErrDenied, name, t.host)
	case hostErr != nil:
		return fmt.Errorf("%w: remote %q: ssh host key check failed", ErrDenied, name)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%w: remote %q refused our credentials", ErrDenied, name)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w: remote %q: repository not found", ErrPrecondition, name)
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: remote %q: %w", ErrUnavailable, name, err)
	}
	return fmt.Errorf("%w: push to remote %q: %s", ErrPrecondition, name, strconv.Quote(err.Error()))
}
