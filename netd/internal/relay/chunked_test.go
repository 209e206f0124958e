package relay

import (
	"io"
	"strings"
	"testing"
)

func TestChunkedBody(t *testing.T) {
	good := []string{
		"0\r\n\r\n",
		"3\r\nabc\r\n0\r\n\r\n",
		"A;x=y\r\n0123456789\r\n1\r\nz\r\n0\r\nT: 1\r\nU: 2\r\n\r\n",
	}
	for _, b := range good {
		got, err := io.ReadAll(newChunkedBody(strings.NewReader(b + "GET /next HTTP/1.1\r\n\r\n")))
		if err != nil || string(got) != b {
			t.Errorf("%q: got %q, %v", b, got, err)
		}
	}
	for _, b := range []string{"3\r\nabcX\r\n0\r\n\r\n", "x\r\n", "-1\r\n", "3\nabc\r\n0\r\n\r\n", "\r\n", "3\r\nab", strings.Repeat("1", 5000) + "\r\n"} {
		if _, err := io.ReadAll(newChunkedBody(strings.NewReader(b))); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
}
