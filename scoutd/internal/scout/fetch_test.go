package scout

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
)

type bufWriter struct {
	head  *Head
	body  bytes.Buffer
	heads int
}

func (b *bufWriter) WriteHead(h Head) error { b.head = &h; b.heads++; return nil }
func (b *bufWriter) Write(p []byte) (int, error) {
	return b.body.Write(p)
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a classified *Error", err, err)
	}
	return e.Reason
}

func TestFetchRoundTrip(t *testing.T) {
	e := newEnv(t)
	body := make([]byte, 3<<20+17)
	_, _ = rand.Read(body)
	var rec recorder
	_, port := e.server(rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/start":
			http.Redirect(w, r, "https://www.good.test:"+portOf(r)+"/blob?x=1", http.StatusFound)
		case "/blob":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(body)
		case "/gz":
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "text/plain")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write([]byte(strings.Repeat("hello ", 1000)))
			_ = zw.Close()
		default:
			http.NotFound(w, r)
		}
	})))
	s := e.scout([]string{".good.test:" + port}, nil)

	var bw bufWriter
	head, dg, err := s.Fetch(context.Background(), FetchRequest{URL: "https://good.test:" + port + "/start"}, &bw)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !bytes.Equal(bw.body.Bytes(), body) {
		t.Fatalf("body differs: got %d bytes, want %d", bw.body.Len(), len(body))
	}
	sum := sha256.Sum256(body)
	if dg.Size != int64(len(body)) || dg.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("digest = %+v", dg)
	}
	if head.Status != 200 || head.ContentType != "application/octet-stream" || head.Redirects != 1 || bw.heads != 1 {
		t.Errorf("head = %+v (heads %d)", head, bw.heads)
	}
	if head.FinalURL != "https://www.good.test:"+port+"/blob" {
		t.Errorf("final url = %q (query must be redacted)", head.FinalURL)
	}
	for _, h := range rec.headers() {
		if h.Get("Authorization") != "" {
			t.Errorf("fetch sent Authorization")
		}
	}

	var gz bufWriter
	_, dg, err = s.Fetch(context.Background(), FetchRequest{URL: "https://good.test:" + port + "/gz"}, &gz)
	if err != nil {
		t.Fatalf("Fetch gz: %v", err)
	}
	if gz.body.String() != strings.Repeat("hello ", 1000) || dg.Size != 6000 {
		t.Errorf("gzip body not decoded: %d bytes", gz.body.Len())
	}
}

func portOf(r *http.Request) string {
	_, p, _ := strings.Cut(r.Host, ":")
	return p
}

