package guestroom

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Door is a door preset: one capability as a catalog describes it. The
// engine gives the texts no meaning; they are what a rulebook tells a guest.
type Door struct {
	// Name identifies the door; it matches ^[a-z0-9][a-z0-9-]*$.
	Name string `json:"name"`
	// Flag is how a user asks for the door, e.g. "--net". Empty means
	// "--door NAME".
	Flag string `json:"flag,omitempty"`
	// Socket is the absolute path of the door's socket inside the box.
	Socket string `json:"socket"`
	// Env names the environment variable that carries Socket in the box.
	Env string `json:"env"`
	// HostSocket is the default host socket behind the door; empty when the
	// door has no default (it must then be named or minted).
	HostSocket string `json:"-"`
	// Grants says what the door grants, in one sentence.
	Grants string `json:"grants,omitempty"`
	// Usage says how a guest uses the door.
	Usage string `json:"usage,omitempty"`
	// Absent says what the door's absence means and how to get it, e.g.
	// "no network; relaunch with --net".
	Absent string `json:"absent,omitempty"`
}

// ErrBadName reports a door or room name that does not match
// ^[a-z0-9][a-z0-9-]*$.
var ErrBadName = errors.New("bad name")

// ErrBadDoor reports a door preset that cannot be used.
var ErrBadDoor = errors.New("bad door")

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	envRE  = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
)

// maxNameLen bounds a door or room name so that a derived socket path stays
// far below the unix socket path limit.
const maxNameLen = 64

// ValidateName reports whether name can name a door or a room. It refuses
// anything but ^[a-z0-9][a-z0-9-]*$ (at most 64 bytes), so a name never
// climbs out of a directory (../x) or into one (a/b).
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) > maxNameLen:
		return fmt.Errorf("%w %q: longer than %d bytes", ErrBadName, name, maxNameLen)
	case !nameRE.MatchString(name):
		return fmt.Errorf("%w %q: want lowercase letters, digits and '-', starting with a letter or digit", ErrBadName, name)
	}
	return nil
}

// GenericDoor is the door a name not in the catalog resolves to: socket
// /run/NAME.sock, env NAME_SOCK (uppercased, '-' as '_'; prefixed DOOR_ when
// the name starts with a digit, so it stays a shell variable name).
func GenericDoor(name string) (Door, error) {
	if err := ValidateName(name); err != nil {
		return Door{}, err
	}
	env := strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_SOCK"
	if name[0] >= '0' && name[0] <= '9' {
		env = "DOOR_" + env
	}
	return Door{
		Name:   name,
		Flag:   "--door " + name,
		Socket: "/run/" + name + ".sock",
		Env:    env,
		Grants: fmt.Sprintf("the %q door", name),
		Usage:  fmt.Sprintf("speak its protocol on the unix socket at $%s", env),
		Absent: fmt.Sprintf("not granted; relaunch with --door %s", name),
	}, nil
}

// flag is the flag that grants d.
func (d Door) flag() string {
	if d.Flag != "" {
		return d.Flag
	}
	return "--door " + d.Name
}

// absent is what d's absence means, with a default naming its flag.
func (d Door) absent() string {
	if d.Absent != "" {
		return d.Absent
	}
	return "not granted; relaunch with " + d.flag()
}

// validate checks a catalog preset.
func (d Door) validate() error {
	if err := ValidateName(d.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrBadDoor, err)
	}
	if err := checkAbsPath(d.Socket); err != nil {
		return fmt.Errorf("%w %q: in-box socket: %w", ErrBadDoor, d.Name, err)
	}
	if !envRE.MatchString(d.Env) {
		return fmt.Errorf("%w %q: env %q is not an environment variable name", ErrBadDoor, d.Name, d.Env)
	}
	if d.HostSocket != "" {
		if err := checkAbsPath(d.HostSocket); err != nil {
			return fmt.Errorf("%w %q: host socket: %w", ErrBadDoor, d.Name, err)
		}
	}
	for _, t := range []string{d.Flag, d.Grants, d.Usage, d.Absent} {
		if strings.ContainsFunc(t, isControl) {
			return fmt.Errorf("%w %q: text %q holds a control character (texts are one line)", ErrBadDoor, d.Name, t)
		}
	}
	return nil
}

