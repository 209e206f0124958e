package podman

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCandidatesOrder: CONTAINER_HOST alone when set; else the rootless
// user socket (under XDG_RUNTIME_DIR, or /run/user/UID for a user that is
// not root), then the rootful system socket.
func TestCandidatesOrder(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		uid  int
		want []string
	}{
		{
			name: "CONTAINER_HOST wins over everything",
			env:  map[string]string{"CONTAINER_HOST": "ssh://core@host/run/podman/podman.sock", "XDG_RUNTIME_DIR": "/run/user/1000"},
			uid:  1000,
			want: []string{"ssh://core@host/run/podman/podman.sock"},
		},
		{
			name: "the user socket under XDG_RUNTIME_DIR, then the system socket",
			env:  map[string]string{"XDG_RUNTIME_DIR": "/run/user/1234"},
			uid:  1234,
			want: []string{"unix:///run/user/1234/podman/podman.sock", "unix:///run/podman/podman.sock"},
		},
		{
			name: "XDG_RUNTIME_DIR names the user socket even for root",
			env:  map[string]string{"XDG_RUNTIME_DIR": "/tmp/xdg"},
			uid:  0,
			want: []string{"unix:///tmp/xdg/podman/podman.sock", "unix:///run/podman/podman.sock"},
		},
		{
			name: "without XDG_RUNTIME_DIR a user's socket is under /run/user/UID",
			uid:  1000,
			want: []string{"unix:///run/user/1000/podman/podman.sock", "unix:///run/podman/podman.sock"},
		},
		{
			name: "without XDG_RUNTIME_DIR root has only the system socket",
			uid:  0,
			want: []string{"unix:///run/podman/podman.sock"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := candidates(func(k string) string { return c.env[k] }, c.uid)
			if !slices.Equal(got, c.want) {
				t.Fatalf("candidates %q, want %q", got, c.want)
			}
		})
	}
}

// TestConnectNamesEverySocketTried: when no candidate answers, the error
// names every socket in the order tried, and whether a socket file was
// there at all.
func TestConnectNamesEverySocketTried(t *testing.T) {
	dir, err := os.MkdirTemp("", "cbp-") // short: socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	missing := filepath.Join(dir, "missing.sock")
	// A socket file nobody listens on, as a dead service leaves behind.
	dead := filepath.Join(dir, "dead.sock")
	dl, err := net.ListenUnix("unix", &net.UnixAddr{Name: dead, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dl.SetUnlinkOnClose(false)
	_ = dl.Close()
	// A live socket that is not podman's API: it hangs up on every request.
	mute := filepath.Join(dir, "mute.sock")
	ml, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Close() })
	go func() {
		for {
			c, err := ml.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	uris := []string{"unix://" + missing, "unix://" + dead, "unix://" + mute}
	getenv := func(string) string { return "" }
	c, err := connect(context.Background(), getenv, uris)
	if err == nil {
		t.Fatalf("connected to %s", c.URI())
	}
	var ue *UnreachableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want an UnreachableError", err)
	}
	want := []string{"unix://" + missing + " (no socket)", "unix://" + dead, "unix://" + mute}
	if !slices.Equal(ue.Tried, want) {
		t.Fatalf("tried %q, want %q", ue.Tried, want)
	}
	if prefix := ErrUnreachable.Error() + ": tried " + strings.Join(want, ", ") + ": "; !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("error %q does not start %q", err, prefix)
	}

	// Connect tries the candidates of its environment, in order.
	xdg := filepath.Join(dir, "xdg")
	env := map[string]string{"XDG_RUNTIME_DIR": xdg}
	c, err = Connect(context.Background(), func(k string) string { return env[k] })
	if err == nil {
		t.Skipf("a podman service answers at %s", c.URI())
	}
	if !errors.As(err, &ue) || len(ue.Tried) == 0 || ue.Tried[0] != "unix://"+filepath.Join(xdg, "podman", "podman.sock")+" (no socket)" {
		t.Fatalf("got %v, want the user socket under XDG_RUNTIME_DIR tried first", err)
	}
	if got := len(ue.Tried); got != len(Candidates(func(k string) string { return env[k] })) {
		t.Fatalf("tried %q, want every candidate", ue.Tried)
	}
}
