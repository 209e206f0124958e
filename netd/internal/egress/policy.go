package egress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/bounded-systems/claude-box/guestroom/dest"
)

// Spec is a policy as written, by flags, a config file or both, before it
// is validated.
type Spec struct {
	// Allow are allowlist entries ("host", ".domain", with optional ":port").
	Allow []string
	// Profiles are named profiles added to DefaultProfile; NoProfile
	// leaves the default out.
	Profiles []string
	// Resolve are static answers, "HOST=IP".
	Resolve []string
	// AllowPrivate are prefixes whose non-public addresses may be dialed.
	AllowPrivate []string
}

// Merge returns the union of s and o, s first.
func (s Spec) Merge(o Spec) Spec {
	return Spec{
		Allow:        append(slices.Clone(s.Allow), o.Allow...),
		Profiles:     append(slices.Clone(s.Profiles), o.Profiles...),
		Resolve:      append(slices.Clone(s.Resolve), o.Resolve...),
		AllowPrivate: append(slices.Clone(s.AllowPrivate), o.AllowPrivate...),
	}
}

// Policy is a validated Spec.
type Policy struct {
	// Allow is every entry: the profiles' and the explicit ones.
	Allow dest.Allowlist
	// Profiles are the profiles in force.
	Profiles []string
	// Resolve maps canonical names to static answers.
	Resolve map[string][]netip.Addr
	// AllowPrivate are the allow-private prefixes.
	AllowPrivate []netip.Prefix
}

// ErrConfig reports a policy or config file that does not validate.
var ErrConfig = errors.New("invalid policy")

// Compile validates s. Every item is checked; the first bad one is named.
func Compile(s Spec) (Policy, error) {
	var p Policy
	// Profiles widen the default one; only "none" leaves it out.
	names := []string{DefaultProfile}
	if slices.Contains(s.Profiles, NoProfile) {
		names = nil
	}
	for _, n := range s.Profiles {
		if n != NoProfile {
			names = append(names, n)
		}
	}
	for _, n := range names {
		entries, err := Profile(n)
		if err != nil {
			return Policy{}, fmt.Errorf("%w: profile: %w", ErrConfig, err)
		}
		if !slices.Contains(p.Profiles, n) {
			p.Profiles = append(p.Profiles, n)
		}
		for _, raw := range entries {
			e, err := dest.ParseEntry(raw)
			if err != nil {
				return Policy{}, fmt.Errorf("%w: profile %s: %w", ErrConfig, n, err)
			}
			p.Allow = appendEntry(p.Allow, e)
		}
	}
	for i, raw := range s.Allow {
		for _, item := range strings.Split(raw, ",") {
			e, err := dest.ParseEntry(strings.TrimSpace(item))
			if err != nil {
				return Policy{}, fmt.Errorf("%w: allow[%d]: %w", ErrConfig, i, err)
			}
			p.Allow = appendEntry(p.Allow, e)
		}
	}
	for i, raw := range s.Resolve {
		h, a, err := dest.ParseResolve(raw)
		if err != nil {
			return Policy{}, fmt.Errorf("%w: resolve[%d]: %w", ErrConfig, i, err)
		}
		if p.Resolve == nil {
			p.Resolve = make(map[string][]netip.Addr)
		}
		if !slices.Contains(p.Resolve[h], a) {
			p.Resolve[h] = append(p.Resolve[h], a)
		}
	}
	for i, raw := range s.AllowPrivate {
		pfx, err := dest.ParsePrefix(raw)
		if err != nil {
			return Policy{}, fmt.Errorf("%w: allow_private[%d]: %w", ErrConfig, i, err)
		}
		if !slices.Contains(p.AllowPrivate, pfx) {
			p.AllowPrivate = append(p.AllowPrivate, pfx)
		}
	}
	return p, nil
}

func appendEntry(l dest.Allowlist, e dest.Entry) dest.Allowlist {
	if slices.Contains(l, e) {
		return l
	}
	return append(l, e)
}

// Summary is a one-line description of the policy: profiles and counts,
// never the entries themselves.
func (p Policy) Summary() string {
	s := fmt.Sprintf("profiles=%s entries=%d resolve=%d", strings.Join(p.Profiles, ","), len(p.Allow), len(p.Resolve))
	if len(p.AllowPrivate) > 0 {
		pf := make([]string, len(p.AllowPrivate))
		for i, x := range p.AllowPrivate {
			pf[i] = x.String()
		}
		s += " allow_private=" + strings.Join(pf, ",")
	}
	return s
}

// ConfigVersion is the only config file version this netd reads.
const ConfigVersion = 1

// fileKeys are the keys of a version 1 file, exactly.
var fileKeys = []string{"version", "allow", "profiles", "resolve", "allow_private"}

// fileV1 is the config file, version 1.
type fileV1 struct {
	Version      int      `json:"version"`
	Allow        []string `json:"allow"`
	Profiles     []string `json:"profiles"`
	Resolve      []string `json:"resolve"`
	AllowPrivate []string `json:"allow_private"`
}

// LoadFile reads a config file strictly: it must be one JSON object with
// "version": 1; unknown keys, unknown versions, trailing data and entries
// that do not validate are refused with the file and the key named.
func LoadFile(path string) (Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("%w: config %s: %w", ErrConfig, path, err)
	}
	s, err := parseFile(b)
	if err != nil {
		return Spec{}, fmt.Errorf("%w: config %s: %w", ErrConfig, path, err)
	}
	if _, err := Compile(s); err != nil {
		return Spec{}, fmt.Errorf("config %s: %w", path, err)
	}
	return s, nil
}

func parseFile(b []byte) (Spec, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return Spec{}, fmt.Errorf("not a JSON object: %w", err)
	}
	// encoding/json matches keys case-insensitively; the file format does not.
	for k := range probe {
		if !slices.Contains(fileKeys, k) {
			return Spec{}, fmt.Errorf("unknown key %q (known: %s)", k, strings.Join(fileKeys, ", "))
		}
	}
	ver, ok := probe["version"]
	if !ok {
		return Spec{}, fmt.Errorf("key \"version\" is missing (want %d)", ConfigVersion)
	}
	var v int
	if err := json.Unmarshal(ver, &v); err != nil || v != ConfigVersion {
		return Spec{}, fmt.Errorf("key \"version\": unsupported version %s (this netd reads version %d)", ver, ConfigVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f fileV1
	if err := dec.Decode(&f); err != nil {
		return Spec{}, fmt.Errorf("%w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Spec{}, errors.New("trailing data after the config object")
	}
	return Spec{Allow: f.Allow, Profiles: f.Profiles, Resolve: f.Resolve, AllowPrivate: f.AllowPrivate}, nil
}

// Source is where a policy comes from: an optional config file plus the
// flags given at start, which are re-applied on every reload.
type Source struct {
	// File is the config file; empty means flags only.
	File string
	// Flags is the policy given by flags.
	Flags Spec
}

// Load reads the file (if any), merges the flags and validates the result.
func (s Source) Load() (Policy, error) {
	spec := s.Flags
	if s.File != "" {
		fs, err := LoadFile(s.File)
		if err != nil {
			return Policy{}, err
		}
		spec = fs.Merge(s.Flags)
	}
	return Compile(spec)
}
