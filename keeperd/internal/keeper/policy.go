package keeper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// PolicyVersion is the only policy file version this keeperd reads.
const PolicyVersion = 1

// Default per-launch budgets, used when a policy leaves a rate at 0.
const (
	DefaultCommitsPerLaunch = 500
	DefaultPushesPerLaunch  = 100
	DefaultSignsPerLaunch   = 500
)

// Default ceilings of one worktree walk, used when a policy leaves a limit
// at 0, and the largest values a policy may set.
const (
	DefaultMaxEntries = 200_000
	DefaultMaxDepth   = 256
	DefaultMaxBytes   = 4 << 30
	// MaxMaxEntries and MaxMaxDepth bound what a policy may raise them to:
	// past them one walk's memory, and its recursion, are no longer small.
	MaxMaxEntries = 10_000_000
	MaxMaxDepth   = 4096
)

// ErrPolicy reports a policy file that cannot be used.
var ErrPolicy = errors.New("bad policy")

// Policy is what keeperd allows. The zero Policy denies everything: no repo
// may be bound, no remote pushed to, no branch written.
type Policy struct {
	// Version must be PolicyVersion.
	Version int `json:"version"`
	// Repos lists the repository roots a door may be minted for, each with
	// the remotes its repositories may push to.
	Repos []RepoPolicy `json:"repos"`
	// Branches are the globs of branch names that may be committed on and
	// pushed: "*" matches within one path segment, "**" across segments.
	Branches []string `json:"branches"`
	// Force allows non-fast-forward pushes. Off unless explicitly on.
	Force bool `json:"force"`
	// Tags allows pushing tags (never moving an existing remote tag).
	Tags bool `json:"tags"`
	// Identities are the author/committer identities commits may carry;
	// the first is the default. A requested author must be listed.
	Identities []Identity `json:"identities"`
	// Rate bounds what one launch may do.
	Rate Rate `json:"rate"`
	// Limits bounds what one request's worktree walk may cost.
	Limits Limits `json:"limits"`
}

// RepoPolicy is one repository root and where its repositories may push.
type RepoPolicy struct {
	// Root is an absolute host path; the repository itself or any worktree
	// below it may be bound to a door.
	Root string `json:"root"`
	// Remotes maps remote names to where they push.
	Remotes map[string]Remote `json:"remotes"`
	// DefaultRemote is used when a push names no remote.
	DefaultRemote string `json:"default_remote"`
}

// Remote is one push destination. The URL comes only from here: the
// repository's own remote configuration is never read.
type Remote struct {
	// URL is ssh://, scp-like user@host:path, or https://.
	URL string `json:"url"`
	// KnownHosts is the known_hosts file the ssh host key is checked
	// against (ssh only, required).
	KnownHosts string `json:"known_hosts,omitempty"`
	// IdentityFile is the ssh client key (ssh only); default: keeperd's key.
	IdentityFile string `json:"identity_file,omitempty"`
	// TokenFile holds the https token (https only).
	TokenFile string `json:"token_file,omitempty"`
	// Username is the https basic-auth user; default "x-access-token".
	Username string `json:"username,omitempty"`
	// CAFile is an extra PEM bundle of roots for https.
	CAFile string `json:"ca_file,omitempty"`
}

// Identity is an author or committer.
type Identity struct {
	// Name is the display name.
	Name string `json:"name"`
	// Email is the address.
	Email string `json:"email"`
}

// String renders "Name <email>".
func (i Identity) String() string { return i.Name + " <" + i.Email + ">" }

// Rate is the per-launch budget; 0 means the default.
type Rate struct {
	// CommitsPerLaunch bounds commits.
	CommitsPerLaunch int `json:"commits_per_launch"`
	// PushesPerLaunch bounds pushes.
	PushesPerLaunch int `json:"pushes_per_launch"`
	// SignsPerLaunch bounds Sign calls (the gpg.ssh.program path).
	SignsPerLaunch int `json:"signs_per_launch"`
}

