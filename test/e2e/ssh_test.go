package e2e

// The ssh:// CONTAINER_HOST tests. The launcher issue asks that "an ssh://
// CONTAINER_HOST works as podman's own tools do"; these run the real
// claude-box against the suite's isolated podman service reached through a
// real OpenSSH sshd on 127.0.0.1 (harness.StartSSHD: its own host key, one
// authorized client key, key-only login, stream-local forwarding), with
//
//	CONTAINER_HOST=ssh://root@127.0.0.1:PORT/<the isolated service's socket>
//	CONTAINER_SSHKEY=<the authorized client key>
//	CLAUDE_BOX_SECCOMP=<launcher/internal/plan/seccomp.json in this checkout>
//
// (a remote service reads the seccomp profile from its own host, so the
// launcher needs its path there; here "there" is this machine). podman's
// bindings (go.podman.io/common/pkg/ssh) check the server against
// $HOME/.ssh/known_hosts: a changed key is refused, an unknown host is
// trusted on first use and appended, as `podman --url ssh://…` does.
//
// Door sockets are host paths: over ssh to the same machine they stay valid,
// so a launch with doors works too. Each launch is proven to have gone over
// ssh by sshd's log ("Accepted publickey for root from 127.0.0.1").

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// sshWorld is a world whose launcher reaches podman through sshd.
type sshWorld struct {
	*world
	sshd       *harness.SSHD
	host       string // the ssh:// CONTAINER_HOST
	knownHosts string // HOME/.ssh/known_hosts
}

// newSSHWorld starts sshd, trusts its host key in the world's known_hosts
// and points the launcher at the isolated service through it.
func newSSHWorld(t *testing.T) *sshWorld {
	t.Helper()
	w := newWorld(t)
	d := harness.StartSSHD(t)
	sw := &sshWorld{world: w, sshd: d, host: d.URI(w.s.podman.Socket), knownHosts: filepath.Join(w.home, ".ssh", "known_hosts")}
	if err := os.MkdirAll(filepath.Dir(sw.knownHosts), 0o700); err != nil {
		t.Fatal(err)
	}
	sw.setKnownHosts(t, d.KnownHosts+"\n")
	sw.useKey(d.ClientKey)
	return sw
}

// useKey sets the launcher's environment: the ssh:// host, key and the
// seccomp profile's path on the server's host.
func (sw *sshWorld) useKey(key string) {
	sw.extraEnv = []string{
		"CONTAINER_HOST=" + sw.host,
		"CONTAINER_SSHKEY=" + key,
		"CLAUDE_BOX_SECCOMP=" + filepath.Join(sw.s.repo, "launcher", "internal", "plan", "seccomp.json"),
	}
}

