package scout

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/bounded-systems/claude-box/guestroom"
)

// A host= caveat entry that names a port narrows to that port: the
// allowlist admitting another port of the host does not widen it.
func TestHostCaveatWithPortNarrowsThePort(t *testing.T) {
	e := newEnv(t)
	_, port := e.server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	s := e.scout([]string{"good.test:" + port}, nil)
	url := "https://good.test:" + port + "/"
	for _, tc := range []struct {
		caveat string
		reason string
	}{
		{"good.test:443", ReasonCaveatDenied},
		{".test:1", ReasonCaveatDenied},
		{"good.test:" + port, ""},
		{"good.test", ""},
	} {
		var bw bufWriter
		_, _, err := s.Fetch(context.Background(), FetchRequest{URL: url, Caveats: []guestroom.Caveat{{Key: "host", Value: tc.caveat}}}, &bw)
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("caveat %s: %v", tc.caveat, err)
		case tc.reason != "" && err == nil:
			t.Errorf("caveat %s admitted port %s", tc.caveat, port)
		case tc.reason != "" && reasonOf(t, err) != tc.reason:
			t.Errorf("caveat %s: reason %s (%v), want %s", tc.caveat, reasonOf(t, err), err, tc.reason)
		}
	}
}
