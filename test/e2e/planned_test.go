package e2e

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"testing"
)

// plannedBox is the box the launcher plans, as `claude-box --dry-run` prints
// it (launcher/internal/plan.Box's JSON). A test that runs the image without
// the launcher starts from it, so that it runs what a launch would.
type plannedBox struct {
	Name    string            `json:"name"`
	Image   string            `json:"image"`
	Labels  map[string]string `json:"labels"`
	User    string            `json:"user"`
	UserNS  string            `json:"userns"`
	Command []string          `json:"command"`
	Env     map[string]string `json:"env"`
	Workdir string            `json:"workdir"`
	Mounts  []struct {
		Source   string `json:"source"`
		Dest     string `json:"dest"`
		ReadOnly bool   `json:"readonly"`
	} `json:"mounts"`
	Volumes []struct {
		Name string `json:"name"`
		Dest string `json:"dest"`
	} `json:"volumes"`
	Tmpfs []struct {
		Dest    string `json:"dest"`
		Options string `json:"options"`
	} `json:"tmpfs"`
	Network        string   `json:"network"`
	CapDrop        []string `json:"cap_drop"`
	NoNewPrivs     bool     `json:"no_new_privileges"`
	PidsLimit      int64    `json:"pids_limit"`
	SeccompProfile string   `json:"seccomp_profile"`
	ReadOnlyRoot   bool     `json:"read_only_root"`
	Rlimits        []struct {
		Type  string `json:"type"`
		Value uint64 `json:"value"`
	} `json:"rlimits"`
	TTY   bool `json:"tty"`
	Stdin bool `json:"stdin"`
}

// plan runs `claude-box ACCOUNT --dry-run ARGS…` and returns the box it
// planned. The dry run mints nothing but does write the seccomp profile the
// box names.
func (w *world) plan(t testing.TB, account string, args ...string) plannedBox {
	t.Helper()
	r := w.ok(t, append([]string{account, "--dry-run"}, args...)...)
	var out struct {
		Box json.RawMessage `json:"box"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("parse the dry run's plan: %v\n%s", err, r)
	}
	// A field the launcher adds to its box must be added here too (and to
	// podmanRun), or the tests that copy the box would silently drop it.
	var b plannedBox
	dec := json.NewDecoder(bytes.NewReader(out.Box))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("parse the dry run's box (a new plan.Box field needs plannedBox and podmanRun to carry it): %v\n%s", err, r)
	}
	if b.Image == "" || b.User == "" || b.SeccompProfile == "" || len(b.Command) == 0 {
		t.Fatalf("the dry run planned an incomplete box: %+v\n%s", b, r)
	}
	return b
}

// podmanRun is the `podman run` argv that creates b the way the launcher's
// podman spec does (launcher/internal/podman.Spec), field by field, with
// the image's own entrypoint (claude-box-entry). An empty Name lets podman
// pick one. A TTY, which needs a terminal, is refused.
func (b plannedBox) podmanRun(t testing.TB, extra ...string) []string {
	t.Helper()
	if b.TTY {
		t.Fatalf("podmanRun: a planned box with a TTY is not supported")
	}
	args := []string{"run"}
	if b.Stdin {
		args = append(args, "--interactive")
	}
	if b.Name != "" {
		args = append(args, "--name", b.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(b.Labels)) {
		args = append(args, "--label", k+"="+b.Labels[k])
	}
	args = append(args, "--user", b.User)
	if b.UserNS != "" {
		args = append(args, "--userns", b.UserNS)
	}
	for _, k := range slices.Sorted(maps.Keys(b.Env)) {
		args = append(args, "--env", k+"="+b.Env[k])
	}
	if b.Workdir != "" {
		args = append(args, "--workdir", b.Workdir)
	}
	for _, m := range b.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		args = append(args, "--volume", m.Source+":"+m.Dest+":"+mode+",nosuid,nodev")
	}
	for _, tm := range b.Tmpfs {
		args = append(args, "--tmpfs", tm.Dest+":"+tm.Options)
	}
	for _, v := range b.Volumes {
		args = append(args, "--volume", v.Name+":"+v.Dest+":rw,nosuid,nodev")
	}
	if b.Network == "none" {
		args = append(args, "--network=none")
	}
	for _, c := range b.CapDrop {
		args = append(args, "--cap-drop="+c)
	}
	if b.NoNewPrivs {
		args = append(args, "--security-opt=no-new-privileges")
	}
	args = append(args, "--pids-limit="+strconv.FormatInt(b.PidsLimit, 10))
	if b.SeccompProfile != "" {
		args = append(args, "--security-opt=seccomp="+b.SeccompProfile)
	}
	if b.ReadOnlyRoot {
		args = append(args, "--read-only")
	}
	args = append(args, "--read-only-tmpfs=false")
	for _, r := range b.Rlimits {
		v := strconv.FormatUint(r.Value, 10)
		args = append(args, "--ulimit="+r.Type+"="+v+":"+v)
	}
	args = append(args, extra...)
	args = append(args, b.Image)
	return append(args, b.Command...)
}
