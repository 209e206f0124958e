package guestroom

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SignedGrant is authority in transit: a grant that travels with its holder
// over a transport where the kernel vouches for nobody (TCP), signed with
// Ed25519 by whoever minted it.
//
// The signature covers the door's name, Transport, the caveats (sorted, so
// their order does not matter), Audience, Expiry, Nonce and KeyID. It does
// not cover the door's texts, flag, env or sockets, which are cosmetic: a
// verifier must take authority only from the covered fields.
type SignedGrant struct {
	// Grant is the door and the caveats that narrow it.
	Grant Grant `json:"grant"`
	// Transport is where the door is reached from inside the box, e.g.
	// "tcp://10.0.2.2:7001" or "unix:///run/doors/x.sock".
	Transport string `json:"transport"`
	// Audience names the one service that may accept the grant.
	Audience string `json:"aud"`
	// Expiry is the first instant at which the grant no longer holds.
	Expiry time.Time `json:"exp"`
	// Nonce makes every grant unique; the signer chooses it (e.g. 16
	// random bytes, hex).
	Nonce string `json:"nonce"`
	// KeyID names the signing key in the verifier's Keyring.
	KeyID string `json:"kid"`
	// Signature is the Ed25519 signature over SigningBytes.
	Signature []byte `json:"sig,omitempty"`
}

// Errors of Keyring.Verify, reported in this order.
var (
	// ErrUnsigned reports a grant without a signature.
	ErrUnsigned = errors.New("grant is unsigned")
	// ErrUnknownKey reports a grant signed by a key the keyring lacks.
	ErrUnknownKey = errors.New("grant signed by an unknown key")
	// ErrBadSignature reports a signature that does not verify.
	ErrBadSignature = errors.New("grant signature does not verify")
	// ErrAudience reports a grant meant for another service.
	ErrAudience = errors.New("grant is for another audience")
)

// ErrBadGrant reports a signed grant that cannot be signed or decoded.
var ErrBadGrant = errors.New("bad signed grant")

// signingDomain separates these signatures from any other use of a key.
const signingDomain = "guestroom signed grant v1\n"

// SigningBytes is the canonical encoding the signature covers: a domain
// string, then each covered field length-prefixed (caveats sorted by key,
// then value; expiry as Unix seconds and nanoseconds).
func (g SignedGrant) SigningBytes() []byte {
	var b bytes.Buffer
	b.WriteString(signingDomain)
	field := func(s string) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		b.WriteString(s)
	}
	field(g.Grant.Door.Name)
	field(g.Transport)
	caveats := slices.Clone(g.Grant.Caveats)
	slices.SortFunc(caveats, func(a, b Caveat) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(caveats))))
	for _, c := range caveats {
		field(c.Key)
		field(c.Value)
	}
	field(g.Audience)
	b.Write(binary.BigEndian.AppendUint64(nil, uint64(g.Expiry.Unix())))
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(g.Expiry.Nanosecond())))
	field(g.Nonce)
	field(g.KeyID)
	return b.Bytes()
}

// SignGrant signs g with key under key id kid and returns the signed copy.
// It refuses a grant that names no valid door, transport, audience, expiry
// or nonce.
func SignGrant(g SignedGrant, kid string, key ed25519.PrivateKey) (SignedGrant, error) {
	switch {
	case len(key) != ed25519.PrivateKeySize:
		return SignedGrant{}, fmt.Errorf("%w: private key is %d bytes, want %d", ErrBadGrant, len(key), ed25519.PrivateKeySize)
	case kid == "":
		return SignedGrant{}, fmt.Errorf("%w: empty key id", ErrBadGrant)
	case g.Transport == "":
		return SignedGrant{}, fmt.Errorf("%w: empty transport", ErrBadGrant)
	case g.Audience == "":
		return SignedGrant{}, fmt.Errorf("%w: empty audience", ErrBadGrant)
	case g.Expiry.IsZero():
		return SignedGrant{}, fmt.Errorf("%w: no expiry", ErrBadGrant)
	case g.Nonce == "":
		return SignedGrant{}, fmt.Errorf("%w: empty nonce", ErrBadGrant)
	}
	if err := ValidateName(g.Grant.Door.Name); err != nil {
		return SignedGrant{}, fmt.Errorf("%w: %w", ErrBadGrant, err)
	}
	for _, c := range g.Grant.Caveats {
		if err := c.Validate(); err != nil {
			return SignedGrant{}, fmt.Errorf("%w: %w", ErrBadGrant, err)
		}
	}
	g.Grant.Caveats = slices.Clone(g.Grant.Caveats)
	g.KeyID = kid
	g.Signature = ed25519.Sign(key, g.SigningBytes())
	return g, nil
}

// Keyring maps a key id to the Ed25519 public key it names. Rotate keys by
// adding the new id, then dropping the old one once its grants expire.
type Keyring map[string]ed25519.PublicKey

// Verify checks that g is a grant for audience, valid at now, signed by a
// key in the keyring. It reports the first failure, in this order:
// ErrUnsigned, ErrUnknownKey, ErrBadSignature, ErrAudience, ErrExpired (now
// must be strictly before the expiry).
func (k Keyring) Verify(g SignedGrant, audience string, now time.Time) error {
	if len(g.Signature) == 0 {
		return fmt.Errorf("door %q: %w", g.Grant.Door.Name, ErrUnsigned)
	}
	pub, ok := k[g.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("door %q: %w %q", g.Grant.Door.Name, ErrUnknownKey, g.KeyID)
	}
	if !ed25519.Verify(pub, g.SigningBytes(), g.Signature) {
		return fmt.Errorf("door %q: %w", g.Grant.Door.Name, ErrBadSignature)
	}
	if g.Audience != audience {
		return fmt.Errorf("door %q: %w: for %q, not %q", g.Grant.Door.Name, ErrAudience, g.Audience, audience)
	}
	if !now.Before(g.Expiry) {
		return fmt.Errorf("door %q: grant %w at %s", g.Grant.Door.Name, ErrExpired, g.Expiry.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// maxEncodedGrant bounds what DecodeSignedGrant reads.
const maxEncodedGrant = 16 << 10

// Encode renders g for transit (a header or metadata value): unpadded
// base64url of its JSON.
func (g SignedGrant) Encode() (string, error) {
	b, err := json.Marshal(g)
	if err != nil {
		return "", fmt.Errorf("encode signed grant: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeSignedGrant reads what Encode wrote. Decoding is not verifying:
// pass the result to Keyring.Verify before trusting any of it.
func DecodeSignedGrant(s string) (SignedGrant, error) {
	if len(s) > maxEncodedGrant {
		return SignedGrant{}, fmt.Errorf("%w: %d bytes, at most %d", ErrBadGrant, len(s), maxEncodedGrant)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return SignedGrant{}, fmt.Errorf("%w: %w", ErrBadGrant, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var g SignedGrant
	if err := dec.Decode(&g); err != nil {
		return SignedGrant{}, fmt.Errorf("%w: %w", ErrBadGrant, err)
	}
	if dec.More() {
		return SignedGrant{}, fmt.Errorf("%w: trailing data", ErrBadGrant)
	}
	return g, nil
}
