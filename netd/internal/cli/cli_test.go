package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCheckCommand(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		args []string
		out  string
		err  string
	}{
		{[]string{"check", "--allow", ".x.test", "--resolve", "a.x.test=8.8.8.8", "A.X.test."}, "allow a.x.test:443: ok (rule .x.test)\n  address 8.8.8.8: public\n", ""},
		{[]string{"check", "--allow", "x.test", "--resolve", "x.test=8.8.8.8", "https://x.test/path"}, "allow x.test:443: ok (rule x.test)", ""},
		{[]string{"check", "--allow", "x.test", "--resolve", "x.test=8.8.8.8", "http://x.test/"}, "allow x.test:80: ok (rule x.test)", ""},
		{[]string{"check", "--allow", "x.test", "--resolve", "x.test=10.0.0.1", "x.test"}, "deny x.test:443: private_address (rule address_class)\n  address 10.0.0.1: private\n", "not allowed (private_address)"},
		{[]string{"check", "--allow", "x.test", "evil.test:443"}, "deny evil.test:443: not_allowlisted (rule allowlist)", "not allowed (not_allowlisted)"},
		{[]string{"check", "--allow", "x.test", "169.254.169.254"}, "deny 169.254.169.254:443: ip_literal", "not allowed (ip_literal)"},
		{[]string{"check", "0x7f.1:443"}, `bad_target "0x7f.1:443": bad_target (rule strict_parse)`, "not allowed (bad_target)"},
		{[]string{"check", "--config", "/nonexistent/netd.json", "x.test"}, "", "/nonexistent/netd.json"},
		{[]string{"check"}, "", "usage"},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		err := Run(ctx, tc.args, &out, io.Discard)
		if !strings.Contains(out.String(), tc.out) {
			t.Errorf("%v: output %q, want %q", tc.args, out.String(), tc.out)
		}
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.err)
		}
	}
}

func TestUsage(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := Run(ctx, []string{"version"}, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "netd ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
	for _, args := range [][]string{nil, {"frobnicate"}, {"serve", "extra"}, {"relay", "--listen"}, {"serve", "--log-level", "loud"}} {
		if err := Run(ctx, args, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if err := Run(ctx, []string{"relay", "--listen", "0.0.0.0:3128", "--door", "/nonexistent.sock"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("relay on a non-loopback address: %v", err)
	}
	if err := Run(ctx, []string{"serve", "--allow", "*.x.test"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "allow[0]") {
		t.Errorf("serve with a bad entry: %v", err)
	}
}

func TestRawDoor(t *testing.T) {
	for _, tc := range []struct{ path, token, want string }{
		{"/run/doors/netd.sock", "", "/run/doors/netd.sock"},
		{"unix:///run/doors/netd.sock", "", "/run/doors/netd.sock"},
		{"/run/doors/netd.sock", "tok", ""},
		{"127.0.0.1:7000", "tok", ""},
		{"127.0.0.1:7000", "", ""},
	} {
		if got := rawDoor(tc.path, tc.token); got != tc.want {
			t.Errorf("rawDoor(%q, %q) = %q, want %q", tc.path, tc.token, got, tc.want)
		}
	}
}
