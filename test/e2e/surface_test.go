package e2e

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
)

// jsonish renders a log record for substring checks.
func jsonish(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// TestSurfaceIsHonest: for several grant sets, $CLAUDE_BOX_CAPABILITIES and
// the rulebook handed to claude name exactly the door sockets that exist in
// the box, and the network posture the box really has.
func TestSurfaceIsHonest(t *testing.T) {
	w := newWorld(t)
	w.startScoutd(t, nil, "")
	w.startNetd(t, nil)
	repo := newKeeperRepo(t, w)
	w.startKeeperd(t, repo)

	cases := []struct {
		name    string
		flags   []string
		sockets []string
		network string
	}{
		{"none", nil, nil, "none"},
		{"scout", []string{"--scout"}, []string{"/run/doors/scoutd.sock"}, "none"},
		{"net", []string{"--net"}, []string{"/run/doors/netd.sock"}, "policed"},
		{"dev", []string{"--room", "dev", "--repo", repo.dir}, []string{"/run/doors/keeperd.sock", "/run/doors/netd.sock", "/run/doors/scoutd.sock"}, "policed"},
		{"open", []string{"--net-open"}, nil, "open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"e2e-surface"}, tc.flags...), "--", "probe", "surface")
			res := w.ok(t, args...)
			r := res.probe(t)
			m := manifest(t, r)

			// The sockets the manifest names are exactly the ones present.
			var named []string
			for _, d := range m.Doors {
				named = append(named, d.Socket)
				if got := r.Env[d.Env]; got != d.Socket {
					t.Errorf("door %s: $%s = %q, want %q", d.Name, d.Env, got, d.Socket)
				}
				if got := r.Connect[d.Socket]; got != "ok" {
					t.Errorf("door %s: connect %s = %q, want ok", d.Name, d.Socket, got)
				}
			}
			sort.Strings(named)
			want := slices.Clone(tc.sockets)
			sort.Strings(want)
			if !slices.Equal(named, want) {
				t.Errorf("manifest doors' sockets = %v, want %v", named, want)
			}
			if !slices.Equal(r.Sockets, want) {
				t.Errorf("sockets in the box = %v, want %v (what the manifest names)", r.Sockets, want)
			}

			// The network the manifest claims is the one the box has.
			if m.Network != tc.network {
				t.Errorf("manifest network = %q, want %q", m.Network, tc.network)
			}
			onlyLo := len(r.Interfaces) == 1 && r.Interfaces[0] == "lo"
			if (m.Network == "open") == onlyLo {
				t.Errorf("interfaces = %v for network %q", r.Interfaces, m.Network)
			}
			if m.Network == "open" && !strings.Contains(res.stderr, "WARNING: --net-open") {
				t.Errorf("--net-open launched without its warning\n%s", res)
			}
			proxy, hasProxy := r.Env["HTTPS_PROXY"]
			if (m.Network == "policed") != hasProxy {
				t.Errorf("network %q but HTTPS_PROXY=%q (set: %v)", m.Network, proxy, hasProxy)
			}

			// The rulebook tells claude the same.
			rb := r.Files["/tmp/rulebook.txt"]
			if strings.HasPrefix(rb, "error: ") {
				t.Fatalf("fake claude got no --append-system-prompt: %s\n%s", rb, res)
			}
			if !strings.Contains(rb, "Network: "+m.Network) {
				t.Errorf("rulebook does not state network %q:\n%s", m.Network, rb)
			}
			if !strings.Contains(rb, "Account: e2e-surface") {
				t.Errorf("rulebook does not state the account:\n%s", rb)
			}
			granted, denied, _ := strings.Cut(rb, "## DENIED")
			for _, d := range m.Doors {
				if !strings.Contains(granted, "### "+d.Name) || !strings.Contains(granted, "Socket: "+d.Socket) {
					t.Errorf("rulebook GRANTED lacks door %s at %s:\n%s", d.Name, d.Socket, rb)
				}
			}
			for _, d := range m.Denied {
				if !strings.Contains(denied, "- "+d.Name+":") {
					t.Errorf("rulebook DENIED lacks %s:\n%s", d.Name, rb)
				}
				for _, g := range m.Doors {
					if g.Name == d.Name {
						t.Errorf("door %s is both granted and denied", d.Name)
					}
				}
			}
			accounted := len(m.Doors) + len(m.Denied)
			if m.Network == "open" {
				accounted++ // the ambient network supersedes the net door
			}
			if accounted < 3 {
				t.Errorf("manifest names %d granted + %d denied doors, want all three presets accounted for", len(m.Doors), len(m.Denied))
			}
		})
	}
}
