package harness

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Upstream is a loopback server that counts every connection it accepts and
// records every request it serves.
type Upstream struct {
	// Name is the host name its certificate is for (e.g. "allowed.test").
	Name string
	// Addr is its listening address, 127.0.0.1:PORT.
	Addr string
	// Port is its TCP port.
	Port int
	// TLS reports whether it speaks TLS.
	TLS bool

	conns atomic.Int64
	mu    sync.Mutex
	seen  []Seen
	srv   *http.Server
}

// Seen is one request an upstream served.
type Seen struct {
	Method string
	Path   string
	Host   string
	Header http.Header
}

// URL is the upstream's base URL under its name, e.g. https://allowed.test:4431.
func (u *Upstream) URL() string {
	scheme := "http"
	if u.TLS {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s:%d", scheme, u.Name, u.Port)
}

// HostPort is name:port.
func (u *Upstream) HostPort() string { return net.JoinHostPort(u.Name, strconv.Itoa(u.Port)) }

// Conns is how many TCP connections it has accepted.
func (u *Upstream) Conns() int64 { return u.conns.Load() }

// Requests returns a copy of the requests it has served.
func (u *Upstream) Requests() []Seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Seen(nil), u.seen...)
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// NewUpstream serves h on 127.0.0.1 (TLS with a leaf for name signed by ca
// when ca is not nil) until the test ends.
func NewUpstream(tb testing.TB, ca *CA, name string, h http.Handler) *Upstream {
	tb.Helper()
	return NewUpstreamOn(tb, "127.0.0.1:0", ca, name, h)
}

// NewUpstreamOn is NewUpstream listening on addr (e.g. "0.0.0.0:0", to be
// reachable on every host address).
func NewUpstreamOn(tb testing.TB, addr string, ca *CA, name string, h http.Handler) *Upstream {
	tb.Helper()
	u, err := StartUpstream(addr, ca, name, h)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(u.Close)
	return u
}

// StartUpstream is NewUpstreamOn for callers without a testing.TB; Close stops it.
func StartUpstream(addr string, ca *CA, name string, h http.Handler) (*Upstream, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}
	u := &Upstream{Name: name, Addr: l.Addr().String(), Port: l.Addr().(*net.TCPAddr).Port}
	var ln net.Listener = countingListener{Listener: l, n: &u.conns}
	if ca != nil {
		leaf, err := ca.Leaf(name, "127.0.0.1")
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12})
		u.TLS = true
	}
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, Seen{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header.Clone()})
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	})}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

// Close stops the upstream.
func (u *Upstream) Close() { _ = u.srv.Close() }

// Text serves body as text/plain on every path.
func Text(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(body))
	})
}

// GitServer serves the bare repositories under Root over smart HTTP with
// git http-backend; pushes are enabled.
type GitServer struct {
	*Upstream
	// Root holds the bare repositories (NAME.git).
	Root string
}

// CheckGit reports whether git and git-http-backend are installed.
func CheckGit() (git, backend string, err error) {
	git, err = exec.LookPath("git")
	if err != nil {
		return "", "", fmt.Errorf("git not installed (apt-get install -y git): %w", err)
	}
	out, err := (command{Path: git, Args: []string{"--exec-path"}}).output(context.Background())
	if err != nil {
		return "", "", err
	}
	backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		return "", "", fmt.Errorf("git-http-backend: %w", err)
	}
	return git, backend, nil
}

// NewGitServer serves root over HTTPS as name until the test ends.
func NewGitServer(tb testing.TB, ca *CA, name, root string) *GitServer {
	tb.Helper()
	_, backend, err := CheckGit()
	Need(tb, "git", err)
	h := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER=e2e",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + root,
		},
	}
	return &GitServer{Upstream: NewUpstream(tb, ca, name, h), Root: root}
}

// Issue is what the fake GitHub API returns for an issue.
type Issue struct {
	Number int    `json:"number"`
	Title  string `json:"title"`
	Body   string `json:"body"`
	State  string `json:"state"`
}

// GitHubAPI is a fake GitHub REST API that serves issues and records the
// Authorization header of every request.
type GitHubAPI struct {
	*Upstream
}

// NewGitHubAPI serves issues ("owner/repo#N" → Issue) as name until the test ends.
func NewGitHubAPI(tb testing.TB, ca *CA, name string, issues map[string]Issue) *GitHubAPI {
	tb.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /repos/OWNER/REPO/issues/N[/comments]
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		w.Header().Set("Content-Type", "application/json")
		if len(parts) >= 5 && parts[0] == "repos" && (parts[3] == "issues" || parts[3] == "pulls") {
			if len(parts) == 6 && parts[5] == "comments" {
				_, _ = w.Write([]byte("[]"))
				return
			}
			if is, ok := issues[parts[1]+"/"+parts[2]+"#"+parts[4]]; ok && len(parts) == 5 {
				out := map[string]any{
					"number": is.Number, "title": is.Title, "body": is.Body, "state": is.State,
					"user": map[string]any{"login": "octocat"}, "labels": []any{},
					"created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z",
					"html_url": "https://github.test/" + parts[1] + "/" + parts[2] + "/issues/" + parts[4],
					"comments": 0,
				}
				_ = json.NewEncoder(w).Encode(out)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"Not Found"}`))
	})
	return &GitHubAPI{Upstream: NewUpstream(tb, ca, name, h)}
}

// Authorizations lists the Authorization header of every request seen.
func (g *GitHubAPI) Authorizations() []string {
	var out []string
	for _, s := range g.Requests() {
		out = append(out, s.Header.Get("Authorization"))
	}
	return out
}
