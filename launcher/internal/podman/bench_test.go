package podman_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// startDoor serves a real door daemon's control socket in-process (a
// guestroom Minter, as netd/keeperd/scoutd serve it) at dir/<daemon>.sock.
func startDoor(b testing.TB, dir, name, daemon string) {
	b.Helper()
	m, err := door.NewMinter(door.MinterConfig{Door: name, Version: "bench", Dir: filepath.Join(dir, daemon+".doors"),
		Validate: func(door.Binding) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	srv := door.NewServer(door.Config{Door: name, Authorize: door.SameUser()})
	m.RegisterControl(srv.GRPC())
	l, err := door.Listen(filepath.Join(dir, daemon+".sock"))
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		m.Close(ctx)
	})
}

// BenchmarkLaunch measures launch-to-exit of `true` through claude-box (no
// doors, and --room dev with three minted doors) against `podman run` with
// the same floor flags, in the same run, and reports the ratios.
//
//	go test -tags "$(cat build.tags)" -run '^$' -bench Launch -benchtime 10x ./internal/podman/
func BenchmarkLaunch(b *testing.B) {
	w := need(b)
	dir, err := os.MkdirTemp("", "cbb-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	run := filepath.Join(dir, "run")
	for _, d := range [][2]string{{"net", "netd"}, {"keeper", "keeperd"}, {"scout", "scoutd"}} {
		startDoor(b, run, d[0], d[1])
	}
	// The keeper door of --room dev commits to a worktree the launch names.
	repo := filepath.Join(dir, "repo")
	if out, err := exec.Command("git", "init", "-q", repo).CombinedOutput(); err != nil {
		b.Skipf("BenchmarkLaunch needs git for --room dev's worktree: %v: %s", err, out)
	}
	if _, err := w.podman("volume", "create", "claude-bench-config"); err != nil {
		b.Log("volume exists")
	}
	seccomp := filepath.Join(dir, "seccomp.json")
	if err := os.WriteFile(seccomp, plan.SeccompProfile(), 0o644); err != nil {
		b.Fatal(err)
	}
	peer := []string{"run", "--rm", "--user", "1000:1000", "--cap-drop", "all", "--security-opt", "no-new-privileges",
		"--security-opt", "seccomp=" + seccomp, "--pids-limit", "1024", "--network", "none", "--read-only",
		"--mount", "type=tmpfs,destination=/tmp,U=true", "--mount", "type=tmpfs,destination=/home/claude,U=true",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
		"-v", "claude-bench-config:/home/claude/.config/claude", w.image, "claude", "true"}
	var tPodman, tBox, tDev time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if out, err := w.podman(peer...); err != nil {
			b.Fatalf("podman run: %v: %s", err, out)
		}
		t1 := time.Now()
		if out, errOut, code := w.launch(b, "bench", "--", "true"); code != 0 {
			b.Fatalf("claude-box: %d %s %s", code, out, errOut)
		}
		t2 := time.Now()
		if out, errOut, code := w.launchEnv(b, map[string]string{"CLAUDE_BOX_RUN_DIR": run}, "bench", "--room", "dev", "--repo", repo, "--", "true"); code != 0 {
			b.Fatalf("claude-box --room dev: %d %s %s", code, out, errOut)
		}
		t3 := time.Now()
		tPodman += t1.Sub(t0)
		tBox += t2.Sub(t1)
		tDev += t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tPodman.Milliseconds())/n, "podman-run-ms")
	b.ReportMetric(float64(tBox.Milliseconds())/n, "claude-box-ms")
	b.ReportMetric(float64(tDev.Milliseconds())/n, "claude-box-dev-ms")
	b.ReportMetric(float64(tBox)/float64(tPodman), "ratio-nodoors")
	b.ReportMetric(float64(tDev)/float64(tPodman), "ratio-dev")
	b.ReportMetric(float64((tDev-tBox).Milliseconds())/n, "three-doors-ms")
}
