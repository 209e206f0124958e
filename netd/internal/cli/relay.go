package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/relay"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

func relayCmd(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("relay", stderr)
	listen := fs.String("listen", DefaultListen, "loopback `ADDR` to serve the HTTP proxy on")
	doorPath := fs.String("door", DefaultDoor, "net door socket `PATH`, or the loopback host:port of a TCP door (token in $"+EnvDoorToken+")")
	grpcOnly := fs.Bool("grpc", false, "carry tunnels on gRPC streams even on a unix door (the raw fast path is the default there)")
	headTimeout := fs.Duration("head-timeout", relay.DefaultHeadTimeout, "drop a client whose request head takes longer")
	level := fs.String("log-level", "info", "log level (debug, info, warn, error)")
	if ok, err := parse(fs, args); !ok {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: relay takes no arguments, got %q", errUsage, fs.Args())
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	cc, err := dialDoor(*doorPath, os.Getenv(EnvDoorToken))
	if err != nil {
		return err
	}
	defer cc.Close()
	l, err := relay.Listen(*listen)
	if err != nil {
		return err
	}
	raw := ""
	if !*grpcOnly {
		raw = rawDoor(*doorPath, os.Getenv(EnvDoorToken))
	}
	log.Info("netd relay serving", slog.String("listen", l.Addr().String()), slog.String("door", *doorPath), slog.Bool("raw", raw != ""))
	r := relay.New(relay.Config{Door: netv1.NewEgressServiceClient(cc), RawDoor: raw, DoorName: *doorPath, Logger: log, HeadTimeout: *headTimeout})
	return r.Serve(ctx, l)
}

// EnvDoorToken carries the bearer token of a loopback TCP door
// (DOORS_TCP=1, where unix sockets cannot be shared); a unix door needs none.
const EnvDoorToken = "NETD_DOOR_TOKEN"

// rawDoor is the socket path raw tunnels go to: a unix door's path, or ""
// for a TCP door (raw connections carry no bearer token, so TCP doors
// refuse them and tunnels there stay on gRPC streams).
func rawDoor(path, token string) string {
	if token != "" {
		return ""
	}
	if p, ok := strings.CutPrefix(path, "unix://"); ok {
		return p
	}
	if strings.HasPrefix(path, "/") {
		return path
	}
	return ""
}

// dialDoor connects lazily to a door, reconnecting quickly when netd comes
// back after a restart.
func dialDoor(path, token string) (*grpc.ClientConn, error) {
	opts := append(relay.DialOptions(), grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 2 * time.Second,
	}))
	if token != "" {
		opts = append(opts, door.WithBearer(token))
	}
	return door.Dial(path, opts...)
}
