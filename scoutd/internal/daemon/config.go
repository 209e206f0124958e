// Package daemon is `scoutd`: it loads the policy (config file and flags),
// builds the scout domain and serves it as the scout door: a control socket
// for the launcher to mint launch doors on, and optionally a standing door.
package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
)

// ConfigVersion is the only config file version this scoutd reads.
const ConfigVersion = 1

// File is the config file's shape. Unknown keys, a missing or other
// version, and trailing data are refused.
type File struct {
	Version      int      `json:"version"`
	Allow        []string `json:"allow"`
	AllowHTTP    bool     `json:"allow_http"`
	Resolve      []string `json:"resolve"`
	AllowPrivate []string `json:"allow_private"`
	GitHubAPI    string   `json:"github_api"`
	TokenFile    string   `json:"token_file"`
	Limits       *Limits  `json:"limits"`
}

// Limits are the ceilings in a config file; durations are Go durations
// ("30s"). Absent keys keep the defaults.
type Limits struct {
	MaxBytes         int64  `json:"max_bytes"`
	MaxDecodedBytes  int64  `json:"max_decoded_bytes"`
	Timeout          string `json:"timeout"`
	FirstByte        string `json:"first_byte"`
	Idle             string `json:"idle"`
	MaxRedirects     int    `json:"max_redirects"`
	MaxSnapshotBytes int64  `json:"max_snapshot_bytes"`
	MaxFiles         int64  `json:"max_files"`
	MaxComments      int    `json:"max_comments"`
}

// Settings are the flags and environment, before merging with a file.
type Settings struct {
	ConfigFile   string
	Allow        []string
	AllowHTTP    bool
	Resolve      []string
	AllowPrivate []string
	GitHubAPI    string
	TokenFile    string
	// Env reads SCOUTD_TOKEN and GH_TOKEN.
	Getenv func(string) string
}

// Policy is everything the daemon's scout is built from.
type Policy struct {
	Allow        dest.Allowlist
	AllowHTTP    bool
	Resolve      map[string][]netip.Addr
	AllowPrivate []netip.Prefix
	GitHubAPI    string
	Token        string
	TokenSource  string
	Limits       scout.Limits
}

// Summary renders the policy in one line, without the token.
func (p Policy) Summary() string {
	allow := strings.Join(p.Allow.Strings(), ",")
	if allow == "" {
		allow = "(none)"
	}
	s := "allow=" + allow
	if p.AllowHTTP {
		s += " allow_http"
	}
	if len(p.AllowPrivate) > 0 {
		var ps []string
		for _, pf := range p.AllowPrivate {
			ps = append(ps, pf.String())
		}
		s += " allow_private=" + strings.Join(ps, ",")
	}
	s += " github_api=" + p.GitHubAPI
	if p.Token != "" {
		s += " token=" + p.TokenSource
	}
	return s
}

