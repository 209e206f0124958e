package scout

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/dest"
)

func TestValidateCaveats(t *testing.T) {
	for _, tc := range []struct {
		c  guestroom.Caveat
		ok bool
	}{
		{guestroom.Caveat{Key: "host", Value: "github.com,.githubusercontent.com"}, true},
		{guestroom.Caveat{Key: "host", Value: "*.github.com"}, false},
		{guestroom.Caveat{Key: "repo", Value: "octo/r"}, true},
		{guestroom.Caveat{Key: "repo", Value: "octo"}, false},
		{guestroom.Caveat{Key: "path", Value: "/x"}, false},
	} {
		if err := ValidateCaveats([]guestroom.Caveat{tc.c}); (err == nil) != tc.ok {
			t.Errorf("ValidateCaveats(%s) = %v, want ok=%v", tc.c, err, tc.ok)
		}
	}
}

// FuzzCheckURL: whatever the box sends, an admitted URL is https, names an
// allowlisted host by name, carries no userinfo, and re-parses to itself.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://good.test/x", "https://GOOD.test./x?y#z", "https://user@good.test/", "http://good.test/",
		"https://good.test:443/", "https://good.test:0443/", "https://127.0.0.1/", "https://[::1]/", "https://0x7f.1/",
		"file:///etc/passwd", "gopher://good.test/", "https://good.test\\@evil.test/", "https://evil.test%2f@good.test/",
		"https://www.good.test/a/../b", "HTTPS://sub.good.test", "https://good.test.evil.test/", "https:good.test",
	} {
		f.Add(s)
	}
	allow, _ := dest.ParseAllowlist("good.test,.sub.good.test")
	s := &Scout{allow: allow}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := s.checkURL(raw, scope{})
		if err != nil {
			if Classify(context.TODO(), err).Kind == KindInternal {
				t.Fatalf("unclassified refusal of %q: %v", raw, err)
			}
			return
		}
		if u.Scheme != "https" || u.Target.IsIP() {
			t.Fatalf("admitted %q as %+v", raw, u)
		}
		if _, err := allow.Match(u.Target); err != nil {
			t.Fatalf("admitted %q outside the allowlist", raw)
		}
		p, err := url.Parse(u.String())
		if err != nil || p.User != nil || !strings.EqualFold(p.Hostname(), u.Target.Host) {
			t.Fatalf("admitted %q, which net/url reads as host %q user %v (%v)", raw, p.Hostname(), p.User, err)
		}
	})
}
