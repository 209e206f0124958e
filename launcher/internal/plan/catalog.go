package plan

import (
	"fmt"
	"path/filepath"

	"github.com/bounded-systems/claude-box/guestroom"
)

// The in-box paths of the three doors. Each is one minted socket file.
const (
	NetSocket    = "/run/doors/netd.sock"
	KeeperSocket = "/run/doors/keeperd.sock"
	ScoutSocket  = "/run/doors/scoutd.sock"
)

// Door names of the catalog.
const (
	DoorNet    = "net"
	DoorKeeper = "keeper"
	DoorScout  = "scout"
)

// Daemons maps each catalog door to the daemon that serves it; a generic
// door NAME is served by a daemon called NAME.
var daemons = map[string]string{DoorNet: "netd", DoorKeeper: "keeperd", DoorScout: "scoutd"}

// Daemon names the daemon serving door name.
func Daemon(door string) string {
	if d, ok := daemons[door]; ok {
		return d
	}
	return door
}

// DaemonNames are the daemons claude-box manages, in order.
func DaemonNames() []string { return []string{"netd", "keeperd", "scoutd"} }

// ControlSockets says where each daemon's control socket is on the host.
type ControlSockets struct {
	// RunDir holds <daemon>.sock; ~/.claude-box/run by default.
	RunDir string
	// Override maps a daemon to an explicit control socket (NETD_SOCK…).
	Override map[string]string
}

// For returns the control socket of daemon.
func (c ControlSockets) For(daemon string) string {
	if p := c.Override[daemon]; p != "" {
		return p
	}
	return filepath.Join(c.RunDir, daemon+".sock")
}

// Catalog is claude-box's concrete door catalog: net, keeper, scout, and
// the rooms tool (none), read (scout) and dev (keeper, net, scout). Each
// door's HostSocket is the control socket of its daemon: the launcher only
// ever mints through it, never mounts it.
func Catalog(cs ControlSockets) (guestroom.Catalog, error) {
	doors := []guestroom.Door{
		{
			Name: DoorNet, Flag: "--net", Socket: NetSocket, Env: "NETD_SOCK",
			HostSocket: cs.For("netd"),
			Grants:     "policed HTTPS/HTTP egress to the hosts netd's policy allows, through the proxy at http://127.0.0.1:3128",
			Usage:      "tools that honor HTTPS_PROXY/HTTP_PROXY (set) reach allowed hosts; anything else has no route; a refused host answers 403",
			Absent:     "no network at all; relaunch with --net",
		},
		{
			Name: DoorKeeper, Flag: "--keeper", Socket: KeeperSocket, Env: "KEEPERD_SOCK",
			HostSocket: cs.For("keeperd"),
			Grants:     "signed git commits and pushes of the mounted repo, made host-side by keeperd",
			Usage:      "the repo's .git is read-only: run `keeper commit -a -m MSG` to commit and `keeper push` to push allowed branches",
			Absent:     "no commits or pushes (.git is read-only); relaunch with --keeper",
		},
		{
			Name: DoorScout, Flag: "--scout", Socket: ScoutSocket, Env: "SCOUTD_SOCK",
			HostSocket: cs.For("scoutd"),
			Grants:     "read-only fetches of allowlisted URLs, repo snapshots and GitHub issues/PRs, returned as content",
			Usage:      "run `scout fetch URL`, `scout repo URL`, `scout issue OWNER/REPO#N`",
			Absent:     "no external reads; relaunch with --scout",
		},
	}
	cat, err := guestroom.NewCatalog(doors, guestroom.Rooms{
		"tool": nil,
		"read": {DoorScout},
		"dev":  {DoorKeeper, DoorNet, DoorScout},
	})
	if err != nil {
		return guestroom.Catalog{}, fmt.Errorf("door catalog: %w", err)
	}
	return cat, nil
}

// ControlSocketFor is the control socket a grant mints through: the host
// socket a spec named, or the default control socket of its daemon.
func ControlSocketFor(g guestroom.Grant, cs ControlSockets) string {
	if g.Door.HostSocket != "" {
		return g.Door.HostSocket
	}
	return cs.For(Daemon(g.Door.Name))
}
