package client

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/extract"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\n\tok":      "plain text\n\tok",
		"\x1b[31mred\x1b[0m":    `\x1b[31mred\x1b[0m`,
		"bell\a cr\r del\x7f":   `bell\x07 cr\x0d del\x7f`,
		"c1 \u009b2J":           `c1 \u009b2J`,
		"bad \xff utf8":         `bad \xff utf8`,
		"bidi \u202e evil":      `bidi \u202e evil`,
		"unicode ✓ stays":       "unicode ✓ stays",
		"osc \x1b]0;title\x07x": `osc \x1b]0;title\x07x`,
	} {
		if got := Escape([]byte(in)); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitRepoRef(t *testing.T) {
	for in, want := range map[string][2]string{
		"https://github.com/o/r.git":         {"https://github.com/o/r.git", ""},
		"https://github.com/o/r.git@v1.2":    {"https://github.com/o/r.git", "v1.2"},
		"https://github.com/o/r@feature/x":   {"https://github.com/o/r", "feature/x"},
		"https://user@github.com/o/r":        {"https://user@github.com/o/r", ""},
		"https://github.com":                 {"https://github.com", ""},
		"https://git.test:8443/o/r.git@main": {"https://git.test:8443/o/r.git", "main"},
	} {
		u, r := SplitRepoRef(in)
		if u != want[0] || r != want[1] {
			t.Errorf("SplitRepoRef(%q) = %q, %q; want %q, %q", in, u, r, want[0], want[1])
		}
	}
}

func TestParseIssueRef(t *testing.T) {
	if r, n, err := ParseIssueRef("octo/r#12"); err != nil || r != "octo/r" || n != 12 {
		t.Errorf("ParseIssueRef = %q %d %v", r, n, err)
	}
	for _, bad := range []string{"octo/r", "octo/r#", "octo/r#0", "octo/r#-1", "octo/r#x"} {
		if _, _, err := ParseIssueRef(bad); err == nil {
			t.Errorf("ParseIssueRef(%q) succeeded", bad)
		}
	}
}

// lyingScout is a door that sends whatever the test scripted: a body
// without a trailer, a trailer that lies, a tar that escapes.
type lyingScout struct {
	scoutv1.UnimplementedScoutServiceServer
	fetch []*scoutv1.FetchResponse
	snap  []*scoutv1.SnapshotResponse
}

func (l *lyingScout) Fetch(_ *scoutv1.FetchRequest, st grpc.ServerStreamingServer[scoutv1.FetchResponse]) error {
	for _, m := range l.fetch {
		if err := st.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (l *lyingScout) Snapshot(_ *scoutv1.SnapshotRequest, st grpc.ServerStreamingServer[scoutv1.SnapshotResponse]) error {
	for _, m := range l.snap {
		if err := st.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func serveLiar(t *testing.T, l *lyingScout) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "scout.sock")
	ln, err := door.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	scoutv1.RegisterScoutServiceServer(g, l)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return sock
}

// The gRPC path (TCP doors) counts a body only with a matching trailer.
func TestClientDistrustsTheStream(t *testing.T) {
	head := &scoutv1.FetchHead{Status: 200}
	for name, msgs := range map[string][]*scoutv1.FetchResponse{
		"no trailer":    {{Head: head}, {Chunk: []byte("partial")}},
		"lying size":    {{Head: head}, {Chunk: []byte("abc"), Trailer: &scoutv1.FetchTrailer{Size: 4, Sha256: "x"}}},
		"lying digest":  {{Head: head}, {Chunk: []byte("abc"), Trailer: &scoutv1.FetchTrailer{Size: 3, Sha256: strings.Repeat("0", 64)}}},
		"no head":       {{Chunk: []byte("abc")}},
		"after trailer": {{Head: head, Trailer: &scoutv1.FetchTrailer{Size: 0, Sha256: emptySHA}}, {Chunk: []byte("more")}},
	} {
		t.Run(name, func(t *testing.T) {
			sock := serveLiar(t, &lyingScout{fetch: msgs})
			cc, err := door.Dial(sock)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cc.Close() }()
			var body bytes.Buffer
			if _, err := New(cc).Fetch(context.Background(), &scoutv1.FetchRequest{Url: "https://x.test/"}, &body); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("err = %v, want ErrIncomplete", err)
			}
		})
	}
}

const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// serveRawLiar is a unix door that answers every raw line with script.
func serveRawLiar(t *testing.T, script []byte) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "scout.sock")
	ln, err := door.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
					return
				}
				_, _ = c.Write(script)
			}()
		}
	}()
	return sock
}

func frame(p string) string {
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(p)))
	return string(h[:]) + p
}

const (
	rawHead = `{"status":200,"content_type":"text/plain","final_url":"https://x.test/","declared_length":-1}` + "\n"
	abcSHA  = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	rawEnd  = "\x00\x00\x00\x00"
)

