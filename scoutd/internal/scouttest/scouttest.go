// Package scouttest holds the loopback fixtures of scoutd's tests and
// benchmarks: a throwaway CA whose leaf covers test names, TLS servers on
// 127.0.0.1, and a real git repository served over smart HTTP by
// git-http-backend. Nothing here reaches beyond loopback.
package scouttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// HTTPBackend is git's smart-HTTP CGI program on Debian.
const HTTPBackend = "/usr/lib/git-core/git-http-backend"

// CA is a throwaway certificate authority with one leaf for Names.
type CA struct {
	Pool  *x509.CertPool
	PEM   []byte
	Leaf  tls.Certificate
	Names []string
}

// NewCA makes a CA and a leaf valid for names.
func NewCA(tb testing.TB, names ...string) *CA {
	tb.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scouttest ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &CA{
		Pool:  pool,
		PEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Leaf:  tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key},
		Names: names,
	}
}

// Server serves h over TLS on 127.0.0.1 until the test ends; it returns the
// server and its port.
func (c *CA) Server(tb testing.TB, h http.Handler) (*httptest.Server, string) {
	tb.Helper()
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{c.Leaf}}
	s.Config.ErrorLog = nil
	s.StartTLS()
	tb.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	return s, port
}

// Recorder remembers the headers of every request it passes on.
type Recorder struct {
	ch chan http.Header
}

// NewRecorder returns a Recorder with room for n requests.
func NewRecorder(n int) *Recorder { return &Recorder{ch: make(chan http.Header, n)} }

// Wrap records, then serves with h.
func (r *Recorder) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case r.ch <- req.Header.Clone():
		default:
		}
		h.ServeHTTP(w, req)
	})
}

// Seen drains what was recorded so far.
func (r *Recorder) Seen() []http.Header {
	var out []http.Header
	for {
		select {
		case h := <-r.ch:
			out = append(out, h)
		default:
			return out
		}
	}
}

// Git runs git with a fixed identity and no system or user config.
func Git(tb testing.TB, dir string, args ...string) {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// NeedGit skips when git or git-http-backend is missing.
func NeedGit(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		tb.Skip("git not installed (apt-get install git)")
	}
	if _, err := os.Stat(HTTPBackend); err != nil {
		tb.Skipf("%s missing (apt-get install git)", HTTPBackend)
	}
}

// Repo makes a work tree with files (name → content; a value starting with
// "symlink:" makes a symlink), commits it on main, and publishes a bare
// clone as root/owner/name.git. It returns the work tree and root.
func Repo(tb testing.TB, files map[string]string, owner, name string) (work, root string) {
	tb.Helper()
	NeedGit(tb)
	base := tb.TempDir()
	work = filepath.Join(base, "work")
	root = filepath.Join(base, "srv")
	for n, c := range files {
		p := filepath.Join(work, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if t, ok := strings.CutPrefix(c, "symlink:"); ok {
			if err := os.Symlink(t, p); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		mode := fs.FileMode(0o644)
		if strings.HasPrefix(c, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(c), mode); err != nil {
			tb.Fatal(err)
		}
	}
	Git(tb, base, "init", "-q", "-b", "main", work)
	Git(tb, work, "add", "-A")
	Git(tb, work, "commit", "-q", "-m", "snapshot")
	if err := os.MkdirAll(filepath.Join(root, owner), 0o755); err != nil {
		tb.Fatal(err)
	}
	Git(tb, base, "clone", "-q", "--bare", work, filepath.Join(root, owner, name+".git"))
	return work, root
}

// ManyFiles returns n small files spread over directories.
func ManyFiles(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[filepath.Join("d"+strconv.Itoa(i%100), "f"+strconv.Itoa(i)+".txt")] = strings.Repeat("line "+strconv.Itoa(i)+"\n", 1+i%9)
	}
	return m
}

// GitHandler serves the repositories under root over smart HTTP.
func GitHandler(root string) http.Handler {
	return &cgi.Handler{
		Path:   HTTPBackend,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		Stderr: io.Discard,
	}
}
