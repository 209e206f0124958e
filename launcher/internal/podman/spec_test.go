package podman

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
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
