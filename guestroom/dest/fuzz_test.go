package dest

import (
	"strings"
	"testing"
)

func FuzzParseHostPort(f *testing.F) {
	for _, s := range []string{
		"api.anthropic.com:443", "API.Anthropic.com.:443", "[::1]:443", "[::ffff:127.0.0.1]:80",
		"127.0.0.1:80", "0x7f.1:443", "2130706433:443", "a@b:443", "x.com#:1", "\u0430.com:443",
		"[fe80::1%25eth0]:443", "::1:443", "a..b:443", "*.x.com:443", "x.com:0443",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseHostPort(s)
		if err != nil {
			if Reason(err) != ReasonBadTarget {
				t.Fatalf("ParseHostPort(%q) error %v has reason %q", s, err, Reason(err))
			}
			return
		}
		if tg.Port == 0 || tg.Host == "" || len(tg.Host) > MaxNameLen+2 {
			t.Fatalf("ParseHostPort(%q) = %+v", s, tg)
		}
		if !tg.IsIP() {
			if strings.HasSuffix(tg.Host, ".") || strings.Trim(tg.Host, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
				t.Fatalf("ParseHostPort(%q): non-canonical host %q", s, tg.Host)
			}
			labels := strings.Split(tg.Host, ".")
			if numericLabel(labels[len(labels)-1]) {
				t.Fatalf("ParseHostPort(%q): numeric host %q taken as a name", s, tg.Host)
			}
		}
		again, err := ParseHostPort(tg.String())
		if err != nil || again != tg {
			t.Fatalf("canonical form %q of %q does not round-trip: %+v, %v", tg.String(), s, again, err)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"http://example.com/", "HTTP://Example.com.:80/a?b", "https://[::1]:8443", "http://u@x/",
		"http://x/#f", "http://x\\y/", "ftp://x/", "http://0x7f.1/", "http://x?y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			if r := Reason(err); r != ReasonBadTarget && r != ReasonBadScheme {
				t.Fatalf("ParseURL(%q) error %v has reason %q", s, err, r)
			}
			return
		}
		if !strings.HasPrefix(u.RequestURI, "/") {
			t.Fatalf("ParseURL(%q): request uri %q", s, u.RequestURI)
		}
		again, err := ParseURL(u.String())
		if err != nil || again != u {
			t.Fatalf("canonical form %q of %q does not round-trip: %+v, %v", u.String(), s, again, err)
		}
	})
}

func FuzzAllowlistMatch(f *testing.F) {
	f.Add(".anthropic.com", "evilanthropic.com:443")
	f.Add("api.example.com:8443", "API.example.com.:8443")
	f.Add(".x.com", "x.com.evil.com:443")
	f.Fuzz(func(t *testing.T, entry, target string) {
		e, err := ParseEntry(entry)
		if err != nil {
			return
		}
		tg, err := ParseHostPort(target)
		if err != nil {
			return
		}
		m, err := Allowlist{e}.Match(tg)
		if err != nil {
			return
		}
		if tg.IsIP() {
			t.Fatalf("ip literal %q matched %q", target, entry)
		}
		if m.Host != tg.Host && !(m.Suffix && strings.HasSuffix(tg.Host, "."+m.Host)) {
			t.Fatalf("%q matched %q outside its domain", target, entry)
		}
		if m.Port == 0 && tg.Port != 443 && tg.Port != 80 || m.Port != 0 && m.Port != tg.Port {
			t.Fatalf("%q matched %q on a port it does not admit", target, entry)
		}
	})
}
