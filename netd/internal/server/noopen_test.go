package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom/door"
)

// A Tunnel stream that ends before its Open asked for nothing and was
// allowed nothing: its one record is a refusal (so the launch's audit budget
// bounds a box that loops on it), never allow=true.
func TestTunnelEndedBeforeOpenIsARefusal(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, f *fixture) // ends one stream before its Open
		code codes.Code                     // what the box is told, when it still listens
	}{
		{"half-closed", func(t *testing.T, f *fixture) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := f.doors["a"].Tunnel(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
				t.Errorf("Recv after a half-close without open = %v, want InvalidArgument", err)
			}
		}, codes.InvalidArgument},
		{"cancelled", func(t *testing.T, f *fixture) {
			ctx, cancel := context.WithCancel(context.Background())
			if _, err := f.doors["a"].Tunnel(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
		}, codes.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Limits{})
			tc.end(t, f)
			var rec map[string]any
			deadline := time.Now().Add(10 * time.Second)
			for rec == nil && time.Now().Before(deadline) {
				for _, line := range strings.Split(f.logs.String(), "\n") {
					var m map[string]any
					if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == door.AuditMsg && m["launch"] == "a" {
						rec = m
					}
				}
				if rec == nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
			if rec == nil {
				t.Fatalf("no audit record:\n%s", f.logs.String())
			}
			if rec["allow"] != false || rec["level"] != "WARN" || rec["reason"] != ReasonNoOpen || rec["method"] != methodTunnel {
				t.Errorf("record of a stream ended before its open = %v, want a refusal (allow=false, WARN, reason %s, method %s)", rec, ReasonNoOpen, methodTunnel)
			}
		})
	}
}
