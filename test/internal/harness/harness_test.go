package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCAIsDeterministicAndSignsLeaves(t *testing.T) {
	a, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.PEM(), b.PEM()) {
		t.Fatal("two NewCA calls gave different certificates: the image cache would never hit")
	}
	leaf, err := a.Leaf("allowed.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(leaf.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"allowed.test", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: b.Pool(), DNSName: name}); err != nil {
			t.Errorf("leaf does not verify for %s: %v", name, err)
		}
	}
}

func TestRootfsTarIsDeterministic(t *testing.T) {
	busybox, err := CheckBusybox()
	Need(t, "busybox-static", err)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := ImageSpec{Busybox: busybox, Bins: map[string]string{"tool": bin}, Scripts: map[string]string{"claude": "#!/bin/sh\n"}, CAPEM: []byte("ca")}
	render := func() []byte {
		es, err := spec.rootfs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := writeTar(&buf, es); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	first, second := render(), render()
	if !bytes.Equal(first, second) {
		t.Fatal("rootfs tarball differs between two renders of the same spec")
	}
	want := map[string]struct {
		uid  int
		mode int64
	}{
		"home/claude/":                {BoxUID, 0o755},
		"home/claude/.config/claude/": {BoxUID, 0o700},
		"tmp/":                        {0, 0o1777},
		"usr/local/bin/tool":          {0, 0o755},
		"usr/local/bin/claude":        {0, 0o755},
		"bin/sh":                      {0, 0o777},
	}
	tr := tar.NewReader(bytes.NewReader(first))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Mode&0o6000 != 0 {
			t.Errorf("%s is setuid/setgid", h.Name)
		}
		if w, ok := want[h.Name]; ok {
			if h.Uid != w.uid || h.Mode != w.mode {
				t.Errorf("%s: uid %d mode %o, want uid %d mode %o", h.Name, h.Uid, h.Mode, w.uid, w.mode)
			}
			delete(want, h.Name)
		}
	}
	for name := range want {
		t.Errorf("%s missing from the rootfs", name)
	}
}

func TestBuildImageRefusesEscapingNames(t *testing.T) {
	spec := ImageSpec{Busybox: "/bin/busybox", Bins: map[string]string{"../etc/passwd": "/dev/null"}}
	if _, err := spec.rootfs(context.Background()); err == nil {
		t.Fatal("a binary named ../etc/passwd was accepted")
	}
}

func TestSharedLibsListsLoaderAndLibc(t *testing.T) {
	git, _, err := CheckGit()
	Need(t, "git", err)
	libs, err := sharedLibs(context.Background(), git)
	if err != nil {
		t.Fatal(err)
	}
	var loader, libc bool
	for _, l := range libs {
		if !filepath.IsAbs(l) {
			t.Errorf("relative library path %q", l)
		}
		loader = loader || strings.Contains(l, "ld-linux")
		libc = libc || strings.HasSuffix(l, "/libc.so.6")
	}
	if !loader || !libc {
		t.Errorf("libs of %s = %v, want the loader and libc", git, libs)
	}
}