func (sw *sshWorld) setKnownHosts(t *testing.T, body string) {
	t.Helper()
	if err := os.WriteFile(sw.knownHosts, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// accepted counts the logins sshd accepted so far.
func (sw *sshWorld) accepted(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(sw.sshd.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Accepted publickey for "+sw.sshd.User+" from 127.0.0.1")
}

// noBox fails the test if the isolated service holds a container of account.
func (sw *sshWorld) noBox(t *testing.T, account string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps, err := sw.s.podman.CLI(ctx, "ps", "--all", "--filter", "label=io.claude-box.account="+account, "--format", "{{.ID}} {{.Status}}")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(ps)) != "" {
		t.Errorf("containers of %s on the service:\n%s", account, ps)
	}
}

// TestSSHContainerHost: with an ssh:// CONTAINER_HOST the launcher runs a
// box through sshd: arguments and the exit code pass through, the box is
// removed, a launch with a door works (the door socket is a host path), the
// reaper removes the box of a SIGKILLed launcher over ssh, and an unknown
// host key is trusted on first use.
func TestSSHContainerHost(t *testing.T) {
	sw := newSSHWorld(t)

	t.Run("exit code and arguments", func(t *testing.T) {
		before := sw.accepted(t)
		r := sw.claudeBox(t, "e2e-ssh", "--", "sh", "-c", `printf '%s|' "$@"; exit 7`, "sh", "a b", "--resume", "-x")
		if r.code != 7 {
			t.Errorf("exit code = %d, want 7\n%s\n--- sshd\n%s", r.code, r, sw.sshd.LogTail())
		}
		if !strings.Contains(r.stdout, "a b|--resume|-x|") {
			t.Errorf("arguments did not pass through in order\n%s", r)
		}
		if got := sw.accepted(t); got <= before {
			t.Errorf("sshd accepted %d logins during the launch, want at least 1: the launch did not go over ssh\n%s", got-before, sw.sshd.LogTail())
		}
		sw.noBox(t, "e2e-ssh")
	})

	t.Run("door", func(t *testing.T) {
		sw.startScoutd(t, nil, "")
		defer func() { delete(sw.daemons, "scoutd") }()
		r := sw.ok(t, "e2e-ssh", "--scout", "--", "probe", "sockets", "-path", boxSockets["scoutd"]).probe(t)
		if want := []string{boxSockets["scoutd"]}; !slices.Equal(r.Sockets, want) {
			t.Errorf("sockets in the box = %v, want exactly %v", r.Sockets, want)
		}
		if got := r.Connect[boxSockets["scoutd"]]; got != "ok" {
			t.Errorf("connect %s = %q, want ok: the door minted on the host must answer in a box launched over ssh", boxSockets["scoutd"], got)
		}
		if live := sw.liveLaunches(t); len(live) != 0 {
			t.Errorf("live launches after the box exited: %v", live)
		}
		sw.noBox(t, "e2e-ssh")
	})

	t.Run("reaper removes the box after SIGKILL", func(t *testing.T) {
		// The launcher's reaper inherits CONTAINER_HOST and CONTAINER_SSHKEY
		// and reaches the service over ssh too.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, sw.s.bin(t, "claude-box"), "e2e-ssh-reap", "--", "sleep", "600")
		cmd.Env = sw.launcherEnv()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		ps := func(args ...string) string {
			b, _ := sw.s.podman.CLI(ctx, append([]string{"ps", "--all", "--filter", "label=io.claude-box.account=e2e-ssh-reap", "--format", "{{.ID}}"}, args...)...)
			return strings.TrimSpace(string(b))
		}
		if !harness.WaitFor(60*time.Second, func() bool { return ps("--filter", "status=running") != "" }) {
			t.Fatalf("the box never ran\n%s", out.String())
		}
		before := sw.accepted(t)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if !harness.WaitFor(30*time.Second, func() bool { return ps() == "" }) {
			t.Errorf("30s after SIGKILL of the launcher, its box remains: %s\n%s", ps(), out.String())
		}
		if got := sw.accepted(t); got <= before {
			t.Errorf("sshd accepted %d logins after the SIGKILL, want the reaper's\n%s", got-before, sw.sshd.LogTail())
		}
	})

	t.Run("unknown host is trusted on first use", func(t *testing.T) {
		// podman's bindings behave like `ssh -o StrictHostKeyChecking=accept-new`.
		if err := os.Remove(sw.knownHosts); err != nil {
			t.Fatal(err)
		}
		defer sw.setKnownHosts(t, sw.sshd.KnownHosts+"\n")
		sw.ok(t, "e2e-ssh", "--", "true")
		b, err := os.ReadFile(sw.knownHosts)
		if err != nil {
			t.Fatalf("known_hosts after first contact: %v", err)
		}
		if got := strings.TrimSpace(string(b)); got != sw.sshd.KnownHosts {
			t.Errorf("known_hosts after first contact = %q, want %q", got, sw.sshd.KnownHosts)
		}
		sw.noBox(t, "e2e-ssh")
	})
}

// TestSSHContainerHostRefused: when ssh refuses the connection (a client
// key the server does not authorize, a host key that differs from
// known_hosts) the launch fails closed: exit 125, stderr names the ssh://
// URI it tried, ssh's reason and a hint, and no container is created.
func TestSSHContainerHostRefused(t *testing.T) {
	sw := newSSHWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	otherKey := filepath.Join(t.TempDir(), "other_ed25519")
	otherPub, err := harness.GenerateSSHKey(ctx, otherKey)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name       string
		key        string
		knownHosts string
		reason     string
	}{
		{"wrong client key", otherKey, sw.sshd.KnownHosts, "ssh: unable to authenticate"},
		{"changed host key", sw.sshd.ClientKey, strings.Fields(sw.sshd.KnownHosts)[0] + " " + otherPub, "knownhosts: key mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sw.useKey(tc.key)
			defer sw.useKey(sw.sshd.ClientKey)
			sw.setKnownHosts(t, tc.knownHosts+"\n")
			defer sw.setKnownHosts(t, sw.sshd.KnownHosts+"\n")
			before := sw.accepted(t)
			r := sw.claudeBox(t, "e2e-ssh-refused", "--", "true")
			if r.code != 125 {
				t.Errorf("exit %d, want 125\n%s", r.code, r)
			}
			for _, want := range []string{"podman API unreachable", "tried " + sw.host, tc.reason, "hint:"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q\n%s", want, r)
				}
			}
			if got := sw.accepted(t); got != before {
				t.Errorf("sshd accepted %d logins, want 0\n%s", got-before, sw.sshd.LogTail())
			}
			b, err := os.ReadFile(sw.knownHosts)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != tc.knownHosts {
				t.Errorf("known_hosts changed to %q, want it left as %q", got, tc.knownHosts)
			}
			sw.noBox(t, "e2e-ssh-refused")
		})
	}
}
