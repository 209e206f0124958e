package plan

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/launcher/internal/entry"
)

func TestValidateAccount(t *testing.T) {
	for _, ok := range []string{"personal", "work", "a.b", "A-9_z", "x"} {
		if err := ValidateAccount(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "ü", "a:b", "-" + strings.Repeat("x", 64), "x\n"} {
		err := ValidateAccount(bad)
		if !errors.Is(err, ErrBadAccount) {
			t.Errorf("%q: got %v, want ErrBadAccount", bad, err)
		}
	}
	if err := ValidateAccount("a/b"); !strings.Contains(err.Error(), AccountRule) {
		t.Errorf("error does not state the rule: %v", err)
	}
}

func TestVolumeNames(t *testing.T) {
	if got := VolumeName("work"); got != "claude-work-config" {
		t.Fatalf("VolumeName = %q", got)
	}
	for vol, want := range map[string]string{"claude-work-config": "work", "claude-a.b-config": "a.b", "claude--config": "", "other": "", "claude-x-configs": ""} {
		got, ok := AccountFromVolume(vol)
		if got != want || ok != (want != "") {
			t.Errorf("AccountFromVolume(%q) = %q, %v", vol, got, ok)
		}
	}
}

func testCatalog(t *testing.T) guestroom.Catalog {
	t.Helper()
	cat, err := Catalog(ControlSockets{RunDir: "/home/u/.claude-box/run", Override: map[string]string{"scoutd": "/srv/scoutd.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestCatalogAndRooms(t *testing.T) {
	cat := testCatalog(t)
	cases := []struct {
		name  string
		rooms []string
		specs []string
		want  []string
	}{
		{"tool", []string{"tool"}, nil, nil},
		{"read", []string{"read"}, nil, []string{"scout"}},
		{"dev", []string{"dev"}, nil, []string{"net", "keeper", "scout"}},
		{"presets", nil, []string{"keeper", "net"}, []string{"net", "keeper"}},
		{"dev plus caveat", []string{"dev"}, []string{"scout:host=github.com"}, []string{"net", "keeper", "scout"}},
		{"generic", nil, []string{"vault@/srv/vault.sock"}, []string{"vault"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var specs []guestroom.DoorSpec
			for _, s := range c.specs {
				d, err := guestroom.ParseDoorSpec(s)
				if err != nil {
					t.Fatal(err)
				}
				specs = append(specs, d)
			}
			g, err := cat.Grant(c.rooms, specs)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, x := range g {
				names = append(names, x.Door.Name)
			}
			if !slices.Equal(names, c.want) {
				t.Fatalf("granted %v, want %v", names, c.want)
			}
		})
	}
	g, _ := cat.Grant(nil, []guestroom.DoorSpec{{Name: "net"}, {Name: "scout"}, {Name: "vault"}})
	cs := ControlSockets{RunDir: "/r", Override: map[string]string{"scoutd": "/srv/scoutd.sock"}}
	for i, want := range []string{"/home/u/.claude-box/run/netd.sock", "/srv/scoutd.sock", "/r/vault.sock"} {
		if got := ControlSocketFor(g[i], cs); got != want {
			t.Errorf("%s: control socket %s, want %s", g[i].Door.Name, got, want)
		}
	}
	if _, err := cat.Grant([]string{"nope"}, nil); !errors.Is(err, guestroom.ErrUnknownRoom) {
		t.Fatalf("unknown room: %v", err)
	}
	for _, d := range []string{"netd", "keeperd", "scoutd"} {
		g, err := cat.Grant(nil, []guestroom.DoorSpec{{Name: d}})
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateGrants(g); !errors.Is(err, ErrBadPlan) {
			t.Errorf("generic door %q: %v, want refused", d, err)
		}
	}
}

// TestPostureTable covers every combination of the net door and --net-open
// (with and without other doors) and asserts that the manifest states
// exactly what podman was told.
func TestPostureTable(t *testing.T) {
	cat := testCatalog(t)
	type row struct {
		doors   []string
		open    bool
		network Network
		podman  string
		proxy   bool
	}
	var rows []row
	for _, doors := range [][]string{nil, {"net"}, {"scout"}, {"net", "keeper", "scout"}, {"keeper"}} {
		for _, open := range []bool{false, true} {
			hasNet := slices.Contains(doors, "net")
			r := row{doors: doors, open: open, network: NetworkNone, podman: "none"}
			if hasNet {
				r.network, r.proxy = NetworkPoliced, true
			}
			if open {
				r.network, r.podman = NetworkOpen, ""
			}
			rows = append(rows, r)
		}
	}
	for _, r := range rows {
		t.Run(strings.Join(r.doors, "+")+map[bool]string{true: "/open", false: ""}[r.open], func(t *testing.T) {
			var specs []guestroom.DoorSpec
			for _, d := range r.doors {
				specs = append(specs, guestroom.DoorSpec{Name: d})
			}
			g, err := cat.Grant(nil, specs)
			if err != nil {
				t.Fatal(err)
			}
			req := baseRequest(g)
			req.Denied = cat.Denied(g)
			req.NetOpen = r.open
			p, err := Build(req)
			if r.open && slices.Contains(r.doors, "net") {
				// The ambient network and the net door exclude each other:
				// the door would police nothing.
				if !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), "exclude each other") {
					t.Fatalf("Build = %v, want the net door and --net-open refused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var m guestroom.Manifest
			if err := json.Unmarshal([]byte(p.Box.Env[EnvCapabilities]), &m); err != nil {
				t.Fatal(err)
			}
			if Network(m.Network) != r.network || p.Posture.Network != r.network {
				t.Errorf("manifest network %q, posture %q, want %q", m.Network, p.Posture.Network, r.network)
			}
			if p.Box.Network != r.podman {
				t.Errorf("podman network %q, want %q", p.Box.Network, r.podman)
			}
			// manifest == podman: "none" exactly when podman has no network.
			if (m.Network == "open") != (p.Box.Network != "none") {
				t.Errorf("manifest says %q but podman network is %q", m.Network, p.Box.Network)
			}
			_, hasProxy := p.Box.Env["HTTPS_PROXY"]
			if hasProxy != r.proxy {
				t.Errorf("proxy env %v, want %v", hasProxy, r.proxy)
			}
			if r.proxy {
				for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"} {
					if p.Box.Env[k] != "http://127.0.0.1:3128" {
						t.Errorf("%s = %q", k, p.Box.Env[k])
					}
				}
				if p.Box.Env["NO_PROXY"] != "localhost,127.0.0.1" {
					t.Errorf("NO_PROXY = %q", p.Box.Env["NO_PROXY"])
				}
			}
			if (p.Posture.Warning != "") != r.open {
				t.Errorf("warning %q with open=%v", p.Posture.Warning, r.open)
			}
			// Doors in the manifest are exactly the mounted sockets.
			var mounted, told []string
			for _, mt := range p.Box.Mounts {
				if strings.HasPrefix(mt.Dest, "/run/") {
					mounted = append(mounted, mt.Dest)
				}
			}
			for _, d := range m.Doors {
				told = append(told, d.Socket)
			}
			if !slices.Equal(mounted, told) {
				t.Errorf("mounted %v, manifest %v", mounted, told)
			}
			for _, d := range m.Denied {
				if d.Name == "net" && r.open {
					t.Errorf("net listed as denied although the network is open")
				}
			}
		})
	}
}

func baseRequest(g []guestroom.Grant) Request {
	r := Request{
		Account: "work", LaunchID: "abc123", ImageID: "sha256:1111", ImageDigest: "sha256:2222",
		Grants: g, SeccompPath: "/s.json", Nofile: 1024, Nproc: 99999,
	}
	for _, x := range g {
		r.Sockets = append(r.Sockets, Socket{Grant: x, HostSocket: "/host/run/" + x.Door.Name + "/abc123.sock"})
	}
	return r
}

func TestFloorOnEveryBox(t *testing.T) {
	p, err := Build(baseRequest(nil))
	if err != nil {
		t.Fatal(err)
	}
	b := p.Box
	if b.User != "1000:1000" || !slices.Equal(b.CapDrop, []string{"ALL"}) || !b.NoNewPrivs || b.PidsLimit != DefaultPidsLimit ||
		b.SeccompProfile != "/s.json" || !b.ReadOnlyRoot || b.Network != "none" {
		t.Fatalf("floor missing: %+v", b)
	}
	if !slices.Contains(b.Rlimits, Rlimit{Type: "nproc", Value: NprocCap}) || !slices.Contains(b.Rlimits, Rlimit{Type: "nofile", Value: 1024}) {
		t.Fatalf("rlimits %v", b.Rlimits)
	}
	if b.Command[0] != "claude" || b.Command[1] != "--append-system-prompt" || b.Command[2] != p.Rulebook {
		t.Fatalf("rulebook is not first: %q", b.Command[:2])
	}
	if b.Volumes[0] != (Volume{Name: "claude-work-config", Dest: "/home/claude/.config/claude"}) {
		t.Fatalf("volume %v", b.Volumes)
	}
	for k := range b.Env {
		switch k {
		case "HOME", "USER", "CLAUDE_CONFIG_DIR", EnvAccount, EnvLaunch, EnvCapabilities, EnvPidsLimit:
		default:
			t.Errorf("unexpected env %s in a box without doors", k)
		}
	}
	if _, err := Build(Request{Account: "a/b"}); !errors.Is(err, ErrBadAccount) {
		t.Fatalf("bad account: %v", err)
	}
	req := baseRequest(nil)
	if b.Env[EnvPidsLimit] != "1024" {
		t.Fatalf("%s=%q, want the pids limit", EnvPidsLimit, b.Env[EnvPidsLimit])
	}
	req.Rootless = true
	p, _ = Build(req)
	if p.Box.UserNS != "keep-id:uid=1000,gid=1000" {
		t.Fatalf("rootless userns %q", p.Box.UserNS)
	}
	// Rootless with a cgroup pids limit: RLIMIT_NPROC stays generous.
	if !slices.Contains(p.Box.Rlimits, Rlimit{Type: "nproc", Value: NprocCap}) {
		t.Fatalf("rootless (cgroup v2) rlimits %v, want nproc %d", p.Box.Rlimits, NprocCap)
	}
	// Without one (rootless on cgroup v1): RLIMIT_NPROC is the pids limit.
	req.PidsByRlimit = true
	p, _ = Build(req)
	if !slices.Contains(p.Box.Rlimits, Rlimit{Type: "nproc", Value: DefaultPidsLimit}) {
		t.Fatalf("rootless cgroup v1 rlimits %v, want nproc %d", p.Box.Rlimits, DefaultPidsLimit)
	}
	req.PidsLimit = 64
	p, _ = Build(req)
	if !slices.Contains(p.Box.Rlimits, Rlimit{Type: "nproc", Value: 64}) || p.Box.Env[EnvPidsLimit] != "64" {
		t.Fatalf("rootless --pids-limit 64: rlimits %v env %q", p.Box.Rlimits, p.Box.Env[EnvPidsLimit])
	}
	// The entrypoint reads the same name and defaults to the same limit.
	if EnvPidsLimit != entry.EnvPidsLimit || DefaultPidsLimit != entry.DefaultPidsLimit {
		t.Fatalf("plan and entry disagree: %s/%d vs %s/%d", EnvPidsLimit, DefaultPidsLimit, entry.EnvPidsLimit, entry.DefaultPidsLimit)
	}
}

// git runs git in dir.
func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestPlanRepo(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed: needed to make a linked worktree")
	}
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(base, "repo")
	for _, d := range []string{"src/a", "docs"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	git(t, repo, "init", "-q")
	if err := os.WriteFile(filepath.Join(repo, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "add", "f")
	git(t, repo, "commit", "-q", "-m", "x")
	wt := filepath.Join(base, "wt")
	git(t, repo, "worktree", "add", "-q", wt)
	if err := os.Symlink("/etc", filepath.Join(repo, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("plain", func(t *testing.T) {
		p, err := PlanRepo(RepoRequest{Path: repo})
		if err != nil {
			t.Fatal(err)
		}
		want := []Mount{{repo, "/work", false}, {repo + "/.git", "/work/.git", true}}
		if !slices.Equal(p.Mounts, want) {
			t.Fatalf("mounts %v, want %v", p.Mounts, want)
		}
	})
	t.Run("writable order", func(t *testing.T) {
		p, err := PlanRepo(RepoRequest{Path: repo, Writable: []string{"src/a", repo + "/docs", "src/a"}})
		if err != nil {
			t.Fatal(err)
		}
		want := []Mount{{repo, "/work", true}, {repo + "/src/a", "/work/src/a", false}, {repo + "/docs", "/work/docs", false}, {repo + "/.git", "/work/.git", true}}
		if !slices.Equal(p.Mounts, want) {
			t.Fatalf("mounts %v, want %v", p.Mounts, want)
		}
	})
	t.Run("linked worktree", func(t *testing.T) {
		p, err := PlanRepo(RepoRequest{Path: wt})
		if err != nil {
			t.Fatal(err)
		}
		want := []Mount{{wt, "/work", false}, {wt + "/.git", "/work/.git", true}, {repo + "/.git", repo + "/.git", true}}
		if !slices.Equal(p.Mounts, want) {
			t.Fatalf("mounts %v, want %v", p.Mounts, want)
		}
	})
	t.Run("rw", func(t *testing.T) {
		p, err := PlanRepo(RepoRequest{Path: repo, RW: true})
		if err != nil {
			t.Fatal(err)
		}
		if p.Mounts[1].ReadOnly || p.Warning == "" {
			t.Fatalf("repo-rw: %+v", p)
		}
	})
	refused := []struct {
		name string
		req  RepoRequest
		why  string
	}{
		{"no repo", RepoRequest{Path: base}, "no .git"},
		{"missing", RepoRequest{Path: filepath.Join(base, "nope")}, "no such file"},
		{"root", RepoRequest{Path: repo, Writable: []string{"."}}, "is the repo root"},
		{"outside", RepoRequest{Path: repo, Writable: []string{"../wt"}}, "outside the repo"},
		{"symlink out", RepoRequest{Path: repo, Writable: []string{"escape"}}, "outside the repo"},
		{"absent", RepoRequest{Path: repo, Writable: []string{"ghost"}}, "does not exist"},
		{"git", RepoRequest{Path: repo, Writable: []string{".git/hooks"}}, "inside .git"},
		{"file", RepoRequest{Path: repo, Writable: []string{"file"}}, "not a directory"},
		{"both", RepoRequest{Path: repo, Writable: []string{"src"}, RW: true}, "contradict"},
	}
	for _, c := range refused {
		t.Run("refuse "+c.name, func(t *testing.T) {
			_, err := PlanRepo(c.req)
			if !errors.Is(err, ErrBadRepo) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("got %v, want ErrBadRepo containing %q", err, c.why)
			}
		})
	}
}

func TestMountOrderInBox(t *testing.T) {
	rp := &RepoPlan{Root: "/r", Mounts: []Mount{{"/r", "/work", true}, {"/r/src", "/work/src", false}, {"/r/.git", "/work/.git", true}}}
	cat := testCatalog(t)
	g, _ := cat.Grant([]string{"dev"}, nil)
	req := baseRequest(g)
	req.Repo = rp
	p, err := Build(req)
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, m := range p.Box.Mounts {
		dests = append(dests, m.Dest)
	}
	want := []string{"/work", "/work/src", "/work/.git", NetSocket, KeeperSocket, ScoutSocket}
	if !slices.Equal(dests, want) {
		t.Fatalf("mount order %v, want %v", dests, want)
	}
	if p.Box.Workdir != "/work" {
		t.Fatalf("workdir %q", p.Box.Workdir)
	}
	for _, m := range p.Box.Mounts[3:] {
		if filepath.Dir(m.Source) == m.Source || !strings.HasSuffix(m.Source, ".sock") {
			t.Errorf("door mount %v is not a single socket file", m)
		}
	}
}

// TestManifestNamesUnsafeEscapes: the manifest the box is told lists each
// unsafe escape the launch uses, from what the box gets, and nothing when
// it uses none.
func TestManifestNamesUnsafeEscapes(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	repo := func(rw bool) *RepoPlan {
		rp, err := PlanRepo(RepoRequest{Path: dir, RW: rw})
		if err != nil {
			t.Fatal(err)
		}
		return &rp
	}
	cases := []struct {
		name    string
		netOpen bool
		repo    *RepoPlan
		want    string // "" means no unsafe entry
	}{
		{"no repo, no network", false, nil, ""},
		{"read-only .git", false, repo(false), ""},
		{"--net-open", true, nil, "net-open"},
		{"--repo-rw", false, repo(true), "repo-rw"},
		{"both", true, repo(true), "net-open,repo-rw"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest(nil)
			req.NetOpen, req.Repo = tc.netOpen, tc.repo
			p, err := Build(req)
			if err != nil {
				t.Fatal(err)
			}
			m, err := guestroom.ParseManifest(p.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := m.Extra[ExtraUnsafe]
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("extra.%s = %q (present %v), want %q", ExtraUnsafe, got, ok, tc.want)
			}
			if p.Box.Env[EnvCapabilities] != compact(p.Manifest) {
				t.Fatal("the box is told another manifest than the one planned")
			}
		})
	}
}
