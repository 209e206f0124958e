package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/client"
	"github.com/bounded-systems/claude-box/scoutd/internal/wire"
)

// audits returns the audit records logged after the first skip bytes.
func (w *world) audits(t *testing.T, skip int) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(w.log.String()[skip:]), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == door.AuditMsg {
			out = append(out, rec)
		}
	}
	return out
}

// rawLine sends one raw line to the door and returns everything it answered.
func rawLine(t *testing.T, sock, line string) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return string(b)
}

// A raw line that is not exactly one fetch request is refused with
// INVALID_ARGUMENT/bad_request in the head, the connection closed, and the
// refusal audited once.
func TestRawMalformedLines(t *testing.T) {
	w := startWorld(t)
	for _, line := range []string{
		"GET / HTTP/1.1",
		"SCOUT-FETCH/1",
		"SCOUT-FETCH/1 ",
		"SCOUT-FETCH/2 {\"url\":\"https://x.test/\"}",
		"scout-fetch/1 {\"url\":\"https://x.test/\"}",
		"SCOUT-FETCH/1  {\"url\":\"https://x.test/\"}",
		"SCOUT-FETCH/1 not json",
		"SCOUT-FETCH/1 [\"https://x.test/\"]",
		"SCOUT-FETCH/1 {\"url\":1}",
		"SCOUT-FETCH/1 {\"url\":\"https://x.test/\",\"token\":\"x\"}",
		"SCOUT-FETCH/1 {\"url\":\"https://x.test/\"} {}",
		"SCOUT-FETCH/1 {\"url\":\"https://x.test/\"",
		"SCOUT-FETCH/1 {\"url\":\"https://x.test/\",\"max_bytes\":-1}",
		"SCOUT-FETCH/1 {\"url\":\"https://x.test/\",\"max_bytes\":1.5}",
		"SCOUT-FETCH/1 {\"URL\":\"https://x.test/\"}",
		"SCOUT-FETCH/1 {\"url\":\"https://x.test/\",\"url\":\"https://y.test/\"}",
	} {
		t.Run(line, func(t *testing.T) {
			mark := len(w.log.String())
			ans := rawLine(t, w.door, line)
			head, rest, _ := strings.Cut(ans, "\n")
			var h wire.Head
			if err := json.Unmarshal([]byte(head), &h); err != nil || h.Error == nil {
				t.Fatalf("answer %q: want an error head", ans)
			}
			if h.Error.Code != "INVALID_ARGUMENT" || h.Error.Reason != "bad_request" || rest != "" {
				t.Fatalf("answer %q: want INVALID_ARGUMENT/bad_request and nothing after", ans)
			}
			recs := w.audits(t, mark)
			if len(recs) != 1 || recs[0]["reason"] != "bad_request" || recs[0]["allow"] != false || recs[0]["kind"] != "fetch" {
				t.Fatalf("audit records: %v, want one bad_request refusal", recs)
			}
		})
	}
}

