package scout

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// A repository whose pack inflates far past the snapshot ceiling (a blob
// of zeros compresses a thousandfold) is refused before scoutd inflates
// it into memory: what scoutd allocates stays far below what the pack
// would inflate to.
func TestSnapshotRefusesAPackBombWithoutInflatingIt(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed (apt-get install git)")
	}
	if _, err := os.Stat(httpBackend); err != nil {
		t.Skipf("%s missing (apt-get install git)", httpBackend)
	}
	const bomb = 48 << 20
	base := t.TempDir()
	work, root := filepath.Join(base, "work"), filepath.Join(base, "srv")
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+base,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	git(work, "init", "-q", "-b", "main")
	f, err := os.Create(filepath.Join(work, "zeros.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(bomb); err != nil {
		t.Fatal(err)
	}
	f.Close()
	git(work, "add", "-A")
	git(work, "commit", "-q", "-m", "bomb")
	if err := os.MkdirAll(filepath.Join(root, "octo"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(base, "clone", "-q", "--bare", work, filepath.Join(root, "octo", "bomb.git"))

	e := newEnv(t)
	_, port := e.server(gitHandler(root))
	s := e.scout([]string{"git.test:" + port}, nil)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var buf bytes.Buffer
	_, err = s.Snapshot(context.Background(), SnapshotRequest{URL: "https://git.test:" + port + "/octo/bomb.git", MaxBytes: 1 << 20}, &buf)
	runtime.ReadMemStats(&after)
	if got := reasonOf(t, err); got != ReasonTooLarge {
		t.Fatalf("reason = %s (%v), want %s", got, err, ReasonTooLarge)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > bomb/3 {
		t.Fatalf("scoutd allocated %d MiB to refuse a pack that inflates to %d MiB", alloc>>20, bomb>>20)
	}
}
