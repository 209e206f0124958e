package cli

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/launcher/internal/engine"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

func TestCheckPin(t *testing.T) {
	img := engine.Image{ID: "sha256:aaa", Digest: "sha256:bbb", RepoDigests: []string{"localhost/claude-box@sha256:ccc"}}
	for _, pin := range []string{"", "sha256:aaa", "aaa", "sha256:bbb", "sha256:ccc"} {
		if err := checkPin(img, pin); err != nil {
			t.Errorf("pin %q: %v", pin, err)
		}
	}
	if err := checkPin(img, "sha256:ddd"); !errors.Is(err, ErrPin) {
		t.Fatalf("mismatch: %v", err)
	}
}

func TestControlSocketsAndImageRef(t *testing.T) {
	env := map[string]string{"HOME": "/h", "KEEPERD_SOCK": "/k.sock"}
	get := func(k string) string { return env[k] }
	cs := controlSockets(get, "")
	if cs.For("netd") != "/h/.claude-box/run/netd.sock" || cs.For("keeperd") != "/k.sock" {
		t.Fatalf("%+v", cs)
	}
	env["CLAUDE_BOX_RUN_DIR"] = "/run/x"
	if controlSockets(get, "").For("scoutd") != "/run/x/scoutd.sock" || controlSockets(get, "/flag").For("scoutd") != "/flag/scoutd.sock" {
		t.Fatal("run dir precedence")
	}
	if imageRef("", get) != plan.DefaultImage || imageRef("a", get) != "a" {
		t.Fatal("image default")
	}
	env["CLAUDE_BOX_IMAGE"] = "b"
	if imageRef("", get) != "b" {
		t.Fatal("image env")
	}
}

// An unsafe escape and the door it would undermine are refused together,
// whichever way the door was asked for: --repo-rw with the keeper door (a
// writable .git could steer keeperd), --net-open with the net door (the
// door would police nothing). Both are usage errors; the second has a hint.
func TestUnsafeEscapeRefusedWithItsDoor(t *testing.T) {
	cat, err := plan.Catalog(plan.ControlSockets{RunDir: "/run/test"})
	if err != nil {
		t.Fatal(err)
	}
	const repoRW, netOpen = "--repo-rw cannot be combined with the keeper door", "--net-open cannot be combined with the net door"
	cases := []struct {
		name string
		args LaunchArgs
		// refused is the refusal's text, "" when the launch may go on.
		refused string
		hint    string
	}{
		{"keeper alone", LaunchArgs{Keeper: true}, "", ""},
		{"repo-rw alone", LaunchArgs{RepoRW: true}, "", ""},
		{"repo-rw with net", LaunchArgs{RepoRW: true, Net: true}, "", ""},
		{"repo-rw with --keeper", LaunchArgs{RepoRW: true, Keeper: true}, repoRW, ""},
		{"repo-rw with the dev room", LaunchArgs{RepoRW: true, Rooms: []string{"dev"}}, repoRW, ""},
		{"repo-rw with --door keeper", LaunchArgs{RepoRW: true, Doors: []string{"keeper"}}, repoRW, ""},
		{"net-open alone", LaunchArgs{NetOpen: true}, "", ""},
		{"net alone", LaunchArgs{Net: true}, "", ""},
		{"net-open with keeper and scout", LaunchArgs{NetOpen: true, Keeper: true, Scout: true}, "", ""},
		{"net-open with --net", LaunchArgs{NetOpen: true, Net: true}, netOpen, "use --net"},
		{"net-open with the dev room", LaunchArgs{NetOpen: true, Rooms: []string{"dev"}}, netOpen, "use --net"},
		{"net-open with --door net", LaunchArgs{NetOpen: true, Doors: []string{"net:host=example.com"}}, netOpen, "use --net"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := grants(tc.args, cat)
			if err != nil {
				t.Fatal(err)
			}
			err = errors.Join(refuseRepoRWWithKeeper(tc.args, g), refuseNetOpenWithNetDoor(tc.args, g))
			if (tc.refused != "") != (err != nil) {
				t.Fatalf("err = %v, want refused %q", err, tc.refused)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.refused) || ExitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want the usage error %q", err, ExitCode(err), tc.refused)
			}
			var h *HintedError
			if tc.hint != "" && (!errors.As(err, &h) || !strings.Contains(h.Hint, tc.hint)) {
				t.Fatalf("err = %v, want a hint with %q", err, tc.hint)
			}
		})
	}
}

