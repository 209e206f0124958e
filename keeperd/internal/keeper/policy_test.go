package keeper

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestLoadPolicyGood(t *testing.T) {
	p, err := LoadPolicy("testdata/policy/good.json")
	if err != nil {
		t.Fatal(err)
	}
	if p.Repos[0].Remotes["origin"].URL != "git@github.com:org/proj.git" || p.Force || p.Tags {
		t.Fatalf("policy = %+v", p)
	}
	for b, want := range map[string]bool{"claude/x": true, "claude/a/b": true, "feature/x": true, "feature/x/y": false, "main": false, "claudex": false} {
		if p.BranchAllowed(b) != want {
			t.Errorf("BranchAllowed(%q) = %v", b, !want)
		}
	}
}

// Every file in testdata/policy except good.json is refused, with the file
// and the reason named.
func TestLoadPolicyRefusals(t *testing.T) {
	cases := map[string]string{
		"unknown-key":        `json: unknown field "forcee"`,
		"unknown-nested-key": `json: unknown field "pushurl"`,
		"no-version":         `bad policy: missing "version" (want 1)`,
		"version-2":          `bad policy: unsupported version 2 (this keeperd reads version 1)`,
		"file-url":           `bad policy: repos[0].remotes.o: url: "file:///srv/x.git": scheme "file" is not allowed (ssh or https only)`,
		"ext-url":            `bad policy: repos[0].remotes.o: url: "ext::git-remote-evil%S": transport helpers (ext::, fd::, ...) are not allowed (ssh or https only)`,
		"local-path":         `bad policy: repos[0].remotes.o: url: "/srv/x.git": local paths are not allowed (ssh or https only)`,
		"http-url":           `bad policy: repos[0].remotes.o: url: "http://h/x.git": scheme "http" is not allowed (ssh or https only)`,
		"https-creds":        `bad policy: repos[0].remotes.o: url: https URL must not embed credentials (use token_file)`,
		"ssh-no-known-hosts": `bad policy: repos[0].remotes.o: known_hosts: required for an ssh remote (unknown hosts are refused)`,
		"relative-root":      `bad policy: repos[0].root: "src/proj" is not an absolute path`,
		"slash-root":         `bad policy: repos[0].root: "/" would bind every repository on the host`,
		"bad-glob":           `bad policy: branches[0]: glob "a..b": bad branch name "a..b"`,
		"bad-default-remote": `bad policy: repos[0].default_remote: "origin" is not in remotes`,
		"bad-identity":       `bad policy: identities[0].name: "A <x>" is not a valid name`,
		"negative-rate":      `bad policy: rate: budgets must not be negative`,
		"negative-limit":     `bad policy: limits: ceilings must not be negative`,
		"absurd-depth":       `bad policy: limits.max_depth: 100000 is over 4096`,
		"trailing":           `bad policy: trailing data after the policy object`,
	}
	files, _ := filepath.Glob("testdata/policy/*.json")
	if len(files) != len(cases)+1 {
		t.Fatalf("%d files in testdata/policy, %d cases: every broken config needs a case", len(files), len(cases))
	}
	for name, reason := range cases {
		t.Run(name, func(t *testing.T) {
			path := "testdata/policy/" + name + ".json"
			_, err := LoadPolicy(path)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("not ErrPolicy: %v", err)
			}
			want := "policy " + path + ": " + reason
			if reason[:4] == "json" {
				want = "policy " + path + ": bad policy: " + reason
			}
			if err.Error() != want {
				t.Fatalf("err = %q\nwant  %q", err, want)
			}
		})
	}
}

func TestParseRemoteURL(t *testing.T) {
	ok := map[string]string{
		"git@github.com:org/x.git":          "ssh://git@github.com/org/x.git",
		"ssh://git@host:2222/x.git":         "ssh://git@host:2222/x.git",
		"https://git.example.com/org/x.git": "https://git.example.com/org/x.git",
	}
	for in, want := range ok {
		u, err := ParseRemoteURL(in)
		if err != nil || u.String() != want {
			t.Errorf("%q: %v %v", in, u, err)
		}
	}
	bad := []string{"file:///x", "ext::ssh x", "fd::3", "/srv/x", "./x", "git://h/x", "http://h/x", "ssh://-oProxyCommand=x/y", "https://h", "https://h/x?u=1", "ssh://u:p@h/x", "ssh::h/x", ""}
	for _, in := range bad {
		if _, err := ParseRemoteURL(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"repos":[{"root":"/r","remotes":{"o":{"url":"git@h:x"}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParsePolicy(b)
	})
}
