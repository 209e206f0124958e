package entry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func fixture(t *testing.T, status, pids string) Paths {
	t.Helper()
	dir := t.TempDir()
	p := Paths{Status: filepath.Join(dir, "status"), PidsMax: []string{filepath.Join(dir, "v2"), filepath.Join(dir, "v1")}, NetSocket: filepath.Join(dir, "netd.sock")}
	if err := os.WriteFile(p.Status, []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	if pids != "" {
		if err := os.WriteFile(p.PidsMax[1], []byte(pids+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

const goodStatus = "Name:\tx\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n"

func TestCheckFloor(t *testing.T) {
	if err := CheckFloor(fixture(t, goodStatus, "1024"), 1000); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, status, pids string
		uid                int
		why                []string
	}{
		{"root", goodStatus, "1024", 0, []string{"uid is 0"}},
		{"caps", strings.Replace(goodStatus, "0000000000000000", "00000000a80425fb", 1), "1024", 1000, []string{`CapEff is "00000000a80425fb"`}},
		{"nnp", strings.Replace(goodStatus, "NoNewPrivs:\t1", "NoNewPrivs:\t0", 1), "1024", 1000, []string{`NoNewPrivs is "0"`}},
		{"seccomp", strings.Replace(goodStatus, "Seccomp:\t2", "Seccomp:\t0", 1), "1024", 1000, []string{`Seccomp is "0"`}},
		{"pids max", goodStatus, "max", 1000, []string{`pids.max is "max"`}},
		{"no pids", goodStatus, "", 1000, []string{"no pids.max"}},
		{"everything", "CapEff:\t1\n", "max", 0, []string{"uid is 0", "CapEff", "NoNewPrivs", "Seccomp", "pids.max"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckFloor(fixture(t, c.status, c.pids), c.uid)
			if !errors.Is(err, ErrFloor) {
				t.Fatalf("got %v, want ErrFloor", err)
			}
			for _, w := range c.why {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v does not name %q", err, w)
				}
			}
		})
	}
}

func TestRunExecs(t *testing.T) {
	p := fixture(t, goodStatus, "64")
	var gotPath string
	var gotArgv []string
	cfg := Config{
		Paths: p, UID: 1000, Getenv: func(string) string { return "" },
		Exec: func(path string, argv, env []string) error { gotPath, gotArgv = path, argv; return nil },
	}
	cfg.Args = []string{"sh", "--append-system-prompt", "rules", "-c", "true"}
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(gotPath, "/sh") || !slices.Equal(gotArgv, []string{"sh", "--append-system-prompt", "rules", "-c", "true"}) {
		t.Fatalf("exec %s %q", gotPath, gotArgv)
	}
	cfg.Getenv = func(k string) string { return map[string]string{"CLAUDE_BOX_EXEC": "true"}[k] }
	if err := Run(context.Background(), cfg); err != nil || !strings.HasSuffix(gotPath, "/true") || gotArgv[0] != "true" || gotArgv[1] != "--append-system-prompt" {
		t.Fatalf("CLAUDE_BOX_EXEC: %v %s %q", err, gotPath, gotArgv)
	}
	cfg.Getenv = func(string) string { return "" }
	cfg.Args = []string{"--exec", "env", "a"}
	if err := Run(context.Background(), cfg); err != nil || gotArgv[0] != "env" || gotArgv[1] != "a" {
		t.Fatalf("--exec: %v %q", err, gotArgv)
	}
	// No program, no TTY: wait until cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg.Args = nil
	gotArgv = nil
	if err := Run(ctx, cfg); err != nil || gotArgv != nil {
		t.Fatalf("wait: %v %q", err, gotArgv)
	}
	// A missing floor execs nothing.
	cfg.Paths = fixture(t, goodStatus, "max")
	cfg.Args = []string{"sh"}
	if err := Run(context.Background(), cfg); !errors.Is(err, ErrFloor) || gotArgv != nil {
		t.Fatalf("floor: %v %q", err, gotArgv)
	}
}
