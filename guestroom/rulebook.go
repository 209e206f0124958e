package guestroom

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Launch is what one launch of a guest was granted and denied: the single
// source both the rulebook (for the guest) and the manifest (for tools) are
// rendered from.
type Launch struct {
	// Account names the account the guest runs as.
	Account string
	// Network is the network posture, e.g. "none", "policed" or "open".
	Network string
	// Boundary says what confines the guest, e.g. "container, uid 1000".
	Boundary string
	// Repo is the repository the guest works on; empty when none.
	Repo string
	// Granted are the doors granted, in the order to list them.
	Granted []Grant
	// Denied are the doors not granted, in the order to list them.
	Denied []Door
	// Extra is free-form data for the manifest; the rulebook omits it.
	Extra map[string]string
}

// rulebookPreamble states the rule every rulebook opens with.
const rulebookPreamble = `Your authority in this launch is exactly what this rulebook grants: the
doors listed under GRANTED, each within its restrictions, and nothing else.
A door that is not granted is absent, not merely forbidden: nothing you run
or ask for from inside will open it.
`

// Rulebook renders the launch as text for the guest: the preamble, the
// launch's facts, a GRANTED section with one card per door (what it grants,
// how to use it, its socket and env, and "RESTRICTED to: ..." when caveats
// narrow it) and a DENIED section naming every absent door and how to get
// it.
func (l Launch) Rulebook() string {
	var b strings.Builder
	b.WriteString("# Rulebook\n\n")
	b.WriteString(rulebookPreamble)
	facts := [][2]string{
		{"Account", l.Account},
		{"Network", l.Network},
		{"Boundary", l.Boundary},
		{"Repository", l.Repo},
	}
	wrote := false
	for _, f := range facts {
		if f[1] == "" {
			continue
		}
		if !wrote {
			b.WriteByte('\n')
			wrote = true
		}
		fmt.Fprintf(&b, "%s: %s\n", f[0], text(f[1]))
	}

	b.WriteString("\n## GRANTED\n")
	if len(l.Granted) == 0 {
		b.WriteString("\nNo door is granted: you may think and work on what you were given, nothing more.\n")
	}
	for _, g := range l.Granted {
		d := g.Door
		fmt.Fprintf(&b, "\n### %s\n", text(d.Name))
		if d.Grants != "" {
			fmt.Fprintf(&b, "Grants: %s\n", text(d.Grants))
		}
		if d.Usage != "" {
			fmt.Fprintf(&b, "Usage: %s\n", text(d.Usage))
		}
		switch {
		case d.Socket != "" && d.Env != "":
			fmt.Fprintf(&b, "Socket: %s (in $%s)\n", text(d.Socket), text(d.Env))
		case d.Socket != "":
			fmt.Fprintf(&b, "Socket: %s\n", text(d.Socket))
		}
		if len(g.Caveats) > 0 {
			cs := make([]string, len(g.Caveats))
			for i, c := range g.Caveats {
				cs[i] = text(c.String())
			}
			fmt.Fprintf(&b, "RESTRICTED to: %s\n", strings.Join(cs, ", "))
		}
	}

	b.WriteString("\n## DENIED\n\n")
	if len(l.Denied) == 0 {
		b.WriteString("No door is named as denied, but your authority is still only what is granted above.\n")
	}
	for _, d := range l.Denied {
		fmt.Fprintf(&b, "- %s: %s\n", text(d.Name), text(d.absent()))
	}
	return b.String()
}

// text keeps a value on its line and as it reads: one holding a rune that
// is not printable (a control character or line separator, which could
// forge a section; a bidi override, which could reorder what a reader sees)
// is rendered quoted, every such rune escaped.
func text(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// ManifestVersion is the version of the manifest's JSON shape.
const ManifestVersion = 1

// Manifest is the machine-readable form of a Launch, for tools in the box.
type Manifest struct {
	// Version is ManifestVersion.
	Version int `json:"version"`
	// Account names the account the guest runs as.
	Account string `json:"account"`
	// Network is the network posture.
	Network string `json:"network"`
	// Boundary says what confines the guest.
	Boundary string `json:"boundary"`
	// Repo is the repository the guest works on; empty when none.
	Repo string `json:"repo,omitempty"`
	// Doors are the granted doors; never null.
	Doors []ManifestDoor `json:"doors"`
	// Denied are the doors not granted; never null.
	Denied []ManifestDenial `json:"denied"`
	// Extra is the caller's free-form data.
	Extra map[string]string `json:"extra,omitempty"`
}

// ManifestDoor is a granted door in a manifest.
type ManifestDoor struct {
	// Name is the door's name.
	Name string `json:"name"`
	// Socket is the door's socket inside the box.
	Socket string `json:"socket"`
	// Env names the environment variable that carries Socket.
	Env string `json:"env"`
	// Caveats narrow the door; never null.
	Caveats []Caveat `json:"caveats"`
	// Grants says what the door grants.
	Grants string `json:"grants,omitempty"`
	// Usage says how to use the door.
	Usage string `json:"usage,omitempty"`
}

// ManifestDenial is a door not granted, in a manifest.
type ManifestDenial struct {
	// Name is the door's name.
	Name string `json:"name"`
	// Flag is how to ask for the door.
	Flag string `json:"flag"`
	// Absent says what its absence means and how to get it.
	Absent string `json:"absent"`
}

// Manifest renders the launch for tools, from the same data as Rulebook.
// Host-side details (a door's host socket) are left out.
func (l Launch) Manifest() Manifest {
	m := Manifest{
		Version:  ManifestVersion,
		Account:  l.Account,
		Network:  l.Network,
		Boundary: l.Boundary,
		Repo:     l.Repo,
		Doors:    make([]ManifestDoor, 0, len(l.Granted)),
		Denied:   make([]ManifestDenial, 0, len(l.Denied)),
	}
	for _, g := range l.Granted {
		caveats := slices.Clone(g.Caveats)
		if caveats == nil {
			caveats = []Caveat{}
		}
		m.Doors = append(m.Doors, ManifestDoor{
			Name: g.Door.Name, Socket: g.Door.Socket, Env: g.Door.Env,
			Caveats: caveats, Grants: g.Door.Grants, Usage: g.Door.Usage,
		})
	}
	for _, d := range l.Denied {
		m.Denied = append(m.Denied, ManifestDenial{Name: d.Name, Flag: d.flag(), Absent: d.absent()})
	}
	if len(l.Extra) > 0 {
		m.Extra = make(map[string]string, len(l.Extra))
		for k, v := range l.Extra {
			m.Extra[k] = v
		}
	}
	return m
}

// ManifestJSON renders the manifest as indented JSON with a trailing
// newline.
func (l Launch) ManifestJSON() ([]byte, error) {
	b, err := json.MarshalIndent(l.Manifest(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// ErrBadManifest reports a manifest that does not parse.
var ErrBadManifest = errors.New("bad manifest")

// ParseManifest reads a manifest, refusing unknown fields and versions.
func ParseManifest(b []byte) (Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if dec.More() {
		return Manifest{}, fmt.Errorf("%w: trailing data", ErrBadManifest)
	}
	if m.Version != ManifestVersion {
		return Manifest{}, fmt.Errorf("%w: version %d, want %d", ErrBadManifest, m.Version, ManifestVersion)
	}
	return m, nil
}
