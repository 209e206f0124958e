package harness

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ImageSpec describes the test image: a busybox rootfs with a claude user and
// the in-box binaries.
type ImageSpec struct {
	// Busybox is the host path of a statically linked busybox.
	Busybox string
	// Bins maps a file name under /usr/local/bin to the host binary to copy.
	Bins map[string]string
	// Scripts maps a file name under /usr/local/bin to a script's text.
	Scripts map[string]string
	// Dynamic maps an image path ("usr/bin/curl") to a dynamically linked
	// host binary; the binary and every library ldd lists for it (at the
	// same paths) go into the image.
	Dynamic map[string]string
	// CAPEM becomes /etc/ssl/certs/ca-certificates.crt (the only trust root).
	CAPEM []byte
	// Entrypoint is the image's entrypoint.
	Entrypoint []string
}

// Image is a test image imported into a podman service.
type Image struct {
	// Ref is the tag, localhost/claude-box-test:<hash>.
	Ref string
	// ID is the image id podman assigned.
	ID string
	// Hash is the hash of the rootfs tarball (the cache key).
	Hash string
}

// Box user and paths baked into the image.
const (
	BoxUID  = 1000
	BoxHome = "/home/claude"
)

// CheckBusybox returns the path of a static busybox.
func CheckBusybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		_ = f.Close()
		if static {
			return p, nil
		}
	}
	return "", errors.New("no static busybox (apt-get install -y busybox-static)")
}

// entry is one file of the rootfs tarball.
type entry struct {
	name     string // without leading slash
	mode     int64
	uid      int
	typ      byte
	linkname string
	data     []byte
	src      string // host file to copy, when data is nil
}

// epoch is every entry's mtime: the tarball depends on its inputs only.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// rootfs lists the image's entries.
func (s ImageSpec) rootfs(ctx context.Context) ([]entry, error) {
	var es []entry
	dir := func(name string, mode int64, uid int) {
		es = append(es, entry{name: name, mode: mode, uid: uid, typ: tar.TypeDir})
	}
	file := func(name string, mode int64, data []byte) {
		es = append(es, entry{name: name, mode: mode, typ: tar.TypeReg, data: data})
	}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin",
		"etc", "etc/ssl", "etc/ssl/certs", "home", "var", "run", "dev", "proc", "sys", "root", "work"} {
		dir(d, 0o755, 0)
	}
	dir("tmp", 0o1777, 0)
	dir("var/tmp", 0o1777, 0)
	dir("home/claude", 0o755, BoxUID)
	dir("home/claude/.config", 0o755, BoxUID)
	dir("home/claude/.config/claude", 0o700, BoxUID)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nclaude:x:1000:1000:claude:/home/claude:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nclaude:x:1000:\nnogroup:x:65534:\n"))
	file("etc/ssl/certs/ca-certificates.crt", 0o644, s.CAPEM)
	es = append(es, entry{name: "bin/busybox", mode: 0o755, typ: tar.TypeReg, src: s.Busybox})
	applets, err := (command{Path: s.Busybox, Args: []string{"--list-full"}}).output(ctx)
	if err != nil {
		return nil, fmt.Errorf("busybox applets: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(applets)))
	for sc.Scan() {
		name := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "/")
		if name == "" || name == "bin/busybox" || strings.Contains(name, "..") {
			continue
		}
		es = append(es, entry{name: name, mode: 0o777, typ: tar.TypeSymlink, linkname: "/bin/busybox"})
	}
	for name, src := range s.Bins {
		if !cleanName(name) || strings.Contains(name, "/") {
			return nil, fmt.Errorf("image binary name %q", name)
		}
		es = append(es, entry{name: "usr/local/bin/" + name, mode: 0o755, typ: tar.TypeReg, src: src})
	}
	for name, text := range s.Scripts {
		if !cleanName(name) || strings.Contains(name, "/") {
			return nil, fmt.Errorf("image script name %q", name)
		}
		file("usr/local/bin/"+name, 0o755, []byte(text))
	}
	dynNames := make([]string, 0, len(s.Dynamic))
	for name := range s.Dynamic {
		dynNames = append(dynNames, name)
	}
	sort.Strings(dynNames)
	for _, name := range dynNames {
		if !cleanName(name) {
			return nil, fmt.Errorf("image path %q", name)
		}
		libs, err := sharedLibs(ctx, s.Dynamic[name])
		if err != nil {
			return nil, err
		}
		es = append(es, entry{name: name, mode: 0o755, typ: tar.TypeReg, src: s.Dynamic[name]})
		for _, lib := range libs {
			es = append(es, entry{name: strings.TrimPrefix(lib, "/"), mode: 0o755, typ: tar.TypeReg, src: lib})
		}
	}
	// Every file's parent directories exist as entries of their own.
	have := map[string]bool{}
	for _, e := range es {
		if e.typ == tar.TypeDir {
			have[e.name] = true
		}
	}
	for _, e := range es {
		for d := path.Dir(e.name); d != "." && !have[d]; d = path.Dir(d) {
			have[d] = true
			es = append(es, entry{name: d, mode: 0o755, typ: tar.TypeDir})
		}
	}
	// Later entries win (a script may replace a busybox applet of the same name).
	seen := map[string]int{}
	var out []entry
	for _, e := range es {
		if i, ok := seen[e.name]; ok {
			out[i] = e
			continue
		}
		seen[e.name] = len(out)
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// writeTar writes the entries as a deterministic tarball.
func writeTar(w io.Writer, es []entry) error {
	tw := tar.NewWriter(w)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, Typeflag: e.typ, Linkname: e.linkname, ModTime: epoch, Format: tar.FormatPAX}
		if e.typ == tar.TypeDir {
			h.Name += "/"
		}
		var body io.Reader
		switch {
		case e.typ != tar.TypeReg:
		case e.data != nil:
			h.Size = int64(len(e.data))
			body = strings.NewReader(string(e.data))
		default:
			if err := copyFile(tw, h, e.src); err != nil {
				return fmt.Errorf("image file %s: %w", e.name, err)
			}
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", e.name, err)
		}
		if body != nil {
			if _, err := io.Copy(tw, body); err != nil {
				return fmt.Errorf("tar %s: %w", e.name, err)
			}
		}
	}
	return tw.Close()
}

