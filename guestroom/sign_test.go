package guestroom

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testKey derives a deterministic key from a one-byte seed.
func testKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

var signNow = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func unsignedGrant() SignedGrant {
	return SignedGrant{
		Grant: Grant{
			Door: Door{
				Name: "vault", Flag: "--vault", Socket: "/run/doors/vault.sock", Env: "VAULT_SOCK",
				Grants: "signed commits", Usage: "run vault", Absent: "relaunch with --vault",
			},
			Caveats: []Caveat{cv("branch", "main"), cv("repo", "r")},
		},
		Transport: "tcp://10.0.2.2:7001",
		Audience:  "vault-door",
		Expiry:    signNow.Add(time.Minute),
		Nonce:     "6e6f6e6365",
	}
}

func signed(t *testing.T) SignedGrant {
	t.Helper()
	_, priv := testKey(1)
	g, err := SignGrant(unsignedGrant(), "k1", priv)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestVerify(t *testing.T) {
	pub1, _ := testKey(1)
	pub2, _ := testKey(2)
	ring := Keyring{"k1": pub1, "k2": pub2}
	tests := []struct {
		name     string
		mutate   func(*SignedGrant)
		ring     Keyring
		audience string
		now      time.Time
		want     error
	}{
		{"valid", nil, ring, "vault-door", signNow, nil},
		{"valid a nanosecond before expiry", nil, ring, "vault-door", signNow.Add(time.Minute - 1), nil},
		{"unsigned", func(g *SignedGrant) { g.Signature = nil }, ring, "vault-door", signNow, ErrUnsigned},
		{"unsigned beats unknown key", func(g *SignedGrant) { g.Signature = nil; g.KeyID = "k9" }, ring, "other", signNow.Add(time.Hour), ErrUnsigned},
		{"unknown key", func(g *SignedGrant) { g.KeyID = "k9" }, ring, "vault-door", signNow, ErrUnknownKey},
		{"key rotated out", nil, Keyring{"k2": pub2}, "vault-door", signNow, ErrUnknownKey},
		{"truncated key in ring", nil, Keyring{"k1": pub1[:5]}, "vault-door", signNow, ErrUnknownKey},
		{"nil ring", nil, nil, "vault-door", signNow, ErrUnknownKey},
		{"unknown key beats bad signature", func(g *SignedGrant) { g.KeyID = "k9"; g.Signature[0] ^= 1 }, ring, "vault-door", signNow, ErrUnknownKey},
		{"bad signature", func(g *SignedGrant) { g.Signature[0] ^= 1 }, ring, "vault-door", signNow, ErrBadSignature},
		{"short signature", func(g *SignedGrant) { g.Signature = g.Signature[:10] }, ring, "vault-door", signNow, ErrBadSignature},
		{"signed by another key", func(g *SignedGrant) { g.KeyID = "k2" }, ring, "vault-door", signNow, ErrBadSignature},
		{"bad signature beats audience", func(g *SignedGrant) { g.Signature[0] ^= 1 }, ring, "other", signNow.Add(time.Hour), ErrBadSignature},
		{"audience mismatch", nil, ring, "other", signNow, ErrAudience},
		{"audience beats expired", nil, ring, "other", signNow.Add(time.Hour), ErrAudience},
		{"expired at expiry", nil, ring, "vault-door", signNow.Add(time.Minute), ErrExpired},
		{"expired after", nil, ring, "vault-door", signNow.Add(time.Hour), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := signed(t)
			if tt.mutate != nil {
				tt.mutate(&g)
			}
			err := tt.ring.Verify(g, tt.audience, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrUnsigned, ErrUnknownKey, ErrBadSignature, ErrAudience, ErrExpired} {
				if other != tt.want && errors.Is(err, other) {
					t.Fatalf("Verify = %v also matches %v", err, other)
				}
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	pub1, priv1 := testKey(1)
	pub2, priv2 := testKey(2)
	old, err := SignGrant(unsignedGrant(), "k1", priv1)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := SignGrant(unsignedGrant(), "k2", priv2)
	if err != nil {
		t.Fatal(err)
	}
	during := Keyring{"k1": pub1, "k2": pub2}
	after := Keyring{"k2": pub2}
	for _, step := range []struct {
		name string
		ring Keyring
		g    SignedGrant
		want error
	}{
		{"old key during rotation", during, old, nil},
		{"new key during rotation", during, fresh, nil},
		{"old key after rotation", after, old, ErrUnknownKey},
		{"new key after rotation", after, fresh, nil},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := step.ring.Verify(step.g, "vault-door", signNow); !errors.Is(err, step.want) || (step.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, step.want)
			}
		})
	}
}

func TestSignatureCoversAuthorityNotTexts(t *testing.T) {
	pub1, _ := testKey(1)
	// The same key under two ids, so that changing the key id reaches the
	// signature check.
	ring := Keyring{"k1": pub1, "k1-copy": pub1}
	covered := []struct {
		name   string
		mutate func(*SignedGrant)
	}{
		{"name", func(g *SignedGrant) { g.Grant.Door.Name = "web" }},
		{"transport", func(g *SignedGrant) { g.Transport = "tcp://10.0.2.2:7002" }},
		{"caveat key", func(g *SignedGrant) { g.Grant.Caveats[0].Key = "branches" }},
		{"caveat value", func(g *SignedGrant) { g.Grant.Caveats[0].Value = "*" }},
		{"caveat dropped", func(g *SignedGrant) { g.Grant.Caveats = g.Grant.Caveats[:1] }},
		{"caveat added", func(g *SignedGrant) { g.Grant.Caveats = append(g.Grant.Caveats, cv("x", "y")) }},
		{"caveats moved between key and value", func(g *SignedGrant) { g.Grant.Caveats[0] = cv("branchm", "ain") }},
		{"audience", func(g *SignedGrant) { g.Audience = "web-door" }},
		{"expiry", func(g *SignedGrant) { g.Expiry = g.Expiry.Add(time.Nanosecond) }},
		{"nonce", func(g *SignedGrant) { g.Nonce = "other" }},
		{"key id", func(g *SignedGrant) { g.KeyID = "k1-copy" }},
	}
	for _, tt := range covered {
		t.Run("covered/"+tt.name, func(t *testing.T) {
			g := signed(t)
			tt.mutate(&g)
			if err := ring.Verify(g, g.Audience, signNow); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("changing %s: Verify = %v, want ErrBadSignature", tt.name, err)
			}
		})
	}
	cosmetic := []struct {
		name   string
		mutate func(*SignedGrant)
	}{
		{"grants text", func(g *SignedGrant) { g.Grant.Door.Grants = "everything" }},
		{"usage text", func(g *SignedGrant) { g.Grant.Door.Usage = "anything" }},
		{"absent text", func(g *SignedGrant) { g.Grant.Door.Absent = "nothing" }},
		{"flag", func(g *SignedGrant) { g.Grant.Door.Flag = "--all" }},
		{"caveat order", func(g *SignedGrant) {
			c := g.Grant.Caveats
			g.Grant.Caveats = []Caveat{c[1], c[0]}
		}},
		{"expiry zone", func(g *SignedGrant) { g.Expiry = g.Expiry.In(time.FixedZone("x", 3600)) }},
	}
	for _, tt := range cosmetic {
		t.Run("cosmetic/"+tt.name, func(t *testing.T) {
			g := signed(t)
			tt.mutate(&g)
			if err := ring.Verify(g, "vault-door", signNow); err != nil {
				t.Fatalf("changing %s: Verify = %v, want nil", tt.name, err)
			}
		})
	}
}

