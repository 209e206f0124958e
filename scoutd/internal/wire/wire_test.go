package wire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestRequestRoundTrip(t *testing.T) {
	line, err := FormatRequest(Request{URL: "https://x.test/a?b=c", MaxBytes: 5, TimeoutMS: 7})
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(line), "\n")
	if strings.Contains(s, "\n") {
		t.Fatalf("request line has a newline inside: %q", line)
	}
	r, err := ParseRequest(s)
	if err != nil || r != (Request{URL: "https://x.test/a?b=c", MaxBytes: 5, TimeoutMS: 7}) {
		t.Fatalf("ParseRequest(%q) = %+v, %v", s, r, err)
	}
	// A URL with a newline is escaped inside the JSON: still one line.
	line, _ = FormatRequest(Request{URL: "https://x.test/\n\r"})
	if strings.Count(string(line), "\n") != 1 {
		t.Fatalf("request line %q", line)
	}
}

func TestParseRequestStrict(t *testing.T) {
	for _, bad := range []string{
		"", "SCOUT-FETCH/1", "SCOUT-FETCH/1 ", "SCOUT-FETCH/1 {}x", `SCOUT-FETCH/1 {"url":"a"}{}`,
		`SCOUT-FETCH/1 {"url":"a","x":1}`, `SCOUT-FETCH/1 {"URL":"a"}`, `SCOUT-FETCH/1 ["a"]`,
		`SCOUT-FETCH/1 {"url":"a","max_bytes":-1}`, `SCOUT-FETCH/1 {"url":"a","timeout_ms":-1}`,
		`SCOUT-FETCH/1 {"url":"a","max_bytes":"1"}`, `SCOUT-FETCH/2 {"url":"a"}`, ` SCOUT-FETCH/1 {"url":"a"}`,
		`SCOUT-FETCH/1 null`, `SCOUT-FETCH/1 {"url":"a","url":"b"}`, `SCOUT-FETCH/1 {"Url":"a"}`,
	} {
		if _, err := ParseRequest(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRequest(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestReadLine(t *testing.T) {
	var h Head
	if err := ReadLine(bufio.NewReaderSize(strings.NewReader(`{"status":200}`+"\n"), 16), &h); err != nil || h.Status != 200 {
		t.Fatalf("ReadLine: %+v %v", h, err)
	}
	if err := ReadLine(bufio.NewReader(strings.NewReader(`{"status":200}`)), &h); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("unterminated line: %v", err)
	}
	if err := ReadLine(bufio.NewReader(strings.NewReader(strings.Repeat("a", MaxLine+2)+"\n")), &h); err == nil {
		t.Fatal("overlong line accepted")
	}
	if err := ReadLine(bufio.NewReader(strings.NewReader(`{"status":200,"x":1}`+"\n")), &h); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestFramesAndCodes(t *testing.T) {
	b := make([]byte, FrameHeader)
	PutFrameHeader(b, MaxFrame)
	if n, err := FrameLen(b); err != nil || n != MaxFrame {
		t.Fatalf("FrameLen = %d, %v", n, err)
	}
	PutFrameHeader(b, MaxFrame+1)
	if _, err := FrameLen(b); err == nil {
		t.Fatal("oversized frame accepted")
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if ParseCode(CodeName(c)) != c {
			t.Errorf("code %v does not round-trip (%s)", c, CodeName(c))
		}
	}
	if !ValidDigest(strings.Repeat("a", 64)) || ValidDigest(strings.Repeat("A", 64)) || ValidDigest("x") {
		t.Error("ValidDigest")
	}
}
