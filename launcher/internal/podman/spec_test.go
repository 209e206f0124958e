package podman

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestSpecGolden pins the podman container spec of representative launches.
func TestSpecGolden(t *testing.T) {
	cat, err := plan.Catalog(plan.ControlSockets{RunDir: "/home/u/.claude-box/run"})
	if err != nil {
		t.Fatal(err)
	}
	repo := &plan.RepoPlan{Root: "/home/u/src/site", Mounts: []plan.Mount{
		{Source: "/home/u/src/site", Dest: "/work", ReadOnly: true},
		{Source: "/home/u/src/site/src", Dest: "/work/src"},
		{Source: "/home/u/src/site/.git", Dest: "/work/.git", ReadOnly: true},
	}}
	cases := []struct {
		name     string
		rooms    []string
		specs    []guestroom.DoorSpec
		open     bool
		repo     *plan.RepoPlan
		rootless bool
		args     []string
	}{
		{name: "no-doors"},
		{name: "dev-repo-writable", rooms: []string{"dev"}, repo: repo, args: []string{"--resume"}},
		{name: "scout-caveat-rootless", specs: []guestroom.DoorSpec{{Name: "scout", Caveats: []guestroom.Caveat{{Key: "host", Value: "github.com"}}}}, rootless: true},
		{name: "net-open", open: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := cat.Grant(c.rooms, c.specs)
			if err != nil {
				t.Fatal(err)
			}
			req := plan.Request{
				Account: "work", LaunchID: "0123456789ab", ImageID: "sha256:1d", ImageDigest: "sha256:d1",
				Grants: g, Denied: cat.Denied(g), NetOpen: c.open, Repo: c.repo, ClaudeArgs: c.args,
				Rootless: c.rootless, PidsByRlimit: c.rootless, SeccompPath: "/home/u/.claude-box/seccomp/x.json", Nofile: 1024, Stdin: true,
			}
			for _, x := range g {
				req.Sockets = append(req.Sockets, plan.Socket{Grant: x, HostSocket: "/home/u/.claude-box/run/" + plan.Daemon(x.Door.Name) + ".doors/0123456789ab.sock"})
			}
			p, err := plan.Build(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(Spec(p.Box), "", "  ")
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
