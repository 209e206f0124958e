package server

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/client"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
)

// A gRPC client that opens a fetch and stops reading is cut at the idle
// ceiling, as a raw one is: the send that waits for it gives up, the fetch
// is audited as failed and the launch's slot is given back. (A blocked
// Send never returns on its own while the client keeps the stream open.)
func TestGRPCClientThatStopsReadingIsCut(t *testing.T) {
	w := newCapWorld(t, 32<<20, func(c *scout.Config) {
		c.Limits.Idle = 300 * time.Millisecond
		c.Limits.MaxBytes, c.Limits.MaxDecodedBytes = 64<<20, 64<<20
	})
	w.srv.maxInFlight = 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	st, err := scoutv1.NewScoutServiceClient(mustDial(t, w.doors["a"].SocketPath)).Fetch(ctx, &scoutv1.FetchRequest{Url: w.base + "/slow"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetHead() == nil {
		t.Fatalf("first message: %v %v, want the head", m, err)
	}
	// The client reads nothing more; the fetch must end on scoutd's side.
	deadline := time.Now().Add(15 * time.Second)
	for w.srv.Counters()["fetch_failed"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a fetch whose client stopped reading still holds its slot: counters %v", w.srv.Counters())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And the launch is served again, on a connection of its own.
	if _, err := client.New(mustDial(t, w.doors["a"].SocketPath)).Fetch(ctx, &scoutv1.FetchRequest{Url: w.base + "/fast"}, io.Discard); err != nil {
		t.Fatalf("launch a after its stalled fetch was cut: %v", err)
	}
}

func mustDial(t *testing.T, sock string) *grpc.ClientConn {
	t.Helper()
	cc, err := door.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
