package rawtunnel

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestLineRoundTrip(t *testing.T) {
	for _, r := range []Request{
		{Verb: VerbConnect, Target: "api.example.com:443"},
		{Verb: VerbHTTP, Target: "http://plain.test/"},
		{Verb: VerbHTTP, Target: "http://plain.test", HostHeader: "plain.test:80"},
	} {
		line, err := r.Line()
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		got, err := Parse(line)
		if err != nil || got != r {
			t.Fatalf("Parse(%q) = %+v, %v; want %+v", line, got, err, r)
		}
	}
	for _, r := range []Request{
		{Verb: VerbConnect, Target: "a b:443"},
		{Verb: VerbConnect, Target: ""},
		{Verb: VerbConnect, Target: "x:1", HostHeader: "x"},
		{Verb: VerbHTTP, Target: "http://x/", HostHeader: "h\r\nX: y"},
		{Verb: VerbConnect, Target: strings.Repeat("a", MaxLine)},
	} {
		if _, err := r.Line(); !errors.Is(err, ErrBadLine) {
			t.Fatalf("%+v: %v, want ErrBadLine", r, err)
		}
	}
}

func TestReadVerdict(t *testing.T) {
	var b bytes.Buffer
	want := Verdict{Decision: DecisionDeny, Reason: "not_allowlisted", Rule: "allowlist", Message: "no", Host: "x", Port: 443}
	if err := want.Write(&b); err != nil {
		t.Fatal(err)
	}
	b.WriteString("upstream bytes")
	br := bufio.NewReader(&b)
	got, err := ReadVerdict(br)
	if err != nil || got != want {
		t.Fatalf("got %+v %v", got, err)
	}
	if rest, _ := br.ReadString(0); rest != "upstream bytes" {
		t.Fatalf("rest %q", rest)
	}
	if _, err := ReadVerdict(bufio.NewReader(strings.NewReader(""))); !errors.Is(err, ErrNoVerdict) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := ReadVerdict(bufio.NewReader(strings.NewReader(strings.Repeat("x", MaxVerdict+1)))); err == nil {
		t.Fatal("overlong verdict accepted")
	}
	if _, err := ReadVerdict(bufio.NewReader(strings.NewReader("{}\n"))); err == nil {
		t.Fatal("verdict without decision accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("NETD-TUNNEL/1 CONNECT a:1")
	f.Add("NETD-TUNNEL/1 HTTP http://a/ a")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := Parse(line)
		if err != nil {
			return
		}
		back, err := r.Line()
		if err != nil || back != line {
			t.Fatalf("Parse(%q) = %+v, Line = %q %v", line, r, back, err)
		}
	})
}
