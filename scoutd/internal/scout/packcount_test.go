package scout

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A pack of many tiny objects weighs little on the wire and decodes to
// almost nothing, but every object costs scoutd its bookkeeping when the
// pack is parsed: a pack with more objects than a tree within the entry
// ceiling can need is refused by the check, before it is parsed into
// memory.
func TestSnapshotRefusesAPackOfManyObjectsBeforeParsingIt(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed (apt-get install git)")
	}
	if _, err := os.Stat(httpBackend); err != nil {
		t.Skipf("%s missing (apt-get install git)", httpBackend)
	}
	const files = 20_000
	base := t.TempDir()
	bare := filepath.Join(base, "srv", "octo", "many.git")
	git := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = base
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+base)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("", "init", "-q", "--bare", "-b", "main", bare)
	var fi strings.Builder
	fi.WriteString("commit refs/heads/main\ncommitter t <t@t> 0 +0000\ndata 4\nmany\n")
	for i := range files {
		c := fmt.Sprint(i)
		fmt.Fprintf(&fi, "M 100644 inline f%d\ndata %d\n%s\n", i, len(c), c)
	}
	git(fi.String(), "--git-dir", bare, "fast-import", "--quiet")

	e := newEnv(t)
	_, port := e.server(gitHandler(filepath.Join(base, "srv")))
	s := e.scout([]string{"git.test:" + port}, nil)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var buf bytes.Buffer
	_, err := s.Snapshot(context.Background(), SnapshotRequest{URL: "https://git.test:" + port + "/octo/many.git", MaxFiles: 10}, &buf)
	runtime.ReadMemStats(&after)
	if got := reasonOf(t, err); got != ReasonTooManyFiles {
		t.Fatalf("reason = %s (%v), want %s", got, err, ReasonTooManyFiles)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 12<<20 {
		t.Fatalf("scoutd allocated %d MiB to refuse a pack of %d objects for a 10-entry snapshot", alloc>>20, files)
	}
}
