package keeper

import (
	"bytes"
	"context"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// MaxSignPayload bounds a Sign payload.
const MaxSignPayload = 1 << 20

// Sign signs a commit or tag object for git's gpg.ssh.program path. It is
// not a general-purpose signing oracle: the namespace must be "git", the
// payload must be exactly a canonical unsigned commit or tag object, and its
// committer (or tagger) must be an identity in policy.
func (k *Keeper) Sign(ctx context.Context, l Launch, namespace string, payload []byte) ([]byte, error) {
	if namespace != "git" {
		return nil, fmt.Errorf("%w: namespace %q: keeperd signs git objects only (namespace \"git\")", ErrDenied, namespace)
	}
	if len(payload) > MaxSignPayload {
		return nil, fmt.Errorf("%w: payload over %d bytes", ErrDenied, MaxSignPayload)
	}
	kind, who, err := k.checkPayload(payload)
	if err != nil {
		return nil, err
	}
	if err := k.take(l, "sign"); err != nil {
		return nil, err
	}
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	sig, err := k.key.SignSSH("git", bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	k.record(l, Write{Kind: "sign", Target: kind, Summary: who})
	return sig, nil
}

func (k *Keeper) checkPayload(payload []byte) (kind, who string, err error) {
	p := k.Policy()
	o := &plumbing.MemoryObject{}
	switch {
	case bytes.HasPrefix(payload, []byte("tree ")):
		o.SetType(plumbing.CommitObject)
		o.Write(payload)
		var c object.Commit
		if err := c.Decode(o); err != nil {
			return "", "", fmt.Errorf("%w: payload is not a commit object", ErrDenied)
		}
		if c.PGPSignature != "" {
			return "", "", fmt.Errorf("%w: payload is already signed", ErrDenied)
		}
		if again, err := commitPayload(&c); err != nil || !bytes.Equal(again, payload) {
			return "", "", fmt.Errorf("%w: payload is not a canonical commit object", ErrDenied)
		}
		if !p.hasIdentity(c.Committer.Name, c.Committer.Email) {
			return "", "", fmt.Errorf("%w: committer %q is not an identity in policy", ErrDenied, c.Committer.Name+" <"+c.Committer.Email+">")
		}
		return "commit", firstLine(c.Message), nil
	case bytes.HasPrefix(payload, []byte("object ")):
		o.SetType(plumbing.TagObject)
		o.Write(payload)
		var t object.Tag
		if err := t.Decode(o); err != nil {
			return "", "", fmt.Errorf("%w: payload is not a tag object", ErrDenied)
		}
		if t.PGPSignature != "" {
			return "", "", fmt.Errorf("%w: payload is already signed", ErrDenied)
		}
		again := &plumbing.MemoryObject{}
		if err := t.EncodeWithoutSignature(again); err != nil {
			return "", "", fmt.Errorf("%w: payload is not a canonical tag object", ErrDenied)
		}
		if r, err := again.Reader(); err == nil {
			var b bytes.Buffer
			b.ReadFrom(r)
			if !bytes.Equal(b.Bytes(), payload) {
				return "", "", fmt.Errorf("%w: payload is not a canonical tag object", ErrDenied)
			}
		}
		if !p.hasIdentity(t.Tagger.Name, t.Tagger.Email) {
			return "", "", fmt.Errorf("%w: tagger %q is not an identity in policy", ErrDenied, t.Tagger.Name+" <"+t.Tagger.Email+">")
		}
		return "tag " + t.Name, firstLine(t.Message), nil
	}
	return "", "", fmt.Errorf("%w: payload is not a commit or tag object", ErrDenied)
}