func TestFetchRefuses(t *testing.T) {
	e := newEnv(t)
	var otherRec recorder
	_, otherPort := e.server(otherRec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "other")
	})))
	bomb := gzipBomb(t, 64)
	_, port := e.server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := portOf(r)
		switch r.URL.Path {
		case "/to-evil":
			http.Redirect(w, r, "https://evil.test:"+p+"/", http.StatusFound)
		case "/to-other":
			http.Redirect(w, r, "https://other.test:"+otherPort+"/", http.StatusFound)
		case "/to-private":
			http.Redirect(w, r, "https://private.test:"+p+"/", http.StatusFound)
		case "/to-loop2":
			http.Redirect(w, r, "https://loop2.test:"+p+"/", http.StatusFound)
		case "/to-ip":
			http.Redirect(w, r, "https://127.0.0.1:"+p+"/", http.StatusFound)
		case "/to-http":
			http.Redirect(w, r, "http://good.test:"+p+"/", http.StatusFound)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/big":
			_, _ = w.Write(make([]byte, 2<<20))
		case "/big-chunked":
			for range 40 {
				_, _ = w.Write(make([]byte, 64<<10))
				w.(http.Flusher).Flush()
			}
		case "/bomb":
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(bomb)
		case "/br":
			w.Header().Set("Content-Encoding", "br")
			_, _ = w.Write([]byte("xx"))
		case "/slow-body":
			_, _ = w.Write([]byte("first bytes"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/slow-head":
			<-r.Context().Done()
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	base := "https://good.test:" + port
	s := e.scout([]string{"good.test:" + port, "private.test:" + port, "loop2.test:" + port}, func(c *Config) {
		c.Limits = Limits{MaxBytes: 1 << 20, MaxDecodedBytes: 1 << 20, FirstByte: time.Second, Idle: time.Second, MaxRedirects: 3} // ceilings a loaded machine does not trip by accident
	})
	for _, tc := range []struct {
		name, url string
		req       FetchRequest
		reason    string
	}{
		{"denied host", "https://evil.test:" + port + "/", FetchRequest{}, "not_allowlisted"},
		{"denied port", "https://good.test:1/", FetchRequest{}, "port_not_allowed"},
		{"file scheme", "file:///etc/passwd", FetchRequest{}, "bad_scheme"},
		{"gopher scheme", "gopher://good.test:" + port + "/", FetchRequest{}, "bad_scheme"},
		{"ftp scheme", "ftp://good.test:" + port + "/", FetchRequest{}, "bad_scheme"},
		{"plain http", "http://good.test:" + port + "/", FetchRequest{}, ReasonHTTPNotAllowed},
		{"userinfo", "https://user:pw@good.test:" + port + "/", FetchRequest{}, "bad_target"},
		{"ip literal", "https://127.0.0.1:" + port + "/", FetchRequest{}, "ip_literal"},
		{"name resolves private", "https://private.test:" + port + "/", FetchRequest{}, "private_address"},
		{"name resolves other loopback", "https://loop2.test:" + port + "/", FetchRequest{}, "private_address"},
		{"redirect to denied host", base + "/to-evil", FetchRequest{}, "not_allowlisted"},
		{"redirect to unlisted server", base + "/to-other", FetchRequest{}, "not_allowlisted"},
		{"redirect to private address", base + "/to-private", FetchRequest{}, "private_address"},
		{"redirect to ip literal", base + "/to-ip", FetchRequest{}, "ip_literal"},
		{"redirect to http", base + "/to-http", FetchRequest{}, ReasonHTTPNotAllowed},
		{"redirect to file", base + "/to-file", FetchRequest{}, "bad_scheme"},
		{"too many redirects", base + "/loop", FetchRequest{}, ReasonTooManyRedirects},
		{"oversize body", base + "/big", FetchRequest{}, ReasonTooLarge},
		{"oversize chunked body", base + "/big-chunked", FetchRequest{}, ReasonTooLarge},
		{"request lowers ceiling", base + "/ok", FetchRequest{MaxBytes: 1}, ReasonTooLarge},
		{"request cannot raise ceiling", base + "/big", FetchRequest{MaxBytes: 1 << 30}, ReasonTooLarge},
		{"gzip bomb", base + "/bomb", FetchRequest{}, ReasonDecodedTooLarge},
		{"unasked encoding", base + "/br", FetchRequest{}, ReasonBadEncoding},
		{"slow body", base + "/slow-body", FetchRequest{}, ReasonIdleTimeout},
		{"slow head", base + "/slow-head", FetchRequest{}, ReasonFirstByteTimeout},
		{"total timeout", base + "/slow-body", FetchRequest{Timeout: 50 * time.Millisecond}, ReasonTimeout},
		{"host caveat", base + "/ok", FetchRequest{Caveats: []guestroom.Caveat{{Key: "host", Value: "docs.example.com"}}}, ReasonCaveatDenied},
		{"repo caveat refuses fetches", base + "/ok", FetchRequest{Caveats: []guestroom.Caveat{{Key: "repo", Value: "octo/r"}}}, ReasonCaveatDenied},
		{"redirect outside the host caveat", base + "/to-private", FetchRequest{Caveats: []guestroom.Caveat{{Key: "host", Value: "good.test"}}}, ReasonCaveatDenied},
		{"unknown caveat", base + "/ok", FetchRequest{Caveats: []guestroom.Caveat{{Key: "color", Value: "red"}}}, ReasonCaveatDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.URL = tc.url
			var bw bufWriter
			_, dg, err := s.Fetch(context.Background(), req, &bw)
			if err == nil {
				t.Fatalf("Fetch succeeded (%d bytes), want %s", dg.Size, tc.reason)
			}
			if got := reasonOf(t, err); got != tc.reason {
				t.Fatalf("reason = %s (%v), want %s", got, err, tc.reason)
			}
		})
	}
	if n := otherRec.count(); n != 0 {
		t.Errorf("the unlisted server saw %d requests", n)
	}
	// An allowed caveat admits.
	var bw bufWriter
	if _, _, err := s.Fetch(context.Background(), FetchRequest{URL: base + "/ok", Caveats: []guestroom.Caveat{{Key: "host", Value: "other.test,good.test"}}}, &bw); err != nil {
		t.Errorf("host caveat that covers the host: %v", err)
	}
}

// gzipBomb returns n MiB of zeros as a multistream gzip: one compressed
// MiB repeated, small on the wire and cheap to build.
func gzipBomb(t *testing.T, n int) []byte {
	t.Helper()
	var one bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&one, gzip.BestCompression)
	_, _ = zw.Write(make([]byte, 1<<20))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := bytes.Repeat(one.Bytes(), n)
	if len(b) > 1<<20 {
		t.Fatalf("bomb is %d bytes, want under the wire ceiling", len(b))
	}
	return b
}

func TestFetchHTTPWhenAllowed(t *testing.T) {
	e := newEnv(t)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "plain") }))
	t.Cleanup(s.Close)
	port := s.URL[strings.LastIndex(s.URL, ":")+1:]
	on := e.scout([]string{"good.test:" + port}, func(c *Config) { c.AllowHTTP = true })
	var bw bufWriter
	if _, _, err := on.Fetch(context.Background(), FetchRequest{URL: "http://good.test:" + port + "/"}, &bw); err != nil || bw.body.String() != "plain" {
		t.Fatalf("http fetch with AllowHTTP: %v %q", err, bw.body.String())
	}
	off := e.scout([]string{"good.test:" + port}, nil)
	_, _, err := off.Fetch(context.Background(), FetchRequest{URL: "http://good.test:" + port + "/"}, &bw)
	if got := reasonOf(t, err); got != ReasonHTTPNotAllowed {
		t.Fatalf("reason = %s, want %s", got, ReasonHTTPNotAllowed)
	}
}
