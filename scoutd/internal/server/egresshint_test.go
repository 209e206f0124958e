package server

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/scoutd/internal/egressdoor"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
)

// TestEgressDoorDownNamesNoHostPath: when scoutd's egress door (a netd door,
// a host path) does not answer, what the box is told names neither the
// door's path nor gRPC's dial error; the path stays in scoutd's log.
func TestEgressDoorDownNamesNoHostPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "host-only", "netd.doors")
	sock := filepath.Join(dir, "d1.sock")
	cc, err := door.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, derr := egressdoor.New(cc, sock).DialContext(ctx, "tcp", "example.test:443")
	if derr == nil {
		t.Fatal("dial through a missing egress door succeeded")
	}
	if !strings.Contains(derr.Error(), sock) {
		t.Errorf("the dial error %q does not name the door for scoutd's log", derr)
	}
	// As net/http returns it, and scout classifies it.
	err = scout.Classify(ctx, &url.Error{Op: "Get", URL: "https://example.test/x", Err: derr})
	st := status.Convert(toStatus(ctx, err))
	var reason string
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			reason = ei.GetReason()
		}
	}
	if st.Code() != codes.Unavailable || reason != "upstream_unreachable" {
		t.Errorf("status = %s/%s, want Unavailable/upstream_unreachable", st.Code(), reason)
	}
	msg := st.Message()
	if strings.Contains(msg, "host-only") || strings.Contains(msg, "unix") {
		t.Errorf("the box is told a host path or dial error: %q", msg)
	}
	const want = "upstream_unreachable: scoutd's egress door does not answer\nhint: netd, scoutd's egress door, does not answer: start it"
	if !strings.HasPrefix(msg, want) {
		t.Errorf("message = %q, want it to start with %q", msg, want)
	}
}
