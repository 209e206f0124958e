package door

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

func TestSignedGrantAuthorizer(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	sign := func(door, aud string, exp time.Time, key ed25519.PrivateKey) string {
		g, err := guestroom.SignGrant(guestroom.SignedGrant{
			Grant:     guestroom.Grant{Door: guestroom.Door{Name: door}},
			Transport: "tcp://127.0.0.1:7001", Audience: aud, Expiry: exp, Nonce: "n1",
		}, "k1", key)
		if err != nil {
			t.Fatal(err)
		}
		s, err := g.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	verify := GrantVerifier("net", guestroom.Keyring{"k1": pub}, "netd@host", func() time.Time { return now })
	cases := []struct {
		name, grant string
		want        error
	}{
		{"valid", sign("net", "netd@host", now.Add(time.Minute), priv), nil},
		{"other key", sign("net", "netd@host", now.Add(time.Minute), otherPriv), guestroom.ErrBadSignature},
		{"other audience", sign("net", "keeperd@host", now.Add(time.Minute), priv), guestroom.ErrAudience},
		{"expired", sign("net", "netd@host", now, priv), guestroom.ErrExpired},
		{"other door", sign("keeper", "netd@host", now.Add(time.Minute), priv), nil},
		{"garbage", "not-a-grant", guestroom.ErrBadGrant},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := verify(tc.grant)
			switch {
			case tc.name == "valid" && err != nil:
				t.Fatalf("valid grant refused: %v", err)
			case tc.name == "other door" && err == nil:
				t.Fatal("grant for another door accepted")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	// Over TCP: a call without a valid grant never reaches the handler.
	s := NewServer(Config{Door: "net", Authorize: SignedGrant(verify)})
	netv1.RegisterEgressServiceServer(s.GRPC(), echoGuest{})
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	defer s.Stop(context.Background())
	client := netv1.NewEgressServiceClient(dial(t, l.Addr().String()))
	ctx := metadata.AppendToOutgoingContext(context.Background(), MetadataGrant, sign("net", "netd@host", now, priv))
	if _, err := client.CheckTarget(ctx, &netv1.CheckTargetRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("expired grant: %v", err)
	}
	ctx = metadata.AppendToOutgoingContext(context.Background(), MetadataGrant, sign("net", "netd@host", now.Add(time.Hour), priv))
	// The valid grant reaches the handler, which finds no binding on this unminted server.
	if _, err := client.CheckTarget(ctx, &netv1.CheckTargetRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("valid grant: %v", err)
	}
}