// LoadFile reads and checks a config file.
func LoadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("config %s: %w", path, err)
	}
	f, err := ParseFile(b)
	if err != nil {
		return File{}, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// ParseFile parses a config file strictly.
func ParseFile(b []byte) (File, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return File{}, fmt.Errorf("not a JSON object: %w", err)
	}
	known := map[string]bool{"version": true, "allow": true, "allow_http": true, "resolve": true, "allow_private": true, "github_api": true, "token_file": true, "limits": true}
	for k := range probe {
		if !known[k] {
			return File{}, fmt.Errorf("unknown key %q", k)
		}
	}
	ver, ok := probe["version"]
	if !ok {
		return File{}, fmt.Errorf("key \"version\" is missing (want %d)", ConfigVersion)
	}
	var v int
	if err := json.Unmarshal(ver, &v); err != nil || v != ConfigVersion {
		return File{}, fmt.Errorf("key \"version\": unsupported version %s (this scoutd reads version %d)", ver, ConfigVersion)
	}
	if lim, ok := probe["limits"]; ok {
		var lp map[string]json.RawMessage
		if err := json.Unmarshal(lim, &lp); err != nil {
			return File{}, fmt.Errorf("key \"limits\": %w", err)
		}
		lknown := map[string]bool{"max_bytes": true, "max_decoded_bytes": true, "timeout": true, "first_byte": true, "idle": true, "max_redirects": true, "max_snapshot_bytes": true, "max_files": true, "max_comments": true}
		for k := range lp {
			if !lknown[k] {
				return File{}, fmt.Errorf("unknown key \"limits.%s\"", k)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return File{}, errors.New("trailing data after the config object")
	}
	return f, nil
}

// Load merges the config file (if any) with the flags: lists are joined,
// a flag's scalar wins over the file's. It checks every entry.
func Load(s Settings) (Policy, error) {
	var f File
	if s.ConfigFile != "" {
		var err error
		if f, err = LoadFile(s.ConfigFile); err != nil {
			return Policy{}, err
		}
	}
	p := Policy{AllowHTTP: f.AllowHTTP || s.AllowHTTP, Resolve: map[string][]netip.Addr{}}
	for _, list := range [][]string{f.Allow, s.Allow} {
		for _, item := range list {
			for _, e := range strings.Split(item, ",") {
				e = strings.TrimSpace(e)
				if e == "" {
					continue
				}
				en, err := dest.ParseEntry(e)
				if err != nil {
					return Policy{}, fmt.Errorf("allow: %w", err)
				}
				p.Allow = append(p.Allow, en)
			}
		}
	}
	for _, r := range append(append([]string(nil), f.Resolve...), s.Resolve...) {
		host, addr, err := dest.ParseResolve(r)
		if err != nil {
			return Policy{}, err
		}
		p.Resolve[host] = append(p.Resolve[host], addr)
	}
	for _, c := range append(append([]string(nil), f.AllowPrivate...), s.AllowPrivate...) {
		pf, err := dest.ParsePrefix(c)
		if err != nil {
			return Policy{}, err
		}
		p.AllowPrivate = append(p.AllowPrivate, pf)
	}
	p.GitHubAPI = scout.DefaultGitHubAPI
	if f.GitHubAPI != "" {
		p.GitHubAPI = f.GitHubAPI
	}
	if s.GitHubAPI != "" {
		p.GitHubAPI = s.GitHubAPI
	}
	lim, err := f.Limits.compile()
	if err != nil {
		return Policy{}, err
	}
	p.Limits = lim
	tokenFile := f.TokenFile
	if s.TokenFile != "" {
		tokenFile = s.TokenFile
	}
	getenv := s.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	switch {
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return Policy{}, fmt.Errorf("token file: %w", err)
		}
		p.Token, p.TokenSource = strings.TrimSpace(string(b)), "file"
		if p.Token == "" {
			return Policy{}, fmt.Errorf("token file %s is empty", tokenFile)
		}
	case getenv("SCOUTD_TOKEN") != "":
		p.Token, p.TokenSource = strings.TrimSpace(getenv("SCOUTD_TOKEN")), "SCOUTD_TOKEN"
	case getenv("GH_TOKEN") != "":
		p.Token, p.TokenSource = strings.TrimSpace(getenv("GH_TOKEN")), "GH_TOKEN"
	}
	if strings.ContainsAny(p.Token, "\r\n \t") {
		return Policy{}, errors.New("token has whitespace inside it")
	}
	return p, nil
}

func (l *Limits) compile() (scout.Limits, error) {
	d := scout.DefaultLimits()
	if l == nil {
		return d, nil
	}
	ints := []struct {
		name string
		v    int64
		dst  *int64
	}{
		{"max_bytes", l.MaxBytes, &d.MaxBytes},
		{"max_decoded_bytes", l.MaxDecodedBytes, &d.MaxDecodedBytes},
		{"max_snapshot_bytes", l.MaxSnapshotBytes, &d.MaxSnapshotBytes},
		{"max_files", l.MaxFiles, &d.MaxFiles},
	}
	for _, i := range ints {
		if i.v < 0 {
			return scout.Limits{}, fmt.Errorf("limits.%s: negative", i.name)
		}
		if i.v > 0 {
			*i.dst = i.v
		}
	}
	if l.MaxRedirects < 0 || l.MaxRedirects > 20 {
		return scout.Limits{}, errors.New("limits.max_redirects: want 0-20")
	}
	if l.MaxRedirects > 0 {
		d.MaxRedirects = l.MaxRedirects
	}
	if l.MaxComments < 0 {
		return scout.Limits{}, errors.New("limits.max_comments: negative")
	}
	if l.MaxComments > 0 {
		d.MaxComments = l.MaxComments
	}
	durs := []struct {
		name, v string
		dst     *time.Duration
	}{
		{"timeout", l.Timeout, &d.Timeout},
		{"first_byte", l.FirstByte, &d.FirstByte},
		{"idle", l.Idle, &d.Idle},
	}
	for _, x := range durs {
		if x.v == "" {
			continue
		}
		v, err := time.ParseDuration(x.v)
		if err != nil || v <= 0 {
			return scout.Limits{}, fmt.Errorf("limits.%s: %q is not a positive duration", x.name, x.v)
		}
		*x.dst = v
	}
	return d, nil
}
