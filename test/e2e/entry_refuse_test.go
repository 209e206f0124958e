package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// entryRefusal is how claude-box-entry starts the line that refuses a floor.
const entryRefusal = "claude-box-entry: refusing to start: the promised security floor is missing: "

// TestEntrypointRefusesAWeakFloor: the test image run by podman directly
// (no launcher), with the box the launcher plans (`claude-box --dry-run`)
// except one part of the floor weakened, is refused by its entrypoint:
// podman run exits 126, the one refusal line names exactly the weakened part,
// and the program the entrypoint would exec never runs — its canary is
// neither printed nor written to the account volume. With the full floor
// the same box runs the program.
func TestEntrypointRefusesAWeakFloor(t *testing.T) {
	w := newWorld(t)
	w.s.bin(t, "claude-box-entry")
	const canary = "ENTRY-CANARY-RAN"
	const configDir = "/home/claude/.config/claude"
	planned := w.plan(t, "e2e-refuse", "--", "sh", "-c", "echo "+canary+"; touch "+configDir+"/canary")
	promised := planned.Env["CLAUDE_BOX_PIDS_LIMIT"]
	if promised == "" || promised != strconv.FormatInt(planned.PidsLimit, 10) {
		t.Fatalf("planned box promises CLAUDE_BOX_PIDS_LIMIT=%q for a pids limit of %d, want them equal", promised, planned.PidsLimit)
	}
	if len(planned.Volumes) != 1 || planned.Volumes[0].Dest != configDir {
		t.Fatalf("planned volumes = %+v, want the account volume at %s", planned.Volumes, configDir)
	}
	nproc := ""
	for _, r := range planned.Rlimits {
		if r.Type == "nproc" {
			nproc = strconv.FormatUint(r.Value, 10)
		}
	}
	// Without a pids.max the entrypoint accepts a hard RLIMIT_NPROC no
	// higher than the promise; a rootful box's is far above it.
	if n, _ := strconv.ParseInt(nproc, 10, 64); n <= planned.PidsLimit {
		t.Fatalf("planned RLIMIT_NPROC = %q, want one above the pids limit %d (rootful), so that dropping the pids limit is a weakening", nproc, planned.PidsLimit)
	}

	cases := []struct {
		name string
		// weaken changes the planned box and returns extra podman run flags.
		weaken func(b *plannedBox) []string
		// part is the refusal's text after entryRefusal; "" for the control.
		part string
	}{
		{name: "full floor"},
		{
			name:   "capability added",
			weaken: func(*plannedBox) []string { return []string{"--cap-add=SYS_ADMIN"} },
			// podman adds it to every set; the entrypoint names each one.
			part: `CapEff is "0000000000200000" (want all capabilities dropped); ` +
				`CapPrm is "0000000000200000" (want all capabilities dropped); ` +
				`CapInh is "0000000000200000" (want all capabilities dropped); ` +
				`CapAmb is "0000000000200000" (want all capabilities dropped); ` +
				`CapBnd is "0000000000200000" (want all capabilities dropped)`,
		},
		{
			name:   "seccomp unconfined",
			weaken: func(b *plannedBox) []string { b.SeccompProfile = "unconfined"; return nil },
			part:   `Seccomp is "0" (want 2, filtering)`,
		},
		{
			name:   "no pids limit",
			weaken: func(b *plannedBox) []string { b.PidsLimit = -1; return nil },
			part:   `pids.max is "max", and RLIMIT_NPROC is ` + nproc + ` (want a pids limit, or RLIMIT_NPROC at most the promised ` + promised + `)`,
		},
		{
			name:   "pids limit above the promise",
			weaken: func(b *plannedBox) []string { b.PidsLimit *= 4; return nil },
			part:   "pids.max is " + strconv.FormatInt(4*planned.PidsLimit, 10) + " (want at most the promised " + promised + ")",
		},
		{
			name:   "no-new-privileges off",
			weaken: func(b *plannedBox) []string { b.NoNewPrivs = false; return nil },
			part:   `NoNewPrivs is "0" (want 1)`,
		},
		{
			name:   "root user",
			weaken: func(b *plannedBox) []string { b.User = "0:0"; return nil },
			part:   "uid is 0 (want the box user, 1000)",
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			b := planned
			b.Name = planned.Name + "-" + strconv.Itoa(i)
			b.Volumes = append(b.Volumes[:0:0], planned.Volumes...)
			b.Volumes[0].Name = "claude-e2e-refuse-" + strconv.Itoa(i)
			var extra []string
			if tc.weaken != nil {
				extra = tc.weaken(&b)
			}
			res, err := w.s.podman.CLIRun(ctx, b.podmanRun(t, append([]string{"--rm"}, extra...)...)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = w.s.podman.CLI(context.Background(), "volume", "rm", "--force", b.Volumes[0].Name) })
			out := "--- stdout\n" + res.Stdout + "\n--- stderr\n" + res.Stderr
			wrote := volumeHas(t, w, b.Volumes[0].Name, "canary")

			if tc.part == "" {
				if res.Code != 0 || !strings.Contains(res.Stdout, canary) || !wrote {
					t.Fatalf("full floor: exit %d, canary printed %t, written %t; want 0, true, true\n%s",
						res.Code, strings.Contains(res.Stdout, canary), wrote, out)
				}
				return
			}
			if res.Code != 126 {
				t.Errorf("exit %d, want 126 (the entrypoint's refusal)\n%s", res.Code, out)
			}
			var refusals []string
			for _, line := range strings.Split(res.Stderr, "\n") {
				if strings.HasPrefix(line, "claude-box-entry:") {
					refusals = append(refusals, line)
				}
			}
			if want := entryRefusal + tc.part; len(refusals) != 1 || refusals[0] != want {
				t.Errorf("entrypoint said %q, want exactly [%q]\n%s", refusals, want, out)
			}
			if strings.Contains(res.Stdout, canary) || strings.Contains(res.Stderr, canary) {
				t.Errorf("the program ran (canary printed) despite the weakened floor\n%s", out)
			}
			if wrote {
				t.Errorf("the program ran (canary written to the account volume) despite the weakened floor")
			}
		})
	}
}

// volumeHas reports whether the named volume of the isolated service holds
// file, looked up on the host.
func volumeHas(t testing.TB, w *world, volume, file string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := w.s.podman.CLI(ctx, "volume", "inspect", "--format", "{{.Mountpoint}}", volume)
	if err != nil {
		t.Fatalf("inspect volume %s: %v", volume, err)
	}
	_, err = os.Stat(filepath.Join(strings.TrimSpace(string(out)), file))
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("stat %s in volume %s: %v", file, volume, err)
	}
	return err == nil
}