// Run (raw on a unix door) writes nothing, to stdout or a file, unless the
// body ended with a zero-length frame and a trailer whose size matches.
func TestRawClientDistrustsTheStream(t *testing.T) {
	for name, script := range map[string]string{
		"closed after the head":    rawHead,
		"no end frame":             rawHead + frame("partial"),
		"cut within a frame":       rawHead + frame("abcdef")[:7],
		"cut within a header":      rawHead + frame("abc") + "\x00\x00",
		"no trailer":               rawHead + frame("abc") + rawEnd,
		"cut trailer":              rawHead + frame("abc") + rawEnd + `{"size":3,"sha256":"` + abcSHA,
		"lying size":               rawHead + frame("abc") + rawEnd + `{"size":4,"sha256":"` + abcSHA + "\"}\n",
		"malformed digest":         rawHead + frame("abc") + rawEnd + `{"size":3,"sha256":"x"}` + "\n",
		"no digest":                rawHead + frame("abc") + rawEnd + `{"size":3}` + "\n",
		"data after the trailer":   rawHead + frame("abc") + rawEnd + `{"size":3,"sha256":"` + abcSHA + "\"}\nmore",
		"oversized frame":          rawHead + "\x00\x20\x00\x00" + strings.Repeat("a", 64),
		"head without a status":    "{}\n" + frame("abc") + rawEnd + `{"size":3,"sha256":"` + abcSHA + "\"}\n",
		"unknown head field":       `{"status":200,"x":1}` + "\n" + frame("abc") + rawEnd + `{"size":3,"sha256":"` + abcSHA + "\"}\n",
		"head is not json":         "HTTP/1.1 200 OK\n",
		"trailer with extra field": rawHead + frame("abc") + rawEnd + `{"size":3,"sha256":"` + abcSHA + `","ok":true}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			sock := serveRawLiar(t, []byte(script))
			out := filepath.Join(t.TempDir(), "body")
			var stdout, stderr bytes.Buffer
			err := Run(context.Background(), []string{"--door", sock, "fetch", "https://x.test/", "-o", out}, IO{Stdout: &stdout, Stderr: &stderr})
			if !errors.Is(err, ErrIncomplete) {
				t.Fatalf("err = %v, want ErrIncomplete", err)
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
				t.Errorf("an incomplete fetch left %d files", len(ents))
			}
			err = Run(context.Background(), []string{"--door", sock, "fetch", "https://x.test/"}, IO{Stdout: &stdout, Stderr: &stderr})
			if !errors.Is(err, ErrIncomplete) || stdout.Len() != 0 {
				t.Fatalf("stdout fetch: err %v, %d bytes written", err, stdout.Len())
			}
		})
	}
}

// A complete raw answer is written; a refusal in the head or after part of
// the body is reported with its code and reason, and nothing is written.
func TestRawClientAnswers(t *testing.T) {
	sock := serveRawLiar(t, []byte(rawHead+frame("ab")+frame("c")+rawEnd+`{"size":3,"sha256":"`+abcSHA+"\"}\n"))
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"--door", sock, "fetch", "https://x.test/"}, IO{Stdout: &stdout, Stderr: &stderr}); err != nil || stdout.String() != "abc" {
		t.Fatalf("fetch: %v, stdout %q", err, stdout.String())
	}
	for name, script := range map[string]string{
		"head":  `{"error":{"code":"PERMISSION_DENIED","reason":"not_allowlisted","message":"not_allowlisted: x.test\nhint: ask"}}` + "\n",
		"trail": rawHead + frame("abc") + rawEnd + `{"size":0,"error":{"code":"PERMISSION_DENIED","reason":"not_allowlisted","message":"m"}}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			sock := serveRawLiar(t, []byte(script))
			out := filepath.Join(t.TempDir(), "body")
			var stdout, stderr bytes.Buffer
			err := Run(context.Background(), []string{"--door", sock, "fetch", "https://x.test/", "-o", out}, IO{Stdout: &stdout, Stderr: &stderr})
			var ce *Error
			if !errors.As(err, &ce) || ce.Code != codes.PermissionDenied || ce.Reason != "not_allowlisted" {
				t.Fatalf("err = %v, want PermissionDenied/not_allowlisted", err)
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
				t.Errorf("a refused fetch left %d files", len(ents))
			}
		})
	}
}

func TestRawPath(t *testing.T) {
	for in, want := range map[string]string{
		"/run/doors/scoutd.sock":        "/run/doors/scoutd.sock",
		"unix:///run/doors/scoutd.sock": "/run/doors/scoutd.sock",
		"127.0.0.1:4000":                "",
		"localhost:4000":                "",
	} {
		if got := RawPath(in); got != want {
			t.Errorf("RawPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClientRefusesEscapingSnapshot(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "ok.txt", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	_, _ = tw.Write([]byte("ok"))
	_ = tw.WriteHeader(&tar.Header{Name: "../escape.txt", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	sock := serveLiar(t, &lyingScout{snap: []*scoutv1.SnapshotResponse{{Chunk: buf.Bytes()}}})
	parent := t.TempDir()
	dir := filepath.Join(parent, "snap")
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"--door", sock, "repo", "https://x.test/o/r.git", dir}, IO{Stdout: &stdout, Stderr: &stderr})
	var re *extract.RefusedError
	if !errors.As(err, &re) || re.Reason != extract.ReasonDotDot {
		t.Fatalf("err = %v, want a dot_dot refusal", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("refused snapshot left %v", ents)
	}
}

// A unix door that is not there is reported as such, with the hint.
func TestRawDoorMissing(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"--door", sock, "fetch", "https://x.test/"}, IO{Stdout: &stdout, Stderr: &stderr})
	if err == nil || !strings.Contains(err.Error(), "hint: the scout door is not mounted") {
		t.Fatalf("err = %v, want the missing-door hint", err)
	}
}