func TestSignGrantRefuses(t *testing.T) {
	_, priv := testKey(1)
	tests := []struct {
		name   string
		mutate func(*SignedGrant)
		kid    string
		key    ed25519.PrivateKey
		want   string
	}{
		{"short key", nil, "k1", priv[:10], "private key is 10 bytes"},
		{"no key id", nil, "", priv, "empty key id"},
		{"no transport", func(g *SignedGrant) { g.Transport = "" }, "k1", priv, "empty transport"},
		{"no audience", func(g *SignedGrant) { g.Audience = "" }, "k1", priv, "empty audience"},
		{"no expiry", func(g *SignedGrant) { g.Expiry = time.Time{} }, "k1", priv, "no expiry"},
		{"no nonce", func(g *SignedGrant) { g.Nonce = "" }, "k1", priv, "empty nonce"},
		{"bad door name", func(g *SignedGrant) { g.Grant.Door.Name = "../x" }, "k1", priv, "bad name"},
		{"bad caveat", func(g *SignedGrant) { g.Grant.Caveats = []Caveat{cv("", "x")} }, "k1", priv, "bad caveat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := unsignedGrant()
			if tt.mutate != nil {
				tt.mutate(&g)
			}
			_, err := SignGrant(g, tt.kid, tt.key)
			if !errors.Is(err, ErrBadGrant) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SignGrant err = %v, want ErrBadGrant mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSignedGrantTransit(t *testing.T) {
	pub1, _ := testKey(1)
	g := signed(t)
	s, err := g.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(s, "+/=\n") {
		t.Fatalf("Encode = %q is not unpadded base64url", s)
	}
	back, err := DecodeSignedGrant(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := (Keyring{"k1": pub1}).Verify(back, "vault-door", signNow); err != nil {
		t.Fatalf("decoded grant does not verify: %v", err)
	}
	back.Grant.Door.HostSocket = g.Grant.Door.HostSocket
	if !reflect.DeepEqual(back.SigningBytes(), g.SigningBytes()) {
		t.Fatal("transit changed the covered fields")
	}

	bad := []struct {
		name, in, want string
	}{
		{"not base64", "!!", "illegal base64"},
		{"not json", "bm90IGpzb24", "invalid character"},
		{"unknown field", "eyJ4IjoxfQ", "unknown field"},
		{"trailing data", "e30gW10", "trailing data"},
		{"too long", strings.Repeat("A", maxEncodedGrant+1), "at most"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSignedGrant(tt.in)
			if !errors.Is(err, ErrBadGrant) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeSignedGrant(%q) = %v, want ErrBadGrant mentioning %q", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzDecodeSignedGrant(f *testing.F) {
	pub1, priv1 := testKey(1)
	g, err := SignGrant(unsignedGrant(), "k1", priv1)
	if err != nil {
		f.Fatal(err)
	}
	enc, err := g.Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{enc, "", "e30", "eyJ4IjoxfQ", "!!"} {
		f.Add(s)
	}
	ring := Keyring{"k1": pub1, "short": pub1[:3]}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := DecodeSignedGrant(s)
		if err != nil {
			if !errors.Is(err, ErrBadGrant) {
				t.Fatalf("DecodeSignedGrant err %v is not ErrBadGrant", err)
			}
			return
		}
		// Whatever decodes must verify without panicking, and only a
		// grant that really was signed by k1 verifies.
		if err := ring.Verify(g, "vault-door", signNow); err == nil && !bytes.Equal(g.SigningBytes(), mustSigned(t, priv1).SigningBytes()) {
			t.Fatalf("a forged grant verified: %+v", g)
		}
	})
}

func mustSigned(t *testing.T, priv ed25519.PrivateKey) SignedGrant {
	t.Helper()
	g, err := SignGrant(unsignedGrant(), "k1", priv)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