func TestProfileWidensOnlyTheNetDoor(t *testing.T) {
	cat, err := plan.Catalog(plan.ControlSockets{RunDir: "/run/test"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseLaunch([]string{"--net", "--profile", "login", "--profile", "github-read"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := grants(a, cat)
	if err != nil {
		t.Fatal(err)
	}
	w, err := widenNet(a.Profiles, g)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(w[0].Door.Grants, "widened for this launch by netd profiles: login, github-read") {
		t.Fatalf("net card = %q", w[0].Door.Grants)
	}
	if strings.Contains(g[0].Door.Grants, "widened") {
		t.Fatal("widenNet changed its input")
	}
	noNet, _ := grants(LaunchArgs{Scout: true}, cat)
	if _, err := widenNet([]string{"login"}, noNet); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "add --net") {
		t.Fatalf("profile without net: %v", err)
	}
	for _, bad := range []string{"Login", "../x", "", "a b"} {
		if _, err := ParseLaunch([]string{"--net", "--profile", bad}); !errors.Is(err, ErrUsage) {
			t.Errorf("--profile %q: err = %v, want usage", bad, err)
		}
	}
}

// On macOS podman runs in a VM that unix sockets do not cross: doors are
// refused there with a hint, --repo alone is not, and Linux is untouched.
func TestDoorsRefusedInAVM(t *testing.T) {
	for _, c := range []struct {
		goos    string
		doors   bool
		refused bool
	}{
		{"darwin", true, true},
		{"darwin", false, false},
		{"linux", true, false},
		{"linux", false, false},
	} {
		err := refuseDoorsInAVM(c.goos, c.doors)
		if got := errors.Is(err, ErrDoorsInAVM); got != c.refused {
			t.Errorf("%s doors=%v: %v, want refused=%v", c.goos, c.doors, err, c.refused)
		}
		var he *HintedError
		if c.refused && (!errors.As(err, &he) || !strings.Contains(he.Hint, "--room tool") || ExitCode(err) != 125) {
			t.Errorf("%s: %v (exit %d), want exit 125 with a hint to launch without doors", c.goos, err, ExitCode(err))
		}
	}
}

// TestRemoteBindsRefused: doors and --repo bind paths on podman's host, so
// a podman reached on another host refuses them; loopback is this machine.
func TestRemoteBindsRefused(t *testing.T) {
	cases := []struct {
		uri         string
		doors, repo bool
		refused     bool
	}{
		{"unix:///run/podman/podman.sock", true, true, false},
		{"ssh://me@127.0.0.1:2222/run/user/1000/podman/podman.sock", true, true, false},
		{"ssh://me@localhost/run/podman/podman.sock", true, false, false},
		{"ssh://me@[::1]:22/run/podman/podman.sock", false, true, false},
		{"ssh://me@build.example:22/run/podman/podman.sock", true, false, true},
		{"ssh://me@10.0.0.5/run/podman/podman.sock", false, true, true},
		{"tcp://192.168.1.9:8888", true, true, true},
		{"ssh://me@build.example/run/podman/podman.sock", false, false, false},
	}
	for _, c := range cases {
		err := refuseRemoteBinds(c.uri, c.doors, c.repo)
		if got := errors.Is(err, ErrRemoteBinds); got != c.refused {
			t.Errorf("%s doors=%v repo=%v: %v, want refused=%v", c.uri, c.doors, c.repo, err, c.refused)
		}
		if c.refused {
			u, _ := url.Parse(c.uri)
			var he *HintedError
			if !strings.Contains(err.Error(), "runs on "+u.Hostname()) || !errors.As(err, &he) || he.Hint != "run claude-box on "+u.Hostname()+" itself, or launch without doors and --repo" {
				t.Errorf("%s: %v does not name the host and the way out", c.uri, err)
			}
		}
	}
	if hintFor("ssh://me@h/x") != sshHint || hintFor("unix:///x") != podmanHint || hintFor("") != podmanHint {
		t.Error("hintFor picks the wrong hint")
	}
}

// TestRlimitCeiling: rootless on cgroup v1 carries the pids limit in
// RLIMIT_NPROC, but only where the kernel counts it per user namespace.
func TestRlimitCeiling(t *testing.T) {
	cases := []struct {
		cgroups, kernel string
		want            bool
		refused         string
	}{
		{"v2", "6.1.0-13-amd64", false, ""},
		{"v2", "4.18.0-348.el8.x86_64", false, ""},
		{"v1", "6.18.44-fc-v1147", true, ""},
		{"v1", "5.14.0-70.el9.x86_64", true, ""},
		{"v1", "5.15", true, ""},
		{"v1", "5.13.19", false, "kernel 5.13 (before 5.14)"},
		{"v1", "4.18.0-348.el8.x86_64", false, "kernel 4.18 (before 5.14)"},
		{"v1", "garbage", false, `kernel "garbage", which the launcher cannot read`},
	}
	for _, c := range cases {
		got, err := rlimitCeiling(engine.Info{Rootless: true, Cgroups: c.cgroups, Kernel: c.kernel})
		if c.refused == "" {
			if err != nil || got != c.want {
				t.Errorf("%s %s: %v %v, want %v", c.cgroups, c.kernel, got, err, c.want)
			}
			continue
		}
		var he *HintedError
		if !errors.Is(err, ErrNoProcessCeiling) || !strings.Contains(err.Error(), c.refused) || !errors.As(err, &he) || he.Hint == "" {
			t.Errorf("%s %s: %v, want ErrNoProcessCeiling naming %q with a hint", c.cgroups, c.kernel, err, c.refused)
		}
	}
}

// TestDryRunNamesUnsafeEscapes: --net-open and --repo-rw are recorded in
// the manifest the box would be told.
func TestDryRunNamesUnsafeEscapes(t *testing.T) {
	repo := gitRepo(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"none", []string{"--repo", repo}, ""},
		{"--net-open", []string{"--net-open"}, "net-open"},
		{"--repo-rw", []string{"--repo", repo, "--repo-rw"}, "repo-rw"},
		{"both", []string{"--net-open", "--repo", repo, "--repo-rw"}, "net-open,repo-rw"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fe := newFakeEngine()
			env, out, errb := testEnv(t, t.TempDir(), nil, fe.connect)
			if err := Run(t.Context(), append([]string{"--dry-run"}, tc.args...), env); err != nil {
				t.Fatalf("%v (stderr %q)", err, errb.String())
			}
			var dry struct {
				Manifest struct {
					Extra map[string]string `json:"extra"`
				} `json:"manifest"`
			}
			if err := json.Unmarshal([]byte(out.String()), &dry); err != nil {
				t.Fatal(err)
			}
			if got := dry.Manifest.Extra[plan.ExtraUnsafe]; got != tc.want {
				t.Fatalf("manifest extra.%s = %q, want %q", plan.ExtraUnsafe, got, tc.want)
			}
			if calls := fe.recorded(); len(calls) != 0 {
				t.Fatalf("a dry run made %q", calls)
			}
		})
	}
}
