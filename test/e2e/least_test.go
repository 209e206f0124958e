package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestLeastAuthority: a box granted only scout holds exactly the scout
// socket. The keeper and net doors are absent, every path it could guess
// fails, and no daemon's control socket is visible.
func TestLeastAuthority(t *testing.T) {
	w := newWorld(t)
	scoutd := w.startScoutd(t, nil, "")
	netd := w.startNetd(t, nil)
	keeperd := w.startKeeperd(t, nil)

	guesses := []string{
		boxSockets["keeperd"], boxSockets["netd"],
		"/run/keeperd.sock", "/run/netd.sock", "/run/doors/keeper.sock", "/run/doors/net.sock",
		netd.Socket, keeperd.Socket, scoutd.Socket,
		"/run/podman/podman.sock", "/var/run/docker.sock", w.s.podman.Socket,
	}
	args := []string{"e2e-least", "--scout", "--", "probe", "sockets"}
	for _, g := range guesses {
		args = append(args, "-path", g)
	}
	r := w.ok(t, args...).probe(t)

	if want := []string{boxSockets["scoutd"]}; !slices.Equal(r.Sockets, want) {
		t.Errorf("sockets in the box = %v, want exactly %v", r.Sockets, want)
	}
	if got := r.Connect[boxSockets["scoutd"]]; got != "ok" {
		t.Errorf("connect %s = %q, want ok (the granted door must work)", boxSockets["scoutd"], got)
	}
	for _, g := range guesses {
		got := r.Connect[g]
		if got == "ok" {
			t.Errorf("connect %s succeeded in a box granted only scout", g)
			continue
		}
		if !strings.Contains(got, "no such file or directory") {
			t.Errorf("connect %s = %q, want no such file or directory (absent, not merely forbidden)", g, got)
		}
	}
}
