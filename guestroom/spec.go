package guestroom

import (
	"errors"
	"fmt"
	"strings"
)

// DoorSpec is a door as a user names it on a command line.
type DoorSpec struct {
	// Name is the door's name.
	Name string
	// Caveats narrow the door, in the order given.
	Caveats []Caveat
	// HostSocket is the host socket the user named; empty means the door's
	// default.
	HostSocket string
}

// ErrBadSpec reports a door spec that does not parse.
var ErrBadSpec = errors.New("bad door spec")

// ParseDoorSpec parses a door spec. The forms are
//
//	NAME                        the door, at its default host socket
//	NAME@/host/sock             the door, at /host/sock
//	NAME:k=v:k2=v2              the door, narrowed by caveats
//	NAME:k=v:k2=v2@/host/sock   both
//	NAME=/host/sock             older form of NAME@/host/sock
//
// The rule, so that nothing is guessed: the first '@' ends the name and its
// caveats, and everything after it is the host socket, which must be an
// absolute, clean path. Before it, ':' separates the name from each caveat,
// and every caveat is key=value with a non-empty key and value (the first
// '=' splits). A caveat in a spec therefore cannot hold ':' or '@', and the
// key:value form is accepted only by ParseCaveat on its own. The older form
// applies when the spec has no '@' and its first '=' comes before any ':'.
// Anything else (an empty name, a bad name, '@' with an empty or relative
// path, an empty caveat, a trailing ':') is refused with ErrBadSpec.
func ParseDoorSpec(s string) (DoorSpec, error) {
	spec, err := parseDoorSpec(s)
	if err != nil {
		return DoorSpec{}, fmt.Errorf("%w %q: %w", ErrBadSpec, s, err)
	}
	return spec, nil
}

func parseDoorSpec(s string) (DoorSpec, error) {
	if s == "" {
		return DoorSpec{}, errors.New("empty")
	}
	head, host, hasHost := strings.Cut(s, "@")
	if !hasHost {
		if i := strings.IndexAny(s, "=:"); i >= 0 && s[i] == '=' {
			// The older form NAME=/host/sock.
			head, host, hasHost = s[:i], s[i+1:], true
			if !strings.HasPrefix(host, "/") {
				return DoorSpec{}, fmt.Errorf("NAME=PATH wants an absolute host socket path, got %q (caveats go after ':', as NAME:key=value)", host)
			}
		}
	}
	var spec DoorSpec
	if hasHost {
		if host == "" {
			return DoorSpec{}, errors.New("empty host socket after '@'")
		}
		if err := checkAbsPath(host); err != nil {
			return DoorSpec{}, fmt.Errorf("host socket: %w", err)
		}
		spec.HostSocket = host
	}
	segs := strings.Split(head, ":")
	if segs[0] == "" {
		return DoorSpec{}, errors.New("empty door name")
	}
	if err := ValidateName(segs[0]); err != nil {
		return DoorSpec{}, err
	}
	spec.Name = segs[0]
	for i, seg := range segs[1:] {
		c, err := parseSpecCaveat(seg)
		if err != nil {
			return DoorSpec{}, fmt.Errorf("caveat %d: %w", i+1, err)
		}
		spec.Caveats = append(spec.Caveats, c)
	}
	return spec, nil
}

// parseSpecCaveat parses one key=value caveat of a door spec.
func parseSpecCaveat(seg string) (Caveat, error) {
	if seg == "" {
		return Caveat{}, errors.New("empty caveat (a doubled or trailing ':')")
	}
	k, v, ok := strings.Cut(seg, "=")
	switch {
	case !ok:
		return Caveat{}, fmt.Errorf("%q: a caveat in a door spec is key=value", seg)
	case k == "":
		return Caveat{}, fmt.Errorf("%q: empty key", seg)
	case v == "":
		return Caveat{}, fmt.Errorf("%q: empty value", seg)
	case strings.ContainsFunc(seg, isControl):
		return Caveat{}, fmt.Errorf("%q: holds a control character", seg)
	case strings.ContainsAny(k, " \t"):
		return Caveat{}, fmt.Errorf("%q: key holds a space", seg)
	}
	return Caveat{Key: k, Value: v}, nil
}

// isControl reports a rune that can break a line or is otherwise not text:
// C0 and C1 controls (NEL included), DEL, and the Unicode line and
// paragraph separators.
func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029'
}

// String renders the spec in its canonical form, NAME[:k=v...][@/host/sock],
// which ParseDoorSpec reads back to the same spec.
func (s DoorSpec) String() string {
	var b strings.Builder
	b.WriteString(s.Name)
	for _, c := range s.Caveats {
		b.WriteByte(':')
		b.WriteString(c.String())
	}
	if s.HostSocket != "" {
		b.WriteByte('@')
		b.WriteString(s.HostSocket)
	}
	return b.String()
}
