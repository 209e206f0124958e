package cli

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/launcher/internal/engine"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// boxManifest is the manifest a box is told, from its environment.
func boxManifest(t *testing.T, b plan.Box) guestroom.Manifest {
	t.Helper()
	var m guestroom.Manifest
	if err := json.Unmarshal([]byte(b.Env[plan.EnvCapabilities]), &m); err != nil {
		t.Fatalf("%s: %v", plan.EnvCapabilities, err)
	}
	return m
}

// doorMounts are the door sockets mounted in a box, by their path inside.
func doorMounts(b plan.Box) []string {
	var out []string
	for _, m := range b.Mounts {
		if strings.HasPrefix(m.Dest, "/run/doors/") {
			out = append(out, m.Dest)
		}
	}
	return out
}

// TestLogin: login opens the account's box with the net door only, minted
// with netd's login profile for this launch, and revokes it after.
func TestLogin(t *testing.T) {
	runDir, minters := doorDaemons(t, "netd", "keeperd", "scoutd")
	fe := newFakeEngine()
	var box plan.Box
	var netLive []door.Minted
	fe.onRun = func(b plan.Box) {
		box, netLive = b, minters["netd"].Live()
		for _, d := range []string{"keeperd", "scoutd"} {
			if live := minters[d].Live(); len(live) != 0 {
				t.Errorf("%s minted %+v for a login", d, live)
			}
		}
	}
	env, _, errb := testEnv(t, runDir, nil, fe.connect)
	if err := Run(t.Context(), []string{"login", "work"}, env); err != nil {
		t.Fatalf("%v (stderr %q)", err, errb.String())
	}
	if len(netLive) != 1 || netLive[0].Account != "work" || !maps.Equal(netLive[0].Bindings, map[string]string{"profiles": "login"}) {
		t.Fatalf("netd minted %+v, want one door for work bound to profiles=login", netLive)
	}
	m := boxManifest(t, box)
	var told []string
	for _, d := range m.Doors {
		told = append(told, d.Name)
	}
	if !slices.Equal(told, []string{plan.DoorNet}) || m.Network != string(plan.NetworkPoliced) || m.Account != "work" {
		t.Fatalf("manifest doors %q network %q account %q, want only the net door, policed, for work", told, m.Network, m.Account)
	}
	if !strings.HasSuffix(m.Doors[0].Grants, "widened for this launch by netd profiles: login") {
		t.Fatalf("net door card %q does not say it is widened", m.Doors[0].Grants)
	}
	if got := doorMounts(box); !slices.Equal(got, []string{m.Doors[0].Socket}) {
		t.Fatalf("door sockets mounted %q, want only the net door's", got)
	}
	if got := fe.called("EnsureVolume"); !slices.Equal(got, []string{"EnsureVolume claude-work-config"}) {
		t.Fatalf("volumes %q", got)
	}
	if live := minters["netd"].Live(); len(live) != 0 {
		t.Fatalf("the login's net door is still live after it: %+v", live)
	}
}

func TestLoginRefusals(t *testing.T) {
	cases := []struct {
		name string
		args []string
		why  string
	}{
		{"two accounts", []string{"work", "home"}, "usage: login takes at most one ACCOUNT"},
		{"a flag", []string{"--net"}, `usage: login takes no flags, got "--net": it opens a box with only the net door`},
		{"a bad account", []string{"a/b"}, `usage: bad account name "a/b": it must match ^[A-Za-z0-9._-]+$`},
	}
	for _, r := range Reserved {
		if r == "help" {
			continue // `login help` is login's help: TestLoginHelp
		}
		cases = append(cases, struct {
			name string
			args []string
			why  string
		}{"subcommand " + r, []string{r}, `usage: "` + r + `" is a subcommand, not an account`})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, _, _ := testEnv(t, t.TempDir(), nil, noConnect(t))
			err := Run(t.Context(), append([]string{"login"}, tc.args...), env)
			if err == nil || err.Error() != tc.why || ExitCode(err) != 2 {
				t.Fatalf("login %q: %v (exit %d), want exit 2: %s", tc.args, err, ExitCode(err), tc.why)
			}
		})
	}
}

// TestLoginHelp: login takes no flags of its own, yet shows its help.
func TestLoginHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"work", "--help"}} {
		env, out, _ := testEnv(t, t.TempDir(), nil, noConnect(t))
		if err := Run(t.Context(), append([]string{"login"}, args...), env); err != nil || !strings.Contains(out.String(), "claude-box login [ACCOUNT]") {
			t.Fatalf("login %q: %v\n%s", args, err, out.String())
		}
	}
}

