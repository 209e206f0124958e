package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/dest"
)

// noDNS is a resolver that knows no name: tests never reach real DNS.
var noDNS = &dest.Static{}

func TestProfilesHaveNoWriteSink(t *testing.T) {
	sinks := []string{
		"api.github.com", "uploads.github.com", "gist.github.com", "gist.githubusercontent.com",
		"pastebin.com", "paste.ee", "hastebin.com", "dpaste.com", "termbin.com", "0x0.st", "transfer.sh",
		"file.io", "webhook.site", "requestbin.com", "x.pipedream.net", "hooks.slack.com", "discord.com",
		"x.ngrok.io", "s3.amazonaws.com", "bucket.s3.amazonaws.com", "storage.googleapis.com",
		"acct.blob.core.windows.net", "x.r2.cloudflarestorage.com", "upload.pypi.org", "drive.google.com",
		"www.dropbox.com", "content.dropboxapi.com", "api.anthropic.com.evil.com",
	}
	for _, name := range ProfileNames() {
		entries, _ := Profile(name)
		for _, raw := range entries {
			e, err := dest.ParseEntry(raw)
			if err != nil {
				t.Fatalf("profile %s: %v", name, err)
			}
			for _, s := range sinks {
				if e.MatchesHost(s) {
					t.Errorf("profile %s entry %s admits write sink %s", name, e, s)
				}
			}
		}
	}
	def, _ := Profile(DefaultProfile)
	if strings.Join(def, ",") != "api.anthropic.com,.anthropic.com" {
		t.Errorf("default profile = %v", def)
	}
}

func TestProfilesWidenDefault(t *testing.T) {
	cases := map[string]struct {
		profiles []string
		want     string
	}{
		"nothing named":      {nil, "default"},
		"login widens":       {[]string{"login"}, "default,login"},
		"default named":      {[]string{"default", "npm"}, "default,npm"},
		"none drops default": {[]string{"none", "npm"}, "npm"},
		"none alone":         {[]string{"none"}, ""},
	}
	for name, tc := range cases {
		p, err := Compile(Spec{Profiles: tc.profiles})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := strings.Join(p.Profiles, ","); got != tc.want {
			t.Errorf("%s: profiles %q, want %q", name, got, tc.want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	s, err := LoadFile("testdata/good/full.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Profiles, ","); got != "default,npm" {
		t.Errorf("profiles %s", got)
	}
	if len(p.Resolve["internal.example.com"]) != 1 || len(p.AllowPrivate) != 1 {
		t.Errorf("policy %+v", p)
	}
	if _, err := LoadFile("testdata/good/minimal.json"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"unknown-key.json":      `"colour"`,
		"case-variant-key.json": `"Version"`,
		"unknown-version.json":  "unsupported version 2",
		"missing-version.json":  `"version" is missing`,
		"version-string.json":   "unsupported version",
		"wildcard-entry.json":   "allow[0]",
		"ip-entry.json":         "allow[0]",
		"unknown-profile.json":  `unknown profile "everything"`,
		"bad-resolve.json":      "resolve[0]",
		"bad-prefix.json":       "allow_private[0]",
		"wrong-type.json":       "allow",
		"trailing-data.json":    "after top-level value",
		"truncated.json":        "not a JSON object",
		"not-object.json":       "not a JSON object",
		"empty.json":            "not a JSON object",
	}
	files, _ := filepath.Glob("testdata/broken/*.json")
	if len(files) != len(want) {
		t.Fatalf("%d broken configs, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		_, err := LoadFile(f)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", f, err)
			continue
		}
		if !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), want[filepath.Base(f)]) {
			t.Errorf("%s: error %q does not name the file and %s", f, err, want[filepath.Base(f)])
		}
	}
}

func TestReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netd.json")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"version": 1, "allow": ["one.example"]}`)
	src := Source{File: cfg, Flags: Spec{Resolve: []string{"one.example=8.8.8.8", "two.example=8.8.4.4"}}}
	p, err := src.Load()
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(p, Options{Resolver: noDNS})
	ctx := context.Background()
	check := func(host, reason string) {
		t.Helper()
		if d := e.Check(ctx, Request{Target: host + ":443", Verb: VerbConnect}); d.Reason != reason {
			t.Fatalf("%s: reason %s (%v), want %s", host, d.Reason, d.Err, reason)
		}
	}
	check("one.example", ReasonOK)
	check("two.example", dest.ReasonNotAllowlisted)
	write(`{"version": 1, "allow": ["two.example"], "bogus": true}`)
	if _, err := e.Reload(src); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("broken reload: %v", err)
	}
	check("one.example", ReasonOK)
	check("two.example", dest.ReasonNotAllowlisted)
	write(`{"version": 1, "allow": ["two.example"]}`)
	if _, err := e.Reload(src); err != nil {
		t.Fatal(err)
	}
	check("one.example", dest.ReasonNotAllowlisted)
	check("two.example", ReasonOK)
	if err := os.Remove(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(src); err == nil {
		t.Fatal("reload of a missing file succeeded")
	}
	check("two.example", ReasonOK)
}

func TestCaveatsNarrow(t *testing.T) {
	p, err := Compile(Spec{Allow: []string{".example.com,other.example"}, Resolve: []string{"a.example.com=8.8.8.8", "other.example=8.8.8.8"}})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(p, Options{Resolver: noDNS})
	ctx := context.Background()
	cv := []guestroom.Caveat{{Key: "host", Value: ".example.com:443"}}
	cases := []struct {
		target, reason, rule string
	}{
		{"a.example.com:443", ReasonOK, ".example.com"},
		{"a.example.com:80", ReasonCaveat, RuleCaveat},
		{"other.example:443", ReasonCaveat, RuleCaveat},
		{"evil.example:443", dest.ReasonNotAllowlisted, RuleAllowlist},
	}
	for _, tc := range cases {
		d := e.Check(ctx, Request{Target: tc.target, Verb: VerbConnect, Caveats: cv})
		if d.Reason != tc.reason || d.Rule != tc.rule {
			t.Errorf("%s: %s/%s (%v), want %s/%s", tc.target, d.Reason, d.Rule, d.Err, tc.reason, tc.rule)
		}
	}
	// A caveat widens nothing: outside the allowlist stays denied.
	d := e.Check(ctx, Request{Target: "evil.example:443", Verb: VerbConnect, Caveats: []guestroom.Caveat{{Key: "host", Value: "evil.example"}}})
	if d.Reason != dest.ReasonNotAllowlisted {
		t.Errorf("caveat widened: %s", d.Reason)
	}
	d = e.Check(ctx, Request{Target: "a.example.com:443", Verb: VerbConnect, Caveats: []guestroom.Caveat{{Key: "repo", Value: "x"}}})
	if d.Reason != ReasonCaveat {
		t.Errorf("uninterpretable caveat: %s", d.Reason)
	}
	if err := ValidateCaveats([]guestroom.Caveat{{Key: "host", Value: "x.com"}}); err != nil {
		t.Error(err)
	}
	for _, bad := range []guestroom.Caveat{{Key: "repo", Value: "x"}, {Key: "host", Value: "*.x.com"}} {
		if err := ValidateCaveats([]guestroom.Caveat{bad}); err == nil {
			t.Errorf("caveat %s validated", bad)
		}
	}
}

func TestHTTPVerb(t *testing.T) {
	p, _ := Compile(Spec{Allow: []string{"plain.example"}, Resolve: []string{"plain.example=8.8.8.8"}})
	e := NewEngine(p, Options{Resolver: noDNS})
	ctx := context.Background()
	cases := []struct {
		url, host, reason string
		verdict           Verdict
	}{
		{"http://plain.example/x", "plain.example", ReasonOK, Allow},
		{"http://plain.example/x", "", ReasonOK, Allow},
		{"http://plain.example/x", "PLAIN.example:80", ReasonOK, Allow},
		{"http://plain.example/x", "evil.example", ReasonHostMismatch, BadTarget},
		{"http://plain.example/x", "plain.example:8080", ReasonHostMismatch, BadTarget},
		{"http://plain.example/x", "plain.example@evil", ReasonHostMismatch, BadTarget},
		{"https://plain.example/x", "plain.example", dest.ReasonBadScheme, BadTarget},
		{"ftp://plain.example/x", "", dest.ReasonBadScheme, BadTarget},
		{"http://evil.example/", "evil.example", dest.ReasonNotAllowlisted, Deny},
		{"/x", "plain.example", dest.ReasonBadTarget, BadTarget},
	}
	for _, tc := range cases {
		d := e.Check(ctx, Request{Target: tc.url, Verb: VerbHTTP, HostHeader: tc.host})
		if d.Reason != tc.reason || d.Verdict != tc.verdict {
			t.Errorf("%s host %q: %s %s (%v), want %s %s", tc.url, tc.host, d.Verdict, d.Reason, d.Err, tc.verdict, tc.reason)
		}
	}
	if d := e.Check(ctx, Request{Target: "plain.example:80"}); d.Reason != ReasonBadVerb {
		t.Errorf("no verb: %s", d.Reason)
	}
}

func TestConnectDialsCheckedAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	p, _ := Compile(Spec{Allow: []string{"up.test:" + itoa(port), "priv.test:" + itoa(port)},
		Resolve: []string{"up.test=127.0.0.1", "priv.test=127.0.0.2"}, AllowPrivate: []string{"127.0.0.1/32"}})
	e := NewEngine(p, Options{Resolver: noDNS})
	c, d := e.Connect(context.Background(), Request{Target: "up.test:" + itoa(port), Verb: VerbConnect})
	if d.Verdict != Allow || c == nil || d.Addr != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)) {
		t.Fatalf("connect: %+v", d)
	}
	c.Close()
	if c, d := e.Connect(context.Background(), Request{Target: "priv.test:" + itoa(port), Verb: VerbConnect}); c != nil || d.Reason != dest.ReasonPrivateAddress || d.Rule != RuleAddress {
		t.Fatalf("priv: %+v", d)
	}
	if msg := (Decision{Verdict: Deny, Reason: dest.ReasonNotAllowlisted, Target: dest.Target{Host: "x.com", Port: 443}}).Message(); !strings.Contains(msg, "x.com:443 denied (not_allowlisted)") || strings.Contains(msg, "up.test") {
		t.Errorf("message %q", msg)
	}
}

func itoa(i int) string { return dest.Target{Port: uint16(i)}.String()[1:] }

func TestBoundProfilesWidenOneLaunch(t *testing.T) {
	p, err := Compile(Spec{Resolve: []string{"claude.ai=8.8.8.8", "github.com=8.8.8.8", "api.anthropic.com=8.8.8.8"}})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(p, Options{Resolver: noDNS})
	ctx := context.Background()
	cases := []struct {
		name, target string
		profiles     []string
		caveats      []guestroom.Caveat
		reason       string
	}{
		{"default policy refuses login host", "claude.ai:443", nil, nil, dest.ReasonNotAllowlisted},
		{"login binding admits it", "claude.ai:443", []string{"login"}, nil, ReasonOK},
		{"login binding does not admit github", "github.com:443", []string{"login"}, nil, dest.ReasonNotAllowlisted},
		{"two profiles", "github.com:443", []string{"login", "github-read"}, nil, ReasonOK},
		{"default still admitted", "api.anthropic.com:443", []string{"login"}, nil, ReasonOK},
		{"caveat still narrows a bound profile", "claude.ai:443", []string{"login"}, []guestroom.Caveat{{Key: "host", Value: "api.anthropic.com"}}, ReasonCaveat},
		{"profile port rules hold", "claude.ai:22", []string{"login"}, nil, dest.ReasonPortNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Check(ctx, Request{Target: tc.target, Verb: VerbConnect, Profiles: tc.profiles, Caveats: tc.caveats})
			if d.Reason != tc.reason {
				t.Fatalf("reason %s (%v), want %s", d.Reason, d.Err, tc.reason)
			}
		})
	}
	for _, tc := range []struct {
		name string
		b    map[string]string
		ok   bool
	}{
		{"none", nil, true},
		{"login", map[string]string{"profiles": "login"}, true},
		{"two", map[string]string{"profiles": "login,npm"}, true},
		{"unknown profile", map[string]string{"profiles": "everything"}, false},
		{"none cannot be bound", map[string]string{"profiles": "none"}, false},
		{"empty", map[string]string{"profiles": ""}, false},
		{"other key", map[string]string{"repo": "/x"}, false},
	} {
		if err := ValidateBindings(tc.b); (err == nil) != tc.ok {
			t.Errorf("%s: ValidateBindings = %v, ok want %v", tc.name, err, tc.ok)
		}
	}
}
