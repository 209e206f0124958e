package plan

import (
	"slices"

	"github.com/bounded-systems/claude-box/guestroom"
)

// Network names a network posture, as the manifest states it.
type Network string

// The three postures.
const (
	// NetworkNone: no interface but lo, no route, no DNS.
	NetworkNone Network = "none"
	// NetworkPoliced: no interface but lo; the net door is mounted and the
	// in-box relay on 127.0.0.1:3128 carries proxied traffic to netd.
	NetworkPoliced Network = "policed"
	// NetworkOpen: podman's ambient network. Unsafe; said loudly.
	NetworkOpen Network = "open"
)

// ProxyAddr is where the in-box relay listens.
const ProxyAddr = "127.0.0.1:3128"

// Posture is the network posture of one launch, derived once from the
// grants. It drives both what podman is told and what the manifest says.
type Posture struct {
	// Network is the posture's name in the manifest.
	Network Network
	// PodmanNetwork is the network mode podman is given: "none", or ""
	// for podman's default network.
	PodmanNetwork string
	// Env is the proxy environment set in the box.
	Env map[string]string
	// Warning is printed loudly on the host before the box starts.
	Warning string
}

// ProxyEnv is the environment that points every proxy-aware tool at the
// in-box relay.
func ProxyEnv() map[string]string {
	u := "http://" + ProxyAddr
	env := map[string]string{}
	for _, k := range []string{"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"} {
		env[k] = u
		env[lower(k)] = u
	}
	env["NO_PROXY"] = "localhost,127.0.0.1"
	env["no_proxy"] = "localhost,127.0.0.1"
	return env
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// OpenWarning is what --net-open prints.
const OpenWarning = "WARNING: --net-open gives the box podman's ambient network: it can reach any host, " +
	"including this machine's services, without netd's policy or audit. Use --net for policed egress."

// DerivePosture is the one place the network posture is decided.
func DerivePosture(grants []guestroom.Grant, netOpen bool) Posture {
	hasNet := slices.ContainsFunc(grants, func(g guestroom.Grant) bool { return g.Door.Name == DoorNet })
	p := Posture{Network: NetworkNone, PodmanNetwork: "none", Env: map[string]string{}}
	if hasNet {
		p.Network = NetworkPoliced
		p.Env = ProxyEnv()
		// The relay needs no flag: the entrypoint starts it exactly when
		// the net door's socket is mounted.
	}
	if netOpen {
		p.Network = NetworkOpen
		p.PodmanNetwork = ""
		p.Warning = OpenWarning
	}
	return p
}
