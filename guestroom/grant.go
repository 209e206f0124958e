package guestroom

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Grant is one door granted to a launch: the resolved preset (its
// HostSocket is the one the launch uses) and the caveats that narrow it.
type Grant struct {
	// Door is the granted door.
	Door Door `json:"door"`
	// Caveats narrow the door; empty means the door as its daemon's policy
	// allows it.
	Caveats []Caveat `json:"caveats,omitempty"`
}

// Restricted reports whether caveats narrow the grant.
func (g Grant) Restricted() bool { return len(g.Caveats) > 0 }

// Check admits req only if every caveat of the grant admits it, running
// the verifier v holds for each caveat's key; a caveat with no verifier
// denies (see CheckCaveats). The error names the door.
func (g Grant) Check(v Verifiers, req Request) error {
	if err := CheckCaveats(g.Caveats, v, req); err != nil {
		return fmt.Errorf("door %q: %w", g.Door.Name, err)
	}
	return nil
}

// ErrConflict reports two requests for one door that cannot both hold.
var ErrConflict = errors.New("conflicting door requests")

// Grant assembles what a launch is granted: the doors of every named room,
// then the explicitly requested doors. A door named more than once is
// granted once, with the caveats of every request appended (so each request
// can only narrow it) and duplicates dropped; two different host sockets for
// one door conflict. A spec naming a door outside the catalog grants the
// generic door. Grants come in catalog order, then the generic doors in the
// order first requested.
func (c Catalog) Grant(rooms []string, specs []DoorSpec) ([]Grant, error) {
	all := make([]DoorSpec, 0, len(specs))
	for _, r := range rooms {
		doors, err := c.Room(r)
		if err != nil {
			return nil, err
		}
		for _, d := range doors {
			all = append(all, DoorSpec{Name: d})
		}
	}
	all = append(all, specs...)

	byName := make(map[string]*Grant)
	explicitHost := make(map[string]string)
	var generic []string
	for _, s := range all {
		g, seen := byName[s.Name]
		if !seen {
			d, err := c.Resolve(s.Name)
			if err != nil {
				return nil, fmt.Errorf("grant door: %w", err)
			}
			g = &Grant{Door: d}
			byName[s.Name] = g
			if _, inCatalog := c.index[s.Name]; !inCatalog {
				generic = append(generic, s.Name)
			}
		}
		if s.HostSocket != "" {
			if err := checkAbsPath(s.HostSocket); err != nil {
				return nil, fmt.Errorf("grant door %q: host socket: %w", s.Name, err)
			}
			if prev, ok := explicitHost[s.Name]; ok && prev != s.HostSocket {
				return nil, fmt.Errorf("%w: door %q at both %s and %s", ErrConflict, s.Name, prev, s.HostSocket)
			}
			explicitHost[s.Name] = s.HostSocket
			g.Door.HostSocket = s.HostSocket
		}
		for _, cv := range s.Caveats {
			if err := cv.Validate(); err != nil {
				return nil, fmt.Errorf("grant door %q: %w", s.Name, err)
			}
		}
		g.Caveats = mergeCaveats(g.Caveats, s.Caveats)
	}

	out := make([]Grant, 0, len(byName))
	for _, d := range c.doors {
		if g, ok := byName[d.Name]; ok {
			out = append(out, *g)
		}
	}
	for _, n := range generic {
		out = append(out, *byName[n])
	}
	return out, nil
}

// mergeCaveats appends to have every caveat of add it lacks, in order.
func mergeCaveats(have, add []Caveat) []Caveat {
	out := slices.Clone(have)
	for _, cv := range add {
		if !slices.Contains(out, cv) {
			out = append(out, cv)
		}
	}
	return out
}

// Denied returns every catalog door that granted does not hold, in catalog
// order, except the doors named in suppress (e.g. a network door whose
// absence would mislead because egress was opened another way).
func (c Catalog) Denied(granted []Grant, suppress ...string) []Door {
	var out []Door
	for _, d := range c.doors {
		if slices.Contains(suppress, d.Name) || slices.ContainsFunc(granted, func(g Grant) bool { return g.Door.Name == d.Name }) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// ErrWidened reports a grant that is not an attenuation of its parent.
var ErrWidened = errors.New("grant widens its parent")

// ViolationKind says how a child grant fails to attenuate its parent.
type ViolationKind int

// The ways a child grant can widen its parent.
const (
	// AbsentInParent: the child holds a door its parent does not.
	AbsentInParent ViolationKind = iota + 1
	// CaveatDropped: the child lacks a caveat of its parent's door.
	CaveatDropped
)

// String names the kind.
func (k ViolationKind) String() string {
	switch k {
	case AbsentInParent:
		return "absent in parent"
	case CaveatDropped:
		return "caveat dropped"
	}
	return fmt.Sprintf("ViolationKind(%d)", int(k))
}

// Violation is one way a child grant widens its parent. It is an error that
// matches ErrWidened.
type Violation struct {
	// Door is the child door at fault.
	Door string
	// Kind says what is wrong.
	Kind ViolationKind
	// Caveat is the parent caveat the child dropped (CaveatDropped only).
	Caveat Caveat
}

// Error describes the violation.
func (v Violation) Error() string {
	if v.Kind == CaveatDropped {
		return fmt.Sprintf("door %q drops its parent's caveat %s", v.Door, v.Caveat)
	}
	return fmt.Sprintf("door %q is not granted to the parent", v.Door)
}

// Unwrap makes a violation match ErrWidened.
func (v Violation) Unwrap() error { return ErrWidened }

// Attenuates checks that child attenuates parent and reports every
// violation: a child door the parent lacks, and every parent caveat a child
// door dropped. Attenuation is append-only: a child may add caveats, never
// lose one. A parent door listed more than once counts as one door with
// all of its caveats. No violations means child grants nothing parent does
// not.
func Attenuates(parent, child []Grant) []Violation {
	pc := make(map[string][]Caveat, len(parent))
	for _, p := range parent {
		pc[p.Door.Name] = mergeCaveats(pc[p.Door.Name], p.Caveats)
	}
	var vs []Violation
	for _, ch := range child {
		caveats, ok := pc[ch.Door.Name]
		if !ok {
			vs = append(vs, Violation{Door: ch.Door.Name, Kind: AbsentInParent})
			continue
		}
		for _, cv := range caveats {
			if !slices.Contains(ch.Caveats, cv) {
				vs = append(vs, Violation{Door: ch.Door.Name, Kind: CaveatDropped, Caveat: cv})
			}
		}
	}
	return vs
}

// CheckAttenuates is Attenuates as one error (nil when child attenuates
// parent) that matches ErrWidened and every Violation.
func CheckAttenuates(parent, child []Grant) error {
	vs := Attenuates(parent, child)
	if len(vs) == 0 {
		return nil
	}
	errs := make([]error, len(vs))
	msgs := make([]string, len(vs))
	for i, v := range vs {
		errs[i], msgs[i] = v, v.Error()
	}
	return &attenuationError{msg: strings.Join(msgs, "; "), errs: errs}
}

type attenuationError struct {
	msg  string
	errs []error
}

func (e *attenuationError) Error() string   { return "not an attenuation: " + e.msg }
func (e *attenuationError) Unwrap() []error { return e.errs }
