package keeper

import "errors"

// Error kinds. Every error a Keeper returns wraps exactly one of these, so
// the adapter can map it to a status code without looking at strings.
var (
	// ErrDenied reports a request that policy refuses.
	ErrDenied = errors.New("denied")
	// ErrInvalid reports a malformed request.
	ErrInvalid = errors.New("invalid request")
	// ErrPrecondition reports a repository state that does not allow the
	// operation: nothing to commit, a detached HEAD, a locked index.
	ErrPrecondition = errors.New("failed precondition")
	// ErrRateLimited reports a launch over its per-launch budget.
	ErrRateLimited = errors.New("rate limited")
	// ErrTooLarge reports a request whose worktree walk is over one of the
	// policy's ceilings (entries, depth, bytes read).
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable reports a remote that could not be reached.
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal reports a failure on the host side.
	ErrInternal = errors.New("internal error")
)
