// Package wire is the raw fetch protocol of the scout door: the fast path a
// `scout fetch` takes on a unix door instead of the gRPC Fetch stream. It
// defines the request line, the head and end lines, and the body framing,
// and reads them strictly; what a fetch means (policy, ceilings, audit) is
// the server's and is shared with the gRPC path.
//
// A connection carries one fetch:
//
//	client: SCOUT-FETCH/1 {"url":"https://…","max_bytes":N,"timeout_ms":N}\n
//	server: {"status":200,"content_type":"…","final_url":"…","redirects":0,"declared_length":-1}\n
//	        frames: a 4-byte big-endian length (1 … MaxFrame) and that many body bytes, …
//	        a zero-length frame (4 zero bytes)
//	        {"size":N,"sha256":"<64 hex>"}\n
//	        (close)
//
// A refusal before the body is a head line {"error":{"code":"PERMISSION_DENIED",
// "reason":"not_allowlisted","message":"…"}} and close; a failure during the
// body is the zero-length frame and an end line {"error":{…}}. A body is
// complete only when the end line carries a size and digest that match
// what arrived: a connection that ends anywhere else is truncated.
package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
)

// Verb starts the one line a raw fetch connection opens with.
const Verb = "SCOUT-FETCH/1"

// MaxFrame is the largest body frame.
const MaxFrame = 1 << 20

// MaxLine bounds the head and end lines a client reads (the final URL is
// bounded by the upstream's 1 MiB header ceiling).
const MaxLine = 2 << 20

// FrameHeader is the size of a frame's length prefix.
const FrameHeader = 4

// Request is what the client asks for.
type Request struct {
	URL       string `json:"url"`
	MaxBytes  int64  `json:"max_bytes,omitempty"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

// Error is a refusal or failure: a gRPC code name (as in
// google.rpc.Code, e.g. "PERMISSION_DENIED"), the machine-stable reason and
// the message with its hint.
type Error struct {
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Head is the first line of the answer: the response head, or an error.
type Head struct {
	Status         int32  `json:"status,omitempty"`
	ContentType    string `json:"content_type,omitempty"`
	FinalURL       string `json:"final_url,omitempty"`
	Redirects      int32  `json:"redirects,omitempty"`
	DeclaredLength int64  `json:"declared_length,omitempty"`
	Error          *Error `json:"error,omitempty"`
}

// End is the line after the zero-length frame: the body's size and
// digest, or the error that cut it short.
type End struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// ErrMalformed reports a request line that is not one fetch request.
var ErrMalformed = errors.New("malformed raw request")

// FormatRequest is the request line (with its newline).
func FormatRequest(r Request) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return append(append([]byte(Verb+" "), b...), '\n'), nil
}

// ParseRequest parses a request line (without its newline) strictly: the
// verb, one space, one JSON object with known fields only and nothing after.
func ParseRequest(line string) (Request, error) {
	rest, ok := strings.CutPrefix(line, Verb+" ")
	if !ok {
		return Request{}, fmt.Errorf("%w: want %q and a JSON request", ErrMalformed, Verb)
	}
	var r Request
	if err := exactKeys([]byte(rest), "url", "max_bytes", "timeout_ms"); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := decodeStrict([]byte(rest), &r); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.MaxBytes < 0 || r.TimeoutMS < 0 {
		return Request{}, fmt.Errorf("%w: negative ceiling", ErrMalformed)
	}
	return r, nil
}

// decodeStrict decodes exactly one JSON object with known fields.
func decodeStrict(b []byte, v any) error {
	if len(b) == 0 || b[0] != '{' {
		return errors.New("want one JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON object")
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// exactKeys checks that b is one JSON object whose keys are among keys,
// spelled exactly (encoding/json matches names case-insensitively) and
// each at most once (it keeps the last of duplicates).
func exactKeys(b []byte, keys ...string) error {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return errors.New("want one JSON object")
	}
	seen := map[string]bool{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return err
		}
		k, _ := t.(string)
		if !slices.Contains(keys, k) {
			return fmt.Errorf("unknown field %q", k)
		}
		if seen[k] {
			return fmt.Errorf("field %q twice", k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return err
		}
	}
	return nil
}

// Line is v as one JSON line.
func Line(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ReadLine reads one line of at most MaxLine bytes from r and decodes it
// strictly into v. io.ErrUnexpectedEOF means the connection ended first.
func ReadLine(r *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine {
			return fmt.Errorf("line longer than %d bytes", MaxLine)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return decodeStrict(bytes.TrimSuffix(line, []byte("\n")), v)
}

// PutFrameHeader writes the length prefix of an n-byte frame into b.
func PutFrameHeader(b []byte, n int) { binary.BigEndian.PutUint32(b, uint32(n)) }

// FrameLen decodes a length prefix; lengths above MaxFrame are an error.
func FrameLen(b []byte) (int, error) {
	n := binary.BigEndian.Uint32(b)
	if n > MaxFrame {
		return 0, fmt.Errorf("frame of %d bytes exceeds %d", n, MaxFrame)
	}
	return int(n), nil
}

// ValidDigest reports whether s is a lowercase hex sha256.
func ValidDigest(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// codeNames are the google.rpc.Code names of the gRPC codes.
var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
	codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
	codes.Unauthenticated: "UNAUTHENTICATED",
}

// CodeName is c's google.rpc.Code name ("PERMISSION_DENIED").
func CodeName(c codes.Code) string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return "UNKNOWN"
}

// ParseCode is the inverse of CodeName; an unknown name is Unknown.
func ParseCode(name string) codes.Code {
	for c, n := range codeNames {
		if n == name {
			return c
		}
	}
	return codes.Unknown
}

// ErrorDomain is the domain of the google.rpc.ErrorInfo that carries a
// refusal's reason, on both transports.
const ErrorDomain = "scout.claudebox"

// MaxRequestLine is the longest request line a door reads (the door
// runtime's bound on a raw connection's first line, newline included); a
// client sends a longer request (a very long URL) over gRPC instead.
const MaxRequestLine = 4096
