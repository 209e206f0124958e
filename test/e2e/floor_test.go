package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/probe"
)

// Host secrets that must never reach a box.
var hostSecrets = map[string]string{
	"GH_TOKEN":          "ghp_e2eHostSecretNeverInABox",
	"SSH_AUTH_SOCK":     "/tmp/e2e-host-agent.sock",
	"ANTHROPIC_API_KEY": "sk-ant-e2e-host-secret",
	"GITHUB_TOKEN":      "ghp_e2eHostSecretToo",
}

// TestFloorHolds: a default box runs as uid 1000 with no capabilities,
// no_new_privs, a seccomp filter, a pids limit, cannot create a user
// namespace or mount, holds no setuid binary, and gets none of the host's
// secrets from the environment.
//
// It holds the same with every door granted (--room dev): a door adds a
// socket, never privilege.
func TestFloorHolds(t *testing.T) {
	w := newWorld(t)
	for k, v := range hostSecrets {
		w.extraEnv = append(w.extraEnv, k+"="+v)
	}
	t.Run("default", func(t *testing.T) {
		checkFloor(t, w.ok(t, "e2e-floor", "--", "probe", "floor").probe(t))
	})
	t.Run("room-dev", func(t *testing.T) {
		w.startScoutd(t, nil, "")
		w.startNetd(t, nil)
		repo := newKeeperRepo(t, w)
		w.startKeeperd(t, repo)
		checkFloor(t, w.ok(t, "e2e-floor", "--room", "dev", "--repo", repo.dir, "--", "probe", "floor").probe(t))
	})
}

// checkFloor asserts the security floor on a probe floor report.
func checkFloor(t testing.TB, r probe.Report) {
	t.Helper()
	if r.UID != 1000 || r.GID != 1000 {
		t.Errorf("uid:gid = %d:%d, want 1000:1000", r.UID, r.GID)
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if got := r.Status[k]; got != "0000000000000000" {
			t.Errorf("%s = %q, want 0000000000000000", k, got)
		}
	}
	if got := r.Status["NoNewPrivs"]; got != "1" {
		t.Errorf("NoNewPrivs = %q, want 1", got)
	}
	if got := r.Status["Seccomp"]; got != "2" {
		t.Errorf("Seccomp = %q, want 2 (filter)", got)
	}
	if n, err := strconv.Atoi(r.PidsMax); err != nil || n <= 0 || n > 65536 {
		t.Errorf("pids.max = %q, want a finite limit", r.PidsMax)
	}
	// The box's seccomp profile answers clone() with namespace flags with its
	// default errno (ENOSYS) and unshare()/mount() with EPERM.
	if !strings.Contains(r.Unshare, "function not implemented") && !strings.Contains(r.Unshare, "operation not permitted") {
		t.Errorf("clone(CLONE_NEWUSER) = %q, want ENOSYS or EPERM from seccomp", r.Unshare)
	}
	if !strings.Contains(r.UnshareCmd, "Operation not permitted") {
		t.Errorf("unshare -U true = %q, want Operation not permitted", r.UnshareCmd)
	}
	if !strings.Contains(r.Mount, "operation not permitted") {
		t.Errorf("mount tmpfs = %q, want operation not permitted", r.Mount)
	}
	if len(r.Setuid) != 0 {
		t.Errorf("setuid/setgid files in the box: %v", r.Setuid)
	}
	for k, v := range hostSecrets {
		if got, ok := r.Env[k]; ok {
			t.Errorf("host %s reached the box as %q", k, got)
		}
		for bk, bv := range r.Env {
			if strings.Contains(bv, v) {
				t.Errorf("host %s's value reached the box in $%s", k, bk)
			}
		}
	}
}

// TestFloorForkBombHitsPidsLimit: process creation in a box stops at its pids
// limit, and the host keeps spawning processes promptly meanwhile. The probe
// stops at 4096 processes on its own, so a box without a limit fails the test
// instead of harming the host.
func TestFloorForkBombHitsPidsLimit(t *testing.T) {
	w := newWorld(t)
	const limit = 4096

	// Measure the host's process spawn latency while the bomb runs.
	var r probe.Report
	worst, spawns := hostSpawnLatency(func() {
		r = w.ok(t, "e2e-forks", "--", "probe", "forks", "-limit", strconv.Itoa(limit)).probe(t)
	})

	if r.Forks == nil {
		t.Fatal("no fork result")
	}
	if r.Forks.Started >= limit {
		t.Fatalf("started %d processes without hitting a limit", r.Forks.Started)
	}
	if !strings.Contains(r.Forks.Err, "resource temporarily unavailable") {
		t.Errorf("fork loop stopped with %q, want resource temporarily unavailable (EAGAIN from the pids limit)", r.Forks.Err)
	}
	t.Logf("box started %d processes before EAGAIN; host spawned %d processes meanwhile, worst %s", r.Forks.Started, spawns, worst)
	if worst > 2*time.Second {
		t.Errorf("host process spawn took %s during the fork bomb", worst)
	}
}
