package scout

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/dest"
)

// testNames are the names the test certificate covers; all resolve to
// 127.0.0.1 except private.test (10.1.2.3) and loop2.test (127.0.0.2).
var testNames = []string{"good.test", "other.test", "evil.test", "api.test", "git.test", "private.test", "loop2.test", "www.good.test"}

type env struct {
	t     *testing.T
	roots *x509.CertPool
	cert  tls.Certificate
	res   *dest.Static
}

func newEnv(t *testing.T) *env {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "scout test ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "good.test"},
		DNSNames:     testNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	res := &dest.Static{}
	for _, n := range testNames {
		res.Add(n, netip.MustParseAddr("127.0.0.1"))
	}
	res.Hosts["private.test"] = []netip.Addr{netip.MustParseAddr("10.1.2.3")}
	res.Hosts["loop2.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	return &env{t: t, roots: pool, cert: tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}, res: res}
}

// server starts a TLS server on 127.0.0.1 and returns it with its port.
func (e *env) server(h http.Handler) (*httptest.Server, string) {
	e.t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{e.cert}}
	s.StartTLS()
	e.t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	return s, port
}

// scout builds a Scout that trusts the test CA, resolves only test names
// and may dial 127.0.0.1 (and nothing else private).
func (e *env) scout(allow []string, mod func(*Config)) *Scout {
	e.t.Helper()
	var al dest.Allowlist
	for _, a := range allow {
		en, err := dest.ParseEntry(a)
		if err != nil {
			e.t.Fatal(err)
		}
		al = append(al, en)
	}
	cfg := Config{
		Allow:     al,
		Resolver:  e.res,
		Addrs:     dest.AddrPolicy{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		RootCAs:   e.roots,
		GitHubAPI: "https://api.test:1", // replaced by tests that read GitHub
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// recorder remembers every request's headers, to prove where the token went.
type recorder struct {
	mu   sync.Mutex
	seen []http.Header
	urls []string
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, req.Header.Clone())
		r.urls = append(r.urls, req.URL.String())
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func (r *recorder) headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.seen...)
}

func itoa(n int) string { return strconv.Itoa(n) }
