package entry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func fixture(t *testing.T, status, pids string) Paths {
	t.Helper()
	dir := t.TempDir()
	p := Paths{Status: filepath.Join(dir, "status"), PidsMax: []string{filepath.Join(dir, "v2"), filepath.Join(dir, "v1")}, NetSocket: filepath.Join(dir, "netd.sock"),
		Nproc: func() (uint64, uint64, error) { return unix.RLIM_INFINITY, unix.RLIM_INFINITY, nil }}
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

const goodStatus = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n" +
	"CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n"

func TestCheckFloor(t *testing.T) {
	if err := CheckFloor(fixture(t, goodStatus, "1024"), 1000, 1024); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, status, pids string
		uid                int
		why                []string
	}{
		{"root", goodStatus, "1024", 0, []string{"uid is 0"}},
		{"caps", strings.Replace(goodStatus, "CapEff:\t0000000000000000", "CapEff:\t00000000a80425fb", 1), "1024", 1000, []string{`CapEff is "00000000a80425fb"`}},
		// A permitted capability is one capset(2) away from effective; an
		// ambient or inheritable one survives execve; a bounding one means
		// --cap-drop=all was not applied.
		{"permitted caps", strings.Replace(goodStatus, "CapPrm:\t0000000000000000", "CapPrm:\t0000000000200000", 1), "1024", 1000, []string{`CapPrm is "0000000000200000"`}},
		{"ambient caps", strings.Replace(goodStatus, "CapAmb:\t0000000000000000", "CapAmb:\t0000000000000400", 1), "1024", 1000, []string{`CapAmb is "0000000000000400"`}},
		{"inheritable caps", strings.Replace(goodStatus, "CapInh:\t0000000000000000", "CapInh:\t0000000000000001", 1), "1024", 1000, []string{`CapInh is "0000000000000001"`}},
		{"bounding caps", strings.Replace(goodStatus, "CapBnd:\t0000000000000000", "CapBnd:\t000001ffffffffff", 1), "1024", 1000, []string{`CapBnd is "000001ffffffffff"`}},
		{"no permitted line", strings.Replace(goodStatus, "CapPrm:\t0000000000000000\n", "", 1), "1024", 1000, []string{`CapPrm is ""`}},
		{"nnp", strings.Replace(goodStatus, "NoNewPrivs:\t1", "NoNewPrivs:\t0", 1), "1024", 1000, []string{`NoNewPrivs is "0"`}},
		{"seccomp", strings.Replace(goodStatus, "Seccomp:\t2", "Seccomp:\t0", 1), "1024", 1000, []string{`Seccomp is "0"`}},
		{"pids max", goodStatus, "max", 1000, []string{`pids.max is "max", and RLIMIT_NPROC is unlimited (want a pids limit, or RLIMIT_NPROC at most the promised 1024)`}},
		{"no pids", goodStatus, "", 1000, []string{"no pids.max in ", "RLIMIT_NPROC is unlimited"}},
		{"pids above promise", goodStatus, "4096", 1000, []string{"pids.max is 4096 (want at most the promised 1024)"}},
		{"pids garbage", goodStatus, "12ab", 1000, []string{`pids.max is "12ab" (want a number)`}},
		{"everything", "CapEff:\t1\n", "max", 0, []string{"uid is 0", "CapEff", "NoNewPrivs", "Seccomp", "pids.max"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckFloor(fixture(t, c.status, c.pids), c.uid, 1024)
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

// TestNprocStandsInForMissingPids: where the runtime set no cgroup pids
// limit (rootless podman on cgroup v1), a hard RLIMIT_NPROC at most the
// promise is the ceiling; anything looser is refused with both reasons.
func TestNprocStandsInForMissingPids(t *testing.T) {
	cases := []struct {
		name, pids string
		soft, hard uint64
		err        error
		why        string
	}{
		{"no cgroup, nproc at promise", "", 1024, 1024, nil, ""},
		{"no cgroup, nproc below promise", "", 100, 512, nil, ""},
		{"cgroup max, nproc at promise", "max", 1024, 1024, nil, ""},
		{"no cgroup, nproc above promise", "", 1024, 1025, nil, "RLIMIT_NPROC is 1025 (want a pids limit, or RLIMIT_NPROC at most the promised 1024)"},
		{"no cgroup, nproc unlimited", "", unix.RLIM_INFINITY, unix.RLIM_INFINITY, nil, "RLIMIT_NPROC is unlimited"},
		{"no cgroup, soft above hard", "", 2048, 1024, nil, "RLIMIT_NPROC is 1024"},
		{"no cgroup, nproc unreadable", "", 0, 0, errors.New("EPERM"), "RLIMIT_NPROC is unreadable: EPERM"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := fixture(t, goodStatus, c.pids)
			p.Nproc = func() (uint64, uint64, error) { return c.soft, c.hard, c.err }
			err := CheckFloor(p, 1000, 1024)
			if c.why == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrFloor) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("got %v, want ErrFloor naming %q", err, c.why)
			}
		})
	}
	// A numeric cgroup limit wins: the rlimit is not consulted.
	p := fixture(t, goodStatus, "512")
	p.Nproc = func() (uint64, uint64, error) { t.Fatal("rlimit read although pids.max is set"); return 0, 0, nil }
	if err := CheckFloor(p, 1000, 1024); err != nil {
		t.Fatal(err)
	}
}

func TestPromised(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvPidsLimit {
				return v
			}
			return ""
		}
	}
	if n, err := Promised(env("")); err != nil || n != DefaultPidsLimit {
		t.Fatalf("absent: %d %v", n, err)
	}
	if n, err := Promised(env("64")); err != nil || n != 64 {
		t.Fatalf("64: %d %v", n, err)
	}
	for _, bad := range []string{"0", "-1", "x", "1e3", " 12"} {
		if _, err := Promised(env(bad)); !errors.Is(err, ErrFloor) || !strings.Contains(err.Error(), EnvPidsLimit) {
			t.Errorf("%q: %v", bad, err)
		}
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
