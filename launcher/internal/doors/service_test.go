package doors

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInitWritesUnitsForInstalledDaemons(t *testing.T) {
	bin := t.TempDir()
	for _, d := range []string{"netd", "keeperd"} {
		if err := os.WriteFile(filepath.Join(bin, d), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	home := t.TempDir()
	svc := func(d string) Service {
		return Service{Daemon: d, Socket: filepath.Join(home, ".claude-box/run", d+".sock"), Home: home, ConfigHome: filepath.Join(home, ".config")}
	}
	var out bytes.Buffer
	if err := Init([]Service{svc("netd"), svc("keeperd")}, &out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(home, ".config/systemd/user/claude-box-netd.service"))
	if err != nil {
		t.Fatal(err)
	}
	want := "ExecStart=" + filepath.Join(bin, "netd") + " serve --socket " + filepath.Join(home, ".claude-box/run/netd.sock")
	if !strings.Contains(string(b), want) || !strings.Contains(string(b), "WantedBy=default.target") {
		t.Fatalf("unit:\n%s\nwant line %s", b, want)
	}
	err = Init([]Service{svc("scoutd")}, &out)
	if err == nil || !strings.Contains(err.Error(), "scoutd is not installed on PATH") {
		t.Fatalf("missing binary: %v", err)
	}
}

func TestStatusOfAbsentDaemon(t *testing.T) {
	st := GetStatus(t.Context(), Service{Daemon: "netd", Socket: filepath.Join(t.TempDir(), "netd.sock")})
	if st.Running || st.Err == nil || !strings.Contains(st.Err.Error(), "no control socket") {
		t.Fatalf("%+v", st)
	}
}
