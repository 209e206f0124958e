package guestroom

import (
	"errors"
	"fmt"
	"strings"
)

// Caveat narrows a door. A door with more caveats grants less: caveats are
// only ever appended, never removed or widened.
type Caveat struct {
	// Key names what is narrowed, e.g. "host".
	Key string `json:"key"`
	// Value is the restriction, e.g. "github.com".
	Value string `json:"value"`
}

// String renders the caveat as key=value.
func (c Caveat) String() string { return c.Key + "=" + c.Value }

// Validate reports whether the caveat can be granted: a non-empty key
// without '=', ':', spaces or control characters, and a value without
// control characters (it may be empty, as ParseCaveat allows).
func (c Caveat) Validate() error {
	switch {
	case c.Key == "":
		return fmt.Errorf("%w %q: empty key", ErrBadCaveat, c)
	case strings.ContainsFunc(c.Key, func(r rune) bool { return r == '=' || r == ':' || r == ' ' || r == '\t' || isControl(r) }):
		return fmt.Errorf("%w %q: key holds a separator, space or control character", ErrBadCaveat, c)
	case strings.ContainsFunc(c.Value, isControl):
		return fmt.Errorf("%w %q: value holds a control character", ErrBadCaveat, c)
	}
	return nil
}

// ErrBadCaveat reports a caveat that does not parse.
var ErrBadCaveat = errors.New("bad caveat")

// ParseCaveat parses "key=value" or "key:value"; the first separator wins.
func ParseCaveat(s string) (Caveat, error) {
	i := strings.IndexAny(s, "=:")
	if i < 0 {
		return Caveat{}, fmt.Errorf("%w %q: want key=value or key:value", ErrBadCaveat, s)
	}
	if i == 0 {
		return Caveat{}, fmt.Errorf("%w %q: empty key", ErrBadCaveat, s)
	}
	return Caveat{Key: s[:i], Value: s[i+1:]}, nil
}

// Request is what a door knows about one request, as facts keyed like
// caveats: {"host": "api.github.com"}.
type Request map[string]string

// Verifier decides whether one caveat value admits a request. It returns nil
// when the request is within the caveat, and an error saying why not otherwise.
type Verifier func(value string, req Request) error

// Verifiers maps caveat keys to the verifier that interprets them.
type Verifiers map[string]Verifier

// ErrCaveatDenied reports a request outside a caveat.
var ErrCaveatDenied = errors.New("caveat denies")

// ErrUninterpretable reports a caveat whose key has no verifier: it denies.
var ErrUninterpretable = errors.New("caveat has no verifier")

// CheckCaveats runs the verifier for every caveat against req. Every caveat
// must admit the request; a caveat no verifier interprets denies.
func CheckCaveats(caveats []Caveat, v Verifiers, req Request) error {
	for _, c := range caveats {
		f, ok := v[c.Key]
		if !ok || f == nil {
			return fmt.Errorf("%w: %s", ErrUninterpretable, c)
		}
		if err := f(c.Value, req); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCaveatDenied, c, err)
		}
	}
	return nil
}