// TestDoctor: doctor reports each check on a line of its own, FAIL with a
// hint where one fails, and exits 1 when any does.
func TestDoctor(t *testing.T) {
	all := []string{"netd", "keeperd", "scoutd"}
	pinned := map[string]string{"CLAUDE_BOX_IMAGE_DIGEST": fakeImageID}
	fresh := engine.BoxInfo{Name: "claude-box-work-new", State: "running", Account: "work", Image: strings.TrimPrefix(fakeImageID, "sha256:")}
	cases := []struct {
		name    string
		daemons []string
		vars    map[string]string
		boxes   []engine.BoxInfo
		// lines must all be printed ($RUN is the daemons' run dir); fails
		// is how many start with FAIL.
		lines []string
		fails int
	}{
		{"all ok", all, pinned, []engine.BoxInfo{fresh}, []string{
			"ok   podman 5.0.0 at unix:///run/fake/podman.sock (rootless=false, cgroups v2)",
			"ok   image localhost/claude-box:latest = sha256:1111 (pin: sha256:1111)",
			"ok   box claude-box-work-new (running, account work)",
			"ok   netd test at $RUN/netd.sock, 0 live launches",
			"ok   keeperd test at $RUN/keeperd.sock, 0 live launches",
			"ok   scoutd test at $RUN/scoutd.sock, 0 live launches",
		}, 0},
		{"image pin mismatch", all, map[string]string{"CLAUDE_BOX_IMAGE_DIGEST": "sha256:9999"}, nil, []string{
			"FAIL image localhost/claude-box:latest: image does not match its pinned digest: pinned sha256:9999, image is sha256:1111 (digest sha256:2222)",
		}, 1},
		{"stale box on an old image", all, pinned, []engine.BoxInfo{fresh, {Name: "claude-box-work-old", State: "running", Account: "work", Image: "0000"}}, []string{
			"ok   box claude-box-work-new (running, account work)",
			"FAIL stale box claude-box-work-old (running, account work) runs an old image 0000; stop it with `podman rm -f claude-box-work-old`",
		}, 1},
		{"door daemon absent", []string{"netd", "keeperd"}, pinned, nil, []string{
			"ok   netd test at $RUN/netd.sock, 0 live launches",
			"FAIL scoutd: door daemon is not running: no control socket at $RUN/scoutd.sock",
			"     hint: claude-box doors start (or nix run .#scoutd -- serve)",
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runDir, _ := doorDaemons(t, tc.daemons...)
			fe := newFakeEngine()
			fe.boxes = tc.boxes
			env, out, _ := testEnv(t, runDir, tc.vars, fe.connect)
			err := Run(t.Context(), []string{"doctor"}, env)
			want := 0
			if tc.fails > 0 {
				want = 1
			}
			if ExitCode(err) != want || (err != nil && Message(err) != "") {
				t.Fatalf("exit %d (%v), want %d and nothing more on stderr", ExitCode(err), err, want)
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			for _, l := range tc.lines {
				if l = strings.ReplaceAll(l, "$RUN", runDir); !slices.Contains(got, l) {
					t.Errorf("missing line %q", l)
				}
			}
			fails := 0
			for _, l := range got {
				if strings.HasPrefix(l, "FAIL") {
					fails++
				}
			}
			if fails != tc.fails {
				t.Errorf("%d FAIL lines, want %d", fails, tc.fails)
			}
			if t.Failed() {
				t.Logf("doctor said:\n%s", out.String())
			}
			if calls := fe.recorded(); len(calls) != 0 {
				t.Fatalf("doctor changed something: %q", calls)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	saved := plan.PinnedDigest
	t.Cleanup(func() { plan.PinnedDigest = saved })
	cases := []struct {
		name, pin, want string
	}{
		{"no pin", "", "claude-box 1.2.3\n"},
		{"pinned", "sha256:abc", "claude-box 1.2.3\nimage pin sha256:abc\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan.PinnedDigest = tc.pin
			env, out, _ := testEnv(t, t.TempDir(), nil, noConnect(t))
			if err := Run(t.Context(), []string{"version"}, env); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Fatalf("version printed %q, want %q", out.String(), tc.want)
			}
		})
	}
}