// checkAbsPath accepts an absolute, clean path without NUL or newline.
func checkAbsPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is not absolute", p)
	case strings.ContainsAny(p, "\x00\n\r"):
		return fmt.Errorf("path %q holds a control character", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (want %q)", p, path.Clean(p))
	}
	return nil
}

// Rooms maps a room name to the doors it bundles, in order.
type Rooms map[string][]string

// ErrUnknownRoom reports a room the catalog does not hold.
var ErrUnknownRoom = errors.New("unknown room")

// Catalog is an ordered set of door presets and the rooms built from them.
// Build one with NewCatalog; the zero Catalog is empty and usable.
type Catalog struct {
	doors []Door
	index map[string]int
	rooms Rooms
}

// NewCatalog builds a catalog from doors, in that order, and rooms. Every
// door must be valid and uniquely named; every room must be validly named
// and name only catalog doors. The catalog keeps its own copies.
func NewCatalog(doors []Door, rooms Rooms) (Catalog, error) {
	c := Catalog{
		doors: slices.Clone(doors),
		index: make(map[string]int, len(doors)),
		rooms: make(Rooms, len(rooms)),
	}
	for i, d := range c.doors {
		if err := d.validate(); err != nil {
			return Catalog{}, fmt.Errorf("catalog: %w", err)
		}
		if _, dup := c.index[d.Name]; dup {
			return Catalog{}, fmt.Errorf("catalog: %w %q: listed twice", ErrBadDoor, d.Name)
		}
		c.index[d.Name] = i
	}
	for _, room := range sortedKeys(rooms) {
		if err := ValidateName(room); err != nil {
			return Catalog{}, fmt.Errorf("catalog: room: %w", err)
		}
		names := rooms[room]
		for _, n := range names {
			if _, ok := c.index[n]; !ok {
				return Catalog{}, fmt.Errorf("catalog: room %q names door %q, which is not in the catalog", room, n)
			}
		}
		c.rooms[room] = slices.Clone(names)
	}
	return c, nil
}

// Doors returns the catalog's doors in catalog order.
func (c Catalog) Doors() []Door { return slices.Clone(c.doors) }

// Door returns the catalog preset named name.
func (c Catalog) Door(name string) (Door, bool) {
	i, ok := c.index[name]
	if !ok {
		return Door{}, false
	}
	return c.doors[i], true
}

// Resolve returns the catalog preset named name, or the generic door for a
// valid name the catalog does not hold.
func (c Catalog) Resolve(name string) (Door, error) {
	if d, ok := c.Door(name); ok {
		return d, nil
	}
	return GenericDoor(name)
}

// Rooms returns a copy of the catalog's rooms.
func (c Catalog) Rooms() Rooms {
	out := make(Rooms, len(c.rooms))
	for k, v := range c.rooms {
		out[k] = slices.Clone(v)
	}
	return out
}

// RoomNames returns the catalog's room names, sorted.
func (c Catalog) RoomNames() []string { return sortedKeys(c.rooms) }

// Room returns the doors room bundles, in order. An unknown room fails with
// ErrUnknownRoom and lists the known ones.
func (c Catalog) Room(name string) ([]string, error) {
	doors, ok := c.rooms[name]
	if !ok {
		known := c.RoomNames()
		if len(known) == 0 {
			return nil, fmt.Errorf("%w %q: the catalog has no rooms", ErrUnknownRoom, name)
		}
		return nil, fmt.Errorf("%w %q: known rooms: %s", ErrUnknownRoom, name, strings.Join(known, ", "))
	}
	return slices.Clone(doors), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
