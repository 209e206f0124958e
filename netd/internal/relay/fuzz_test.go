package relay

import (
	"bytes"
	"strings"
	"testing"
)

func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n",
		"GET http://plain.test/x?y HTTP/1.1\r\nHost: plain.test\r\nProxy-Connection: keep-alive\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\n",
		"GET http://a HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
			b = append(b, "\r\n\r\n"...)
		}
		h, err := parseHead(b)
		if err != nil {
			if _, ok := err.(*errHead); !ok {
				t.Fatalf("parseHead error %T %v", err, err)
			}
			return
		}
		if h.hosts > 1 || (h.chunked && h.contentLength >= 0) {
			t.Fatalf("ambiguous head accepted: %q", b)
		}
		if h.version != "HTTP/1.1" && h.version != "HTTP/1.0" {
			t.Fatalf("version %q accepted", h.version)
		}
		if !strings.Contains(h.target, "://") {
			return
		}
		out, err := originHead(h)
		if err != nil {
			return
		}
		// The forwarded head is one request: one CRLFCRLF, at its end, and
		// it never carries a proxy credential.
		if bytes.Index(out, []byte("\r\n\r\n")) != len(out)-4 {
			t.Fatalf("forwarded head %q is not exactly one head", out)
		}
		if bytes.Contains(bytes.ToLower(out), []byte("\nproxy-authorization:")) {
			t.Fatalf("forwarded head carries proxy credentials: %q", out)
		}
		if !bytes.HasSuffix(out, []byte("Connection: close\r\n\r\n")) {
			t.Fatalf("forwarded head does not close: %q", out)
		}
	})
}
