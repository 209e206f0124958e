package relay

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Local refusal reasons: the relay refuses requests it cannot even carry
// to netd (there is no target to decide on). Everything else netd decides.
const (
	ReasonBadRequest   = "bad_request"
	ReasonOriginForm   = "origin_form"
	ReasonHTTP2        = "http2_preface"
	ReasonHeadTooLarge = "head_too_large"
	ReasonHeadTimeout  = "head_timeout"
	ReasonDoorDown     = "door_unavailable"
	ReasonDoorRefused  = "door_refused"
)

// errHead is a request head the relay refuses, with its status and reason.
type errHead struct {
	status int
	reason string
	msg    string
}

func (e *errHead) Error() string { return e.msg }

func badHead(reason, format string, args ...any) error {
	return &errHead{status: 400, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// head is a parsed request head.
type head struct {
	method, target, version string
	// fields are the header lines in order, split at the first colon.
	fields []field
	host   string
	hosts  int
	// contentLength is -1 when absent.
	contentLength int64
	chunked       bool
}

type field struct{ name, value string }

// readHead reads a request head of at most max bytes, ending in CRLFCRLF,
// before deadline. It returns the head and the bytes read past it.
func readHead(c net.Conn, limit int, deadline time.Time) ([]byte, []byte, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		if n > 0 {
			start := max(0, len(buf)-3)
			buf = buf[:len(buf)+n]
			if !methodPrefix(buf) {
				return nil, nil, badHead(ReasonBadRequest, "not an HTTP/1 request")
			}
			if i := bytes.Index(buf[start:], []byte("\r\n\r\n")); i >= 0 {
				end := start + i + 4
				if end > limit {
					return nil, nil, &errHead{status: 431, reason: ReasonHeadTooLarge, msg: fmt.Sprintf("request head over %d bytes", limit)}
				}
				return buf[:end], buf[end:], nil
			}
			if len(buf) > limit {
				return nil, nil, &errHead{status: 431, reason: ReasonHeadTooLarge, msg: fmt.Sprintf("request head over %d bytes", limit)}
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, nil, &errHead{status: 408, reason: ReasonHeadTimeout, msg: "request head did not arrive in time"}
			}
			return nil, nil, err
		}
	}
}

// methodPrefix reports whether b can still begin an HTTP/1 request: an
// upper-case method of at most 20 letters, then a space. Non-HTTP bytes
// (TLS, SSH, HTTP/2 frames) are refused at once instead of at the deadline.
func methodPrefix(b []byte) bool {
	for i, c := range b {
		switch {
		case c == ' ' && i > 0:
			return true
		case c < 'A' || c > 'Z' || i >= 20:
			return false
		}
	}
	return true
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseHead parses a head strictly: CRLF line endings, one request line of
// three parts, HTTP/1.0 or HTTP/1.1, token header names, no obsolete line
// folding, no control characters, at most one Host, not both
// Content-Length and Transfer-Encoding.
func parseHead(b []byte) (*head, error) {
	text := string(b[:len(b)-4])
	lines := strings.Split(text, "\r\n")
	for _, l := range lines {
		for i := 0; i < len(l); i++ {
			if c := l[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, badHead(ReasonBadRequest, "control character in request head")
			}
		}
	}
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 {
		return nil, badHead(ReasonBadRequest, "malformed request line")
	}
	h := &head{method: parts[0], target: parts[1], version: parts[2], contentLength: -1}
	if h.method == "PRI" && h.version == "HTTP/2.0" {
		return nil, badHead(ReasonHTTP2, "HTTP/2 prior knowledge is not supported; use HTTP/1.1 CONNECT")
	}
	for i := 0; i < len(h.method); i++ {
		if h.method[i] < 'A' || h.method[i] > 'Z' {
			return nil, badHead(ReasonBadRequest, "malformed method")
		}
	}
	if h.version != "HTTP/1.1" && h.version != "HTTP/1.0" {
		return nil, badHead(ReasonBadRequest, "unsupported protocol version")
	}
	if h.target == "" {
		return nil, badHead(ReasonBadRequest, "empty request target")
	}
	for _, l := range lines[1:] {
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			return nil, badHead(ReasonBadRequest, "obsolete header folding")
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || !isToken(name) {
			return nil, badHead(ReasonBadRequest, "malformed header line")
		}
		value = strings.Trim(value, " \t")
		h.fields = append(h.fields, field{name, value})
		switch strings.ToLower(name) {
		case "host":
			h.hosts++
			h.host = value
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || (h.contentLength >= 0 && h.contentLength != n) || value[0] == '+' {
				return nil, badHead(ReasonBadRequest, "bad content-length")
			}
			h.contentLength = n
		case "transfer-encoding":
			if !strings.EqualFold(value, "chunked") || h.chunked {
				return nil, badHead(ReasonBadRequest, "unsupported transfer-encoding")
			}
			h.chunked = true
		}
	}
	if h.hosts > 1 {
		return nil, badHead(ReasonBadRequest, "more than one Host header")
	}
	if h.chunked && h.contentLength >= 0 {
		return nil, badHead(ReasonBadRequest, "both content-length and transfer-encoding")
	}
	return h, nil
}

// hopByHop headers are not forwarded: they concern the proxy hop only.
var hopByHop = map[string]bool{
	"connection": true, "proxy-connection": true, "keep-alive": true, "proxy-authorization": true,
	"proxy-authenticate": true, "te": true, "trailer": true, "upgrade": true,
}

// originHead rewrites an absolute-form request head to origin form for the
// upstream, drops hop-by-hop headers and asks the upstream to close after
// this one request, so that no later request can ride the connection.
func originHead(h *head) ([]byte, error) {
	i := strings.Index(h.target, "://")
	if i < 0 {
		return nil, badHead(ReasonBadRequest, "not an absolute URL")
	}
	rest := h.target[i+3:]
	uri := "/"
	if j := strings.IndexAny(rest, "/?"); j >= 0 {
		uri = rest[j:]
		if uri[0] == '?' {
			uri = "/" + uri
		}
	}
	var b bytes.Buffer
	b.WriteString(h.method + " " + uri + " " + h.version + "\r\n")
	for _, f := range h.fields {
		if hopByHop[strings.ToLower(f.name)] {
			continue
		}
		b.WriteString(f.name + ": " + f.value + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.Bytes(), nil
}
