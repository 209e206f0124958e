package podman

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// launch is one launch to plan, as the CLI would ask for it.
type launch struct {
	rooms    []string
	specs    []guestroom.DoorSpec
	open     bool
	repo     *plan.RepoPlan
	rootless bool
	args     []string
}

// testSockets are the control sockets the test launches mint through.
var testSockets = plan.ControlSockets{RunDir: "/home/u/.claude-box/run"}

// mintedSocket is where a daemon mints the test launch's door: in a
// directory of its own beside its control socket, as the daemons do.
func mintedSocket(g guestroom.Grant) string {
	ctl := plan.ControlSocketFor(g, testSockets)
	return filepath.Join(filepath.Dir(ctl), plan.Daemon(g.Door.Name)+".doors", "0123456789ab.sock")
}

// spec plans l as a launch would and returns podman's spec for it.
func (l launch) spec(t *testing.T) *specgen.SpecGenerator {
	t.Helper()
	cat, err := plan.Catalog(testSockets)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cat.Grant(l.rooms, l.specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.ValidateGrants(g); err != nil {
		t.Fatal(err)
	}
	req := plan.Request{
		Account: "work", LaunchID: "0123456789ab", ImageID: "sha256:1d", ImageDigest: "sha256:d1",
		Grants: g, Denied: cat.Denied(g), NetOpen: l.open, Repo: l.repo, ClaudeArgs: l.args,
		Rootless: l.rootless, PidsByRlimit: l.rootless, SeccompPath: "/home/u/.claude-box/seccomp/x.json", Nofile: 1024, Stdin: true,
	}
	for _, x := range g {
		req.Sockets = append(req.Sockets, plan.Socket{Grant: x, HostSocket: mintedSocket(x)})
	}
	p, err := plan.Build(req)
	if err != nil {
		t.Fatal(err)
	}
	return Spec(p.Box)
}

// TestSpecGolden pins the podman container spec of representative launches.
func TestSpecGolden(t *testing.T) {
	repo := &plan.RepoPlan{Root: "/home/u/src/site", Mounts: []plan.Mount{
		{Source: "/home/u/src/site", Dest: "/work", ReadOnly: true},
		{Source: "/home/u/src/site/src", Dest: "/work/src"},
		{Source: "/home/u/src/site/.git", Dest: "/work/.git", ReadOnly: true},
	}}
	cases := []struct {
		name string
		launch
		// check asserts what the golden must hold, beyond matching it.
		check func(t *testing.T, s *specgen.SpecGenerator)
	}{
		{name: "no-doors"},
		{name: "dev-repo-writable", launch: launch{rooms: []string{"dev"}, repo: repo, args: []string{"--resume"}}},
		{name: "scout-caveat-rootless", launch: launch{specs: []guestroom.DoorSpec{{Name: "scout", Caveats: []guestroom.Caveat{{Key: "host", Value: "github.com"}}}}, rootless: true}},
		{name: "net-open", launch: launch{open: true}},
		{
			// --door vault@/home/u/vault/control.sock: a door outside the
			// catalog is mounted at /run/NAME.sock and named by $NAME_SOCK.
			name:   "generic-door",
			launch: launch{specs: []guestroom.DoorSpec{{Name: "vault", HostSocket: "/home/u/vault/control.sock"}}},
			check: func(t *testing.T, s *specgen.SpecGenerator) {
				want := []spec.Mount{{Type: "bind", Source: "/home/u/vault/vault.doors/0123456789ab.sock", Destination: "/run/vault.sock", Options: []string{"bind", "rw", "nosuid", "nodev"}}}
				var got []spec.Mount
				for _, m := range s.Mounts {
					if strings.HasPrefix(m.Destination, "/run/") {
						got = append(got, m)
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("door mounts %+v, want %+v", got, want)
				}
				if s.Env["VAULT_SOCK"] != "/run/vault.sock" {
					t.Errorf("VAULT_SOCK = %q, want /run/vault.sock", s.Env["VAULT_SOCK"])
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.spec(t)
			if c.check != nil {
				c.check(t, s)
			}
			got, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", c.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if string(got) != string(want) {
				t.Fatalf("spec differs from %s (go test -update to accept):\n%s", path, got)
			}
		})
	}
}

// A network value the spec does not know gets no network, never podman's
// default: only the empty value (the --net-open posture) opens it.
func TestUnknownNetworkIsNone(t *testing.T) {
	for _, n := range []string{"none", "bridge", "host", "slirp4netns", "pasta", " "} {
		if s := Spec(plan.Box{Image: "sha256:x", Network: n}); s.NetNS != (specgen.Namespace{NSMode: specgen.NoNetwork}) {
			t.Errorf("network %q: netns %+v, want %q", n, s.NetNS, specgen.NoNetwork)
		}
	}
	if s := Spec(plan.Box{Image: "sha256:x"}); s.NetNS != (specgen.Namespace{}) {
		t.Errorf("the open posture: netns %+v, want podman's default", s.NetNS)
	}
}

// proxyKeys are the proxy variables of a policed box.
var proxyKeys = []string{"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy", "NO_PROXY", "no_proxy"}

// TestPostureReachesSpec: for every network posture a launch can ask for,
// what podman is told is what the manifest in the box says. The box has no
// network namespace but lo exactly when the manifest says "none" or
// "policed", and podman's default network when it says "open"; the proxy
// environment points at the in-box relay exactly when the net door is
// granted, and is otherwise absent.
func TestPostureReachesSpec(t *testing.T) {
	door := func(names ...string) []guestroom.DoorSpec {
		var out []guestroom.DoorSpec
		for _, n := range names {
			out = append(out, guestroom.DoorSpec{Name: n})
		}
		return out
	}
	cases := []struct {
		name string
		launch
		network plan.Network
		// proxy: the net door is granted, so the relay's proxy env is set.
		proxy bool
	}{
		{name: "no doors", network: plan.NetworkNone},
		{name: "a door that is not net", launch: launch{specs: door("scout")}, network: plan.NetworkNone},
		{name: "keeper and scout", launch: launch{specs: door("keeper", "scout")}, network: plan.NetworkNone},
		{name: "a generic door", launch: launch{specs: []guestroom.DoorSpec{{Name: "vault", HostSocket: "/home/u/vault/control.sock"}}}, network: plan.NetworkNone},
		{name: "the net door", launch: launch{specs: door("net")}, network: plan.NetworkPoliced, proxy: true},
		{name: "the dev room", launch: launch{rooms: []string{"dev"}}, network: plan.NetworkPoliced, proxy: true},
		{name: "net-open", launch: launch{open: true}, network: plan.NetworkOpen},
		{name: "scout and net-open", launch: launch{specs: door("scout"), open: true}, network: plan.NetworkOpen},
		// The open network and the net door exclude each other: plan.Build
		// refuses them (TestPostureTable), so podman is never told.
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.spec(t)
			var m guestroom.Manifest
			if err := json.Unmarshal([]byte(s.Env[plan.EnvCapabilities]), &m); err != nil {
				t.Fatalf("the box's manifest: %v", err)
			}
			if plan.Network(m.Network) != c.network {
				t.Fatalf("manifest network %q, want %q", m.Network, c.network)
			}
			// What podman is told, from the manifest alone.
			switch plan.Network(m.Network) {
			case plan.NetworkNone, plan.NetworkPoliced:
				if s.NetNS != (specgen.Namespace{NSMode: specgen.NoNetwork}) {
					t.Errorf("manifest says %q, podman gets netns %+v, want %q", m.Network, s.NetNS, specgen.NoNetwork)
				}
			case plan.NetworkOpen:
				if s.NetNS != (specgen.Namespace{}) || len(s.Networks) != 0 {
					t.Errorf("manifest says open, podman gets netns %+v and networks %v, want its default network", s.NetNS, s.Networks)
				}
			default:
				t.Fatalf("manifest network %q is no posture", m.Network)
			}
			netDoor := false
			for _, d := range m.Doors {
				netDoor = netDoor || d.Name == plan.DoorNet
			}
			if netDoor != c.proxy {
				t.Fatalf("manifest grants the net door: %v, want %v", netDoor, c.proxy)
			}
			want := map[string]string{}
			if c.proxy {
				want = plan.ProxyEnv()
			}
			for _, k := range proxyKeys {
				got, ok := s.Env[k]
				if w, wok := want[k]; ok != wok || got != w {
					t.Errorf("%s = %q (set %v), want %q (set %v)", k, got, ok, w, wok)
				}
			}
			// The net door's socket reaches the box exactly when it is granted.
			mounted := slices.ContainsFunc(s.Mounts, func(mt spec.Mount) bool { return mt.Destination == plan.NetSocket })
			if mounted != c.proxy {
				t.Errorf("net door mounted: %v, want %v", mounted, c.proxy)
			}
		})
	}
}
