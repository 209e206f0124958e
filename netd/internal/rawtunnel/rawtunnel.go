// Package rawtunnel is the wire format of a raw tunnel (NETD-TUNNEL/1) on a
// unix net door: the relay sends one request line, netd answers one verdict
// line (a JSON object), and on allow both sides copy bytes until either
// closes. It is the fast path beside the gRPC EgressService.Tunnel stream:
// same decision, fewer copies, no framing. Parsing is strict; the relay and
// netd share this package so the two ends cannot disagree on it.
package rawtunnel

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Version opens every request line.
const Version = "NETD-TUNNEL/1"

// Verbs a request line carries.
const (
	VerbConnect = "CONNECT"
	VerbHTTP    = "HTTP"
)

// Decisions a verdict line carries: the net/v1 Decision values, lower case
// without their prefix, plus DecisionBadRequest for a malformed line.
const (
	DecisionAllow       = "allow"
	DecisionDeny        = "deny"
	DecisionBadTarget   = "bad_target"
	DecisionUnreachable = "unreachable"
	DecisionTimeout     = "timeout"
	DecisionLimited     = "limited"
	DecisionBadRequest  = "bad_request"
)

// ReasonBadLine is the reason of the refusal of a malformed request line.
const ReasonBadLine = "bad_tunnel_line"

// MaxLine bounds a request line (the door runtime's limit on a raw first
// line, newline included, is 4096 bytes).
const MaxLine = 4000

// MaxVerdict bounds a verdict line, newline included.
const MaxVerdict = 8 << 10

// Request is what a tunnel asks for.
type Request struct {
	// Verb is VerbConnect or VerbHTTP.
	Verb string
	// Target is host:port for CONNECT, an absolute URL's scheme://authority
	// (with "/" when the URL had a path) for HTTP.
	Target string
	// HostHeader is the HTTP request's Host header; empty when it had none.
	HostHeader string
}

// ErrBadLine reports a malformed request line.
var ErrBadLine = errors.New("malformed tunnel line")

// Line formats r as a request line (without the newline). It fails when r
// cannot be carried: a field empty (but HostHeader), holding a byte outside
// printable ASCII or a space, or the line too long.
func (r Request) Line() (string, error) {
	fields := []string{Version, r.Verb, r.Target}
	if r.HostHeader != "" {
		if r.Verb != VerbHTTP {
			return "", fmt.Errorf("%w: host header on %s", ErrBadLine, r.Verb)
		}
		fields = append(fields, r.HostHeader)
	}
	line := strings.Join(fields, " ")
	if _, err := Parse(line); err != nil {
		return "", err
	}
	return line, nil
}

// Parse reads a request line (without its newline). Fields are separated
// by exactly one space and are non-empty printable ASCII (0x21-0x7e): the
// version, the verb, the target, and for HTTP an optional host header.
func Parse(line string) (Request, error) {
	if len(line) > MaxLine {
		return Request{}, fmt.Errorf("%w: longer than %d bytes", ErrBadLine, MaxLine)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c != ' ' && (c < 0x21 || c > 0x7e) {
			return Request{}, fmt.Errorf("%w: byte 0x%02x at %d", ErrBadLine, c, i)
		}
	}
	f := strings.Split(line, " ")
	for i, s := range f {
		if s == "" {
			return Request{}, fmt.Errorf("%w: empty field %d", ErrBadLine, i+1)
		}
	}
	if f[0] != Version {
		return Request{}, fmt.Errorf("%w: want %s", ErrBadLine, Version)
	}
	if len(f) < 3 {
		return Request{}, fmt.Errorf("%w: want %s VERB TARGET", ErrBadLine, Version)
	}
	switch {
	case f[1] == VerbConnect && len(f) == 3:
		return Request{Verb: VerbConnect, Target: f[2]}, nil
	case f[1] == VerbHTTP && len(f) == 3:
		return Request{Verb: VerbHTTP, Target: f[2]}, nil
	case f[1] == VerbHTTP && len(f) == 4:
		return Request{Verb: VerbHTTP, Target: f[2], HostHeader: f[3]}, nil
	case f[1] == VerbConnect, f[1] == VerbHTTP:
		return Request{}, fmt.Errorf("%w: %d fields for %s", ErrBadLine, len(f), f[1])
	}
	return Request{}, fmt.Errorf("%w: unknown verb", ErrBadLine)
}

// Verdict is netd's answer: the fields of net/v1 Verdict.
type Verdict struct {
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	Rule     string `json:"rule,omitempty"`
	Message  string `json:"message,omitempty"`
	Host     string `json:"host,omitempty"`
	Port     uint16 `json:"port,omitempty"`
}

// Write writes v as one line.
func (v Verdict) Write(w io.Writer) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("verdict: %w", err)
	}
	if len(b)+1 > MaxVerdict {
		v.Message = v.Message[:min(len(v.Message), 1024)]
		if b, err = json.Marshal(v); err != nil {
			return fmt.Errorf("verdict: %w", err)
		}
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ErrNoVerdict reports a connection that ended before a verdict line, or
// whose answer is not one: a door that does not serve raw connections hands
// them to its gRPC server, which answers with HTTP/2 frames and closes.
var ErrNoVerdict = errors.New("no verdict line")

// ReadVerdict reads one verdict line from br, at most MaxVerdict bytes.
func ReadVerdict(br *bufio.Reader) (Verdict, error) {
	first, err := br.Peek(1)
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: %w", ErrNoVerdict, err)
	}
	if first[0] != '{' {
		return Verdict{}, fmt.Errorf("%w: answer starts with 0x%02x", ErrNoVerdict, first[0])
	}
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxVerdict {
			return Verdict{}, errors.New("verdict line too long")
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return Verdict{}, fmt.Errorf("truncated verdict line: %w", err)
	}
	var v Verdict
	if err := json.Unmarshal(line, &v); err != nil {
		return Verdict{}, fmt.Errorf("verdict line: %w", err)
	}
	if v.Decision == "" {
		return Verdict{}, errors.New("verdict line without a decision")
	}
	return v, nil
}
