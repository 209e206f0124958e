package egress

import (
	"fmt"
	"slices"
	"sort"
)

// profiles returns the named allowlists a launch can add. None of them may
// ever contain a write sink (an API that accepts uploads, gists, pastebins,
// object stores, webhook catchers): TestProfilesHaveNoWriteSink pins this.
func profiles() map[string][]string {
	return map[string][]string{
		// default: what Claude Code needs to think.
		"default": {"api.anthropic.com", ".anthropic.com"},
		// login: what a first /login needs on top of default.
		"login": {"claude.ai", "platform.claude.com"},
		// github-read: clone and download over https. api.github.com, uploads
		// and gists are write sinks and deliberately absent.
		"github-read": {"github.com", "codeload.github.com", "raw.githubusercontent.com", "objects.githubusercontent.com"},
		// npm: package metadata and tarballs.
		"npm": {"registry.npmjs.org"},
		// pypi: package index and files (upload.pypi.org is absent).
		"pypi": {"pypi.org", "files.pythonhosted.org"},
	}
}

// DefaultProfile is always in force unless a policy names NoProfile;
// other profiles widen it.
const DefaultProfile = "default"

// NoProfile, named as a profile, leaves DefaultProfile out: the policy is
// then exactly its explicit entries and other profiles.
const NoProfile = "none"

// ProfileNames lists the known profiles, sorted.
func ProfileNames() []string {
	all := profiles()
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Profile returns the entries of a named profile.
func Profile(name string) ([]string, error) {
	p, ok := profiles()[name]
	if !ok {
		return nil, fmt.Errorf("unknown profile %q (known: %v)", name, ProfileNames())
	}
	return slices.Clone(p), nil
}
