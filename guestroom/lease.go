package guestroom

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrExpired reports authority used at or after its expiry.
var ErrExpired = errors.New("expired")

// ErrNotConfined reports a grant that dropped a caveat its ceiling requires.
var ErrNotConfined = errors.New("grant not confined")

// ErrNoClock reports a provider asked for grants without a clock.
var ErrNoClock = errors.New("no clock")

// Lease is authority that ends: its grants hold strictly before Expiry. A
// lease without an expiry has already expired.
type Lease struct {
	// Grants are what the lease hands out.
	Grants []Grant
	// Expiry is the first instant at which the lease no longer holds.
	Expiry time.Time
}

// Live reports whether the lease holds at now: now must be strictly before
// its expiry.
func (l Lease) Live(now time.Time) bool {
	return !l.Expiry.IsZero() && now.Before(l.Expiry)
}

// At returns the lease's grants at now, or nothing once it has expired.
func (l Lease) At(now time.Time) []Grant {
	if !l.Live(now) {
		return nil
	}
	return slices.Clone(l.Grants)
}

// Ceiling maps a door name to the caveats every grant of that door must
// keep. A door the ceiling does not name is not bounded by it.
type Ceiling map[string][]Caveat

// Confines checks that every grant keeps every caveat the ceiling sets on
// its door. A grant that dropped one is not confined: the error matches
// ErrNotConfined and names each dropped caveat.
func (c Ceiling) Confines(grants ...Grant) error {
	var missing []string
	for _, g := range grants {
		for _, cv := range c[g.Door.Name] {
			if !slices.Contains(g.Caveats, cv) {
				missing = append(missing, fmt.Sprintf("door %q lacks %s", g.Door.Name, cv))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrNotConfined, strings.Join(missing, "; "))
	}
	return nil
}

// Provider hands out a lease's grants while the lease lasts and only while
// every grant stays within its ceiling. It reads time only through Now.
type Provider struct {
	// Lease is what the provider hands out.
	Lease Lease
	// Ceiling bounds the grants; nil bounds nothing.
	Ceiling Ceiling
	// Now is the clock. A provider without one hands out nothing.
	Now func() time.Time
}

// Grants returns the lease's grants now. It fails closed: without a clock
// (ErrNoClock), at or after the expiry (ErrExpired), or when any grant is
// not confined by the ceiling (ErrNotConfined), it yields nothing.
func (p Provider) Grants() ([]Grant, error) {
	if p.Now == nil {
		return nil, ErrNoClock
	}
	now := p.Now()
	if !p.Lease.Live(now) {
		return nil, fmt.Errorf("lease %w at %s (expiry %s)", ErrExpired, now.UTC().Format(time.RFC3339Nano), p.Lease.Expiry.UTC().Format(time.RFC3339Nano))
	}
	if err := p.Ceiling.Confines(p.Lease.Grants...); err != nil {
		return nil, err
	}
	return slices.Clone(p.Lease.Grants), nil
}