// The two transports decide and audit alike: the same requests give the
// same refusals and the same audit records (but for elapsed time).
func TestRawAndGRPCAuditAlike(t *testing.T) {
	w := startWorld(t)
	cc, err := door.Dial(w.door)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	viaGRPC := client.New(cc)
	viaRaw := viaGRPC.WithRaw(w.door)
	for _, tc := range []struct {
		url    string
		max    int64
		reason string
	}{
		{w.content + "/blob?q=secret", 0, ""},
		{w.content + "/blob", 1 << 20, "too_large"},
		{w.content + "/big", 0, "too_large"},
		{w.content + "/to-other", 0, ""},
		{"https://evil.test/", 0, "not_allowlisted"},
		{"file:///etc/passwd", 0, "bad_scheme"},
		{"https://u:p@content.test:1/", 0, "bad_target"},
		{strings.Replace(w.content, "content.test", "private.test", 1) + "/", 0, "private_address"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			var got [2]map[string]any
			var errs [2]string
			for i, c := range []*client.Client{viaGRPC, viaRaw} {
				mark := len(w.log.String())
				res, err := c.Fetch(context.Background(), &scoutv1.FetchRequest{Url: tc.url, MaxBytes: tc.max}, io.Discard)
				if tc.reason == "" && (err != nil || res.Trailer == nil) {
					t.Fatalf("transport %d: %v", i, err)
				}
				if tc.reason != "" {
					code, reason := codeReason(err)
					if reason != tc.reason {
						t.Fatalf("transport %d: %v (%s/%s), want %s", i, err, code, reason, tc.reason)
					}
					errs[i] = err.Error()
				}
				recs := w.audits(t, mark)
				if len(recs) != 1 {
					t.Fatalf("transport %d: %d audit records, want 1: %v", i, len(recs), recs)
				}
				delete(recs[0], "elapsed_ms")
				delete(recs[0], "time")
				got[i] = recs[0]
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Fatalf("audit records differ:\ngrpc %v\nraw  %v", got[0], got[1])
			}
			if errs[0] != errs[1] {
				t.Fatalf("refusals differ:\ngrpc %s\nraw  %s", errs[0], errs[1])
			}
		})
	}
}

// A TCP door (bearer token in gRPC metadata) refuses raw connections;
// `scout fetch` there takes the gRPC stream and works as before.
func TestTCPDoorFallsBackToGRPC(t *testing.T) {
	w := startWorld(t)
	cc, err := door.Dial(w.control)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := doorv1.NewControlServiceClient(cc).MintDoor(ctx, &doorv1.MintDoorRequest{
		LaunchId: "tcp1", Account: "acct", PeerUid: -1, Transport: doorv1.Transport_TRANSPORT_TCP,
	})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	if m.GetAddress() == "" || m.GetToken() == "" {
		t.Fatalf("minted %v, want a TCP door", m)
	}
	if client.RawPath(m.GetAddress()) != "" {
		t.Fatalf("RawPath(%q) is not empty", m.GetAddress())
	}
	// A raw line on the TCP door is closed without an answer.
	c, err := net.Dial("tcp", m.GetAddress())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	line, _ := wire.FormatRequest(wire.Request{URL: w.content + "/blob"})
	_, _ = c.Write(line)
	if ans, err := io.ReadAll(bufio.NewReader(c)); err != nil || len(ans) != 0 {
		t.Fatalf("raw on a TCP door answered %q (%v)", ans, err)
	}
	_ = c.Close()

	env := func(k string) string {
		if k == client.EnvDoorToken {
			return m.GetToken()
		}
		return ""
	}
	var out, errb strings.Builder
	file := filepath.Join(t.TempDir(), "body")
	if err := client.Run(context.Background(), []string{"--door", m.GetAddress(), "fetch", w.content + "/blob", "-o", file}, client.IO{Stdout: &out, Stderr: &errb, Getenv: env}); err != nil {
		t.Fatalf("fetch over the TCP door: %v", err)
	}
	err = client.Run(context.Background(), []string{"--door", m.GetAddress(), "fetch", "https://evil.test/"}, client.IO{Stdout: &out, Stderr: &errb, Getenv: env})
	wantRefusal(t, err, codes.PermissionDenied, "not_allowlisted")
}

// codeReason is the code and ErrorInfo reason of a status error.
func codeReason(err error) (codes.Code, string) {
	st, _ := grpcstatus.FromError(err)
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), ei.GetReason()
		}
	}
	return st.Code(), ""
}

// A request too long for a raw line (the runtime reads 4 KiB) goes by gRPC
// on a unix door and is served like any other.
func TestLongRequestTakesGRPC(t *testing.T) {
	w := startWorld(t)
	url := w.content + "/blob?q=" + strings.Repeat("a", wire.MaxRequestLine)
	out, _, err := w.scout(w.door, false, "fetch", url)
	if err != nil || out != string(w.body) {
		t.Fatalf("fetch of a long URL: %v (%d bytes)", err, len(out))
	}
}
