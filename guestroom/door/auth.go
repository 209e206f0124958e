package door

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/metadata"
)

// AuthorizeFunc decides whether the call in ctx to the full gRPC method may
// proceed. It returns nil to allow and an error saying why not to deny.
type AuthorizeFunc func(ctx context.Context, method string) error

// ErrNoAuthorizer is the denial of a server configured without an authorizer.
var ErrNoAuthorizer = errors.New("no authorizer configured: denied by default")

// ErrUnauthenticated is the denial of a call that carries no valid authority.
var ErrUnauthenticated = errors.New("no valid authority presented")

// SameUser allows unix peers whose uid is the daemon's own, and root. It is
// the authorizer of control sockets.
func SameUser() AuthorizeFunc {
	self := os.Geteuid()
	return func(ctx context.Context, _ string) error {
		p, ok := PeerFrom(ctx)
		if !ok || !p.Unix || !p.Known {
			return fmt.Errorf("%w: peer credentials unknown", ErrUnauthenticated)
		}
		if p.UID != self && p.UID != 0 {
			return fmt.Errorf("peer uid %d is not the daemon's uid %d", p.UID, self)
		}
		return nil
	}
}

// UnixPeers allows any peer connected over a unix socket: on a minted door,
// possessing the socket is the grant. TCP peers are denied.
func UnixPeers() AuthorizeFunc {
	return func(ctx context.Context, _ string) error {
		p, ok := PeerFrom(ctx)
		if !ok || !p.Unix {
			return fmt.Errorf("%w: not a unix-socket peer", ErrUnauthenticated)
		}
		return nil
	}
}

// MetadataToken is the gRPC metadata key that carries a bearer token.
const MetadataToken = "authorization"

// MetadataGrant is the gRPC metadata key that carries a signed grant.
const MetadataGrant = "x-door-grant"

// BearerToken allows calls that present token as "Bearer <token>" in the
// authorization metadata, compared in constant time. An empty token denies
// everything.
func BearerToken(token string) AuthorizeFunc {
	want := []byte(token)
	return func(ctx context.Context, _ string) error {
		if len(want) == 0 {
			return fmt.Errorf("%w: no token configured", ErrUnauthenticated)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get(MetadataToken)
		if len(vals) != 1 {
			return fmt.Errorf("%w: want exactly one bearer token", ErrUnauthenticated)
		}
		got, ok := strings.CutPrefix(vals[0], "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			return fmt.Errorf("%w: bad bearer token", ErrUnauthenticated)
		}
		return nil
	}
}

// SignedGrant allows calls whose x-door-grant metadata verify accepts. verify
// is the engine's grant verifier bound to this door's keyring and audience.
func SignedGrant(verify func(grant string) error) AuthorizeFunc {
	return func(ctx context.Context, _ string) error {
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get(MetadataGrant)
		if len(vals) != 1 {
			return fmt.Errorf("%w: want exactly one signed grant", ErrUnauthenticated)
		}
		if err := verify(vals[0]); err != nil {
			return fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		return nil
	}
}

// AnyOf allows a call that any of fs allows; with none it denies.
func AnyOf(fs ...AuthorizeFunc) AuthorizeFunc {
	return func(ctx context.Context, method string) error {
		errs := make([]error, 0, len(fs))
		for _, f := range fs {
			err := f(ctx, method)
			if err == nil {
				return nil
			}
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			return ErrNoAuthorizer
		}
		return errors.Join(errs...)
	}
}