// copyFile writes h with the size of the host file src, then its contents.
func copyFile(tw *tar.Writer, h *tar.Header, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// CacheDir is where the suite keeps what it may reuse between runs:
// $CLAUDE_BOX_E2E_CACHE, else the user cache dir's claude-box-e2e.
func CacheDir() (string, error) {
	if d := os.Getenv("CLAUDE_BOX_E2E_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return filepath.Join(d, "claude-box-e2e"), nil
}

// BuildImage writes the rootfs tarball into cacheDir (named by its hash, so an
// unchanged image is not rewritten) and imports it into p unless p already
// has that tag.
func BuildImage(ctx context.Context, p *Podman, cacheDir string, spec ImageSpec) (Image, error) {
	es, err := spec.rootfs(ctx)
	if err != nil {
		return Image{}, err
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return Image{}, fmt.Errorf("image cache: %w", err)
	}
	tmp, err := os.CreateTemp(cacheDir, "rootfs-*.tar.tmp")
	if err != nil {
		return Image{}, fmt.Errorf("image cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	if err := writeTar(bw, es); err != nil {
		_ = tmp.Close()
		return Image{}, err
	}
	if err := bw.Flush(); err != nil {
		_ = tmp.Close()
		return Image{}, fmt.Errorf("image cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Image{}, fmt.Errorf("image cache: %w", err)
	}
	// The entrypoint is part of the image too.
	fmt.Fprintf(h, "\x00entrypoint=%q", spec.Entrypoint)
	sum := hex.EncodeToString(h.Sum(nil))[:20]
	tarPath := filepath.Join(cacheDir, "rootfs-"+sum+".tar")
	if _, err := os.Stat(tarPath); err != nil {
		if err := os.Rename(tmp.Name(), tarPath); err != nil {
			return Image{}, fmt.Errorf("image cache: %w", err)
		}
	}
	pruneCache(cacheDir, tarPath)
	img := Image{Ref: "localhost/claude-box-test:" + sum, Hash: sum}
	if _, err := p.CLI(ctx, "image", "exists", img.Ref); err != nil {
		ep := `ENTRYPOINT []`
		if len(spec.Entrypoint) > 0 {
			ep = "ENTRYPOINT " + jsonArray(spec.Entrypoint)
		}
		args := []string{"import", "--quiet",
			"--change", ep,
			"--change", "CMD []",
			"--change", "WORKDIR " + BoxHome,
			"--change", "ENV HOME=" + BoxHome,
			"--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
			"--change", "USER 1000:1000",
			tarPath, img.Ref}
		if _, err := p.CLI(ctx, args...); err != nil {
			return Image{}, fmt.Errorf("import test image: %w", err)
		}
	}
	out, err := p.CLI(ctx, "image", "inspect", "--format", "{{.Id}}", img.Ref)
	if err != nil {
		return Image{}, fmt.Errorf("inspect test image: %w", err)
	}
	img.ID = strings.TrimSpace(string(out))
	return img, nil
}

// jsonArray renders ss as a JSON array of strings (exec form).
func jsonArray(ss []string) string {
	b, _ := json.Marshal(ss) // a []string always marshals
	return string(b)
}

// cleanName guards tar names built from map keys.
func cleanName(n string) bool {
	return n == path.Clean(n) && !strings.HasPrefix(n, "/") && !strings.Contains(n, "..")
}

// pruneCache removes rootfs tarballs other than keep that are over a day old.
func pruneCache(dir, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, "rootfs-*.tar"))
	for _, p := range old {
		if st, err := os.Stat(p); err == nil && p != keep && time.Since(st.ModTime()) > 24*time.Hour {
			_ = os.Remove(p)
		}
	}
}

// sharedLibs lists the absolute paths of the shared libraries (and the
// dynamic loader) that ldd reports for bin.
func sharedLibs(ctx context.Context, bin string) ([]string, error) {
	out, err := (command{Path: "ldd", Args: []string{bin}}).output(ctx)
	if err != nil {
		return nil, fmt.Errorf("shared libraries of %s: %w", bin, err)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		// "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x…)"; vdso has no file.
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, path.Clean(f[2]))
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, path.Clean(f[0]))
		case len(f) >= 2 && f[1] == "=>" && (len(f) < 3 || !strings.HasPrefix(f[2], "/")) && !strings.HasPrefix(f[0], "linux-vdso"):
			return nil, fmt.Errorf("shared libraries of %s: %q not found", bin, f[0])
		}
	}
	return libs, nil
}
