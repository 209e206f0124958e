package door

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// DefaultCallTimeout is the deadline clients put on a unary call.
const DefaultCallTimeout = 30 * time.Second

// ErrUnavailable reports a door that does not answer.
var ErrUnavailable = errors.New("door is not answering")

// target normalizes a door address into a gRPC target: a unix path
// ("/run/doors/netd.sock"), "unix:///path", or a loopback "host:port".
func target(addr string) (string, error) {
	switch {
	case addr == "":
		return "", errors.New("empty door address")
	case strings.HasPrefix(addr, "unix://"):
		if !strings.HasPrefix(addr, "unix:///") {
			return "", fmt.Errorf("door address %q: want unix:///absolute/path", addr)
		}
		return addr, nil
	case strings.HasPrefix(addr, "/"):
		return "unix://" + addr, nil
	case strings.Contains(addr, "://"):
		return "", fmt.Errorf("door address %q: unsupported scheme", addr)
	default:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", fmt.Errorf("door address %q: want a socket path or host:port", addr)
		}
		return "passthrough:///" + addr, nil
	}
}

// Dial returns a client connection to the door at addr. Like grpc.NewClient
// it connects lazily; use Ping to fail fast with a clear error.
func Dial(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	t, err := target(addr)
	if err != nil {
		return nil, err
	}
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16 << 20)),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithWriteBufferSize(writeBuffer),
		grpc.WithReadBufferSize(writeBuffer),
	}, opts...)
	cc, err := grpc.NewClient(t, opts...)
	if err != nil {
		return nil, fmt.Errorf("door %s: %w", addr, err)
	}
	return cc, nil
}

// Ping checks that the door at addr answers its health service with SERVING.
func Ping(ctx context.Context, cc *grpc.ClientConn, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return Unavailable(addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Unavailable(addr, fmt.Errorf("health is %s", resp.GetStatus()))
	}
	return nil
}

// Unavailable wraps a connection failure into an error that names the socket.
func Unavailable(addr string, err error) error {
	return fmt.Errorf("%w at %s: %w", ErrUnavailable, addr, err)
}

// bearer is per-call credentials for a TCP door's token.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{MetadataToken: "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: TCP doors listen on loopback only.
func (bearer) RequireTransportSecurity() bool { return false }

// WithBearer makes every call present token, as a TCP door requires.
func WithBearer(token string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(bearer(token))
}