// Limits are the ceilings of one request's worktree walk (commit -a, a
// directory named to commit, status); 0 means the default. A walk over one
// is refused with ErrTooLarge, leaving the index and HEAD as they were.
type Limits struct {
	// MaxEntries bounds the files, directories and symlinks the walk lists
	// (those in ignored directories are not listed); default
	// DefaultMaxEntries, at most MaxMaxEntries.
	MaxEntries int `json:"max_entries"`
	// MaxDepth bounds how many directories deep below the worktree root a
	// directory may be; default DefaultMaxDepth, at most MaxMaxDepth.
	MaxDepth int `json:"max_depth"`
	// MaxBytes bounds the bytes of changed files read and hashed; default
	// DefaultMaxBytes. One file is at most MaxFileSize regardless.
	MaxBytes int64 `json:"max_bytes"`
}

// LoadPolicy reads and validates a policy file. Unknown keys, a missing or
// unknown version and every invalid value are refused, naming the file.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrPolicy, path, err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy parses and validates policy JSON.
func ParsePolicy(b []byte) (*Policy, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	if v.Version == nil {
		return nil, fmt.Errorf("%w: missing \"version\" (want %d)", ErrPolicy, PolicyVersion)
	}
	if *v.Version != PolicyVersion {
		return nil, fmt.Errorf("%w: unsupported version %d (this keeperd reads version %d)", ErrPolicy, *v.Version, PolicyVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the policy object", ErrPolicy)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	return &p, nil
}

// DenyAll is the policy used when none is configured.
func DenyAll() *Policy { return &Policy{Version: PolicyVersion} }

var identityRe = regexp.MustCompile(`^[^<>\n\x00]+$`)

func (p *Policy) validate() error {
	seen := map[string]bool{}
	for i := range p.Repos {
		r := &p.Repos[i]
		key := fmt.Sprintf("repos[%d]", i)
		if !filepath.IsAbs(r.Root) {
			return fmt.Errorf("%s.root: %q is not an absolute path", key, r.Root)
		}
		r.Root = filepath.Clean(r.Root)
		if r.Root == "/" {
			return fmt.Errorf("%s.root: \"/\" would bind every repository on the host", key)
		}
		if seen[r.Root] {
			return fmt.Errorf("%s.root: %q listed twice", key, r.Root)
		}
		seen[r.Root] = true
		names := make([]string, 0, len(r.Remotes))
		for n := range r.Remotes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			rk := fmt.Sprintf("%s.remotes.%s", key, n)
			if !remoteNameRe.MatchString(n) {
				return fmt.Errorf("%s: bad remote name %q", rk, n)
			}
			if err := r.Remotes[n].validate(); err != nil {
				return fmt.Errorf("%s: %w", rk, err)
			}
		}
		if r.DefaultRemote != "" {
			if _, ok := r.Remotes[r.DefaultRemote]; !ok {
				return fmt.Errorf("%s.default_remote: %q is not in remotes", key, r.DefaultRemote)
			}
		}
	}
	for i, g := range p.Branches {
		if _, err := compileGlob(g); err != nil {
			return fmt.Errorf("branches[%d]: %w", i, err)
		}
	}
	for i, id := range p.Identities {
		if !identityRe.MatchString(id.Name) || strings.TrimSpace(id.Name) != id.Name {
			return fmt.Errorf("identities[%d].name: %q is not a valid name", i, id.Name)
		}
		if !identityRe.MatchString(id.Email) || strings.ContainsAny(id.Email, " \t") || !strings.Contains(id.Email, "@") {
			return fmt.Errorf("identities[%d].email: %q is not a valid address", i, id.Email)
		}
	}
	if p.Rate.CommitsPerLaunch < 0 || p.Rate.PushesPerLaunch < 0 || p.Rate.SignsPerLaunch < 0 {
		return errors.New("rate: budgets must not be negative")
	}
	if p.Limits.MaxEntries < 0 || p.Limits.MaxDepth < 0 || p.Limits.MaxBytes < 0 {
		return errors.New("limits: ceilings must not be negative")
	}
	if p.Limits.MaxEntries > MaxMaxEntries {
		return fmt.Errorf("limits.max_entries: %d is over %d", p.Limits.MaxEntries, MaxMaxEntries)
	}
	if p.Limits.MaxDepth > MaxMaxDepth {
		return fmt.Errorf("limits.max_depth: %d is over %d", p.Limits.MaxDepth, MaxMaxDepth)
	}
	return nil
}

var remoteNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (r Remote) validate() error {
	u, err := ParseRemoteURL(r.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	for k, v := range map[string]string{"known_hosts": r.KnownHosts, "identity_file": r.IdentityFile, "token_file": r.TokenFile, "ca_file": r.CAFile} {
		if v != "" && !filepath.IsAbs(v) {
			return fmt.Errorf("%s: %q is not an absolute path", k, v)
		}
	}
	switch u.Scheme {
	case "ssh":
		if r.KnownHosts == "" {
			return errors.New("known_hosts: required for an ssh remote (unknown hosts are refused)")
		}
		if r.TokenFile != "" || r.CAFile != "" || r.Username != "" {
			return errors.New("token_file, ca_file and username apply to https remotes only")
		}
	case "https":
		if r.KnownHosts != "" || r.IdentityFile != "" {
			return errors.New("known_hosts and identity_file apply to ssh remotes only")
		}
	}
	return nil
}

// ParseRemoteURL accepts ssh://, scp-like user@host:path and https:// URLs
// and refuses everything else: local paths, file://, ext:: and other
// transport helpers, git://, http://, credentials embedded in https URLs.
func ParseRemoteURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	if strings.ContainsAny(s, "\x00\n\r\t ") {
		return nil, fmt.Errorf("%q contains whitespace or control characters", s)
	}
	if strings.Contains(s, "::") {
		return nil, fmt.Errorf("%q: transport helpers (ext::, fd::, ...) are not allowed (ssh or https only)", s)
	}
	if !strings.Contains(s, "://") {
		m := scpRe.FindStringSubmatch(s)
		if m == nil {
			return nil, fmt.Errorf("%q: local paths are not allowed (ssh or https only)", s)
		}
		s = "ssh://" + m[1] + m[2] + "/" + strings.TrimPrefix(m[3], "/")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	switch u.Scheme {
	case "ssh", "https":
	default:
		return nil, fmt.Errorf("%q: scheme %q is not allowed (ssh or https only)", s, u.Scheme)
	}
	host := u.Hostname()
	if host == "" || strings.HasPrefix(host, "-") {
		return nil, fmt.Errorf("%q: bad host", s)
	}
	if u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("%q: no repository path", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: query and fragment are not allowed", s)
	}
	if u.Scheme == "https" && u.User != nil {
		return nil, fmt.Errorf("https URL must not embed credentials (use token_file)")
	}
	if u.Scheme == "ssh" && u.User != nil {
		if _, has := u.User.Password(); has {
			return nil, fmt.Errorf("ssh URL must not embed a password")
		}
		if strings.HasPrefix(u.User.Username(), "-") {
			return nil, fmt.Errorf("%q: bad user", s)
		}
	}
	return u, nil
}

var scpRe = regexp.MustCompile(`^([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+):(.+)$`)

// BindRepo checks that repo may be bound to a door: an absolute path to a
// git worktree under one of the policy's roots. It returns the repository's
// policy and the cleaned, symlink-resolved path.
func (p *Policy) BindRepo(repo string) (*RepoPolicy, string, error) {
	if repo == "" {
		return nil, "", fmt.Errorf("%w: no repository bound to this door", ErrDenied)
	}
	if !filepath.IsAbs(repo) {
		return nil, "", fmt.Errorf("%w: repository %q is not an absolute path", ErrInvalid, repo)
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(repo))
	if err != nil {
		return nil, "", fmt.Errorf("%w: repository %q: %w", ErrInvalid, repo, err)
	}
	for i := range p.Repos {
		r := &p.Repos[i]
		root := r.Root
		if rr, err := filepath.EvalSymlinks(root); err == nil {
			root = rr
		}
		if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
			if _, err := os.Lstat(filepath.Join(real, ".git")); err != nil {
				return nil, "", fmt.Errorf("%w: %q is not a git worktree", ErrInvalid, repo)
			}
			return r, real, nil
		}
	}
	return nil, "", fmt.Errorf("%w: repository %q is not under a repo root in policy", ErrDenied, repo)
}

// BranchAllowed reports whether policy allows writing branch.
func (p *Policy) BranchAllowed(branch string) bool {
	for _, g := range p.Branches {
		re, err := compileGlob(g)
		if err == nil && re.MatchString(branch) {
			return true
		}
	}
	return false
}

// Identity picks the identity for a commit: the requested one if policy
// lists it, the first listed when none is requested.
func (p *Policy) Identity(requested string) (Identity, error) {
	if len(p.Identities) == 0 {
		return Identity{}, fmt.Errorf("%w: policy lists no identity to commit as", ErrDenied)
	}
	if requested == "" {
		return p.Identities[0], nil
	}
	for _, id := range p.Identities {
		if id.String() == requested {
			return id, nil
		}
	}
	return Identity{}, fmt.Errorf("%w: author %q is not an identity in policy", ErrDenied, requested)
}

func (p *Policy) hasIdentity(name, email string) bool {
	for _, id := range p.Identities {
		if id.Name == name && id.Email == email {
			return true
		}
	}
	return false
}

func (p *Policy) rates() Rate {
	r := p.Rate
	if r.CommitsPerLaunch == 0 {
		r.CommitsPerLaunch = DefaultCommitsPerLaunch
	}
	if r.PushesPerLaunch == 0 {
		r.PushesPerLaunch = DefaultPushesPerLaunch
	}
	if r.SignsPerLaunch == 0 {
		r.SignsPerLaunch = DefaultSignsPerLaunch
	}
	return r
}

// limits returns the policy's walk ceilings, defaults filled in.
func (p *Policy) limits() Limits { return p.Limits.withDefaults() }

// withDefaults is l with every unset ceiling at its default.
func (l Limits) withDefaults() Limits {
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

// compileGlob turns a branch glob into a regexp: "*" matches within a
// segment, "**" across segments; every other byte is literal.
func compileGlob(g string) (*regexp.Regexp, error) {
	if g == "" {
		return nil, errors.New("empty glob")
	}
	if err := CheckBranchName(strings.ReplaceAll(g, "*", "x")); err != nil {
		return nil, fmt.Errorf("glob %q: %w", g, err)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		if g[i] == '*' {
			if i+1 < len(g) && g[i+1] == '*' {
				b.WriteString(".*")
				i++
				continue
			}
			b.WriteString("[^/]*")
			continue
		}
		b.WriteString(regexp.QuoteMeta(g[i : i+1]))
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// CheckBranchName applies git's ref-name rules (check-ref-format) to a
// short branch name.
func CheckBranchName(b string) error {
	switch {
	case b == "", b == "@":
		return fmt.Errorf("bad branch name %q", b)
	case strings.HasPrefix(b, "-"), strings.HasPrefix(b, "/"), strings.HasSuffix(b, "/"),
		strings.HasSuffix(b, "."), strings.HasSuffix(b, ".lock"),
		strings.Contains(b, ".."), strings.Contains(b, "//"), strings.Contains(b, "@{"),
		strings.Contains(b, "/."), strings.HasPrefix(b, "."):
		return fmt.Errorf("bad branch name %q", b)
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return fmt.Errorf("bad branch name %q", b)
		}
	}
	return nil
}
