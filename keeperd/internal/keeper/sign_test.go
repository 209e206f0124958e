package keeper

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

const (
	okCommit     = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor Claude <claude@example.com> 1700000000 +0000\ncommitter Claude <claude@example.com> 1700000000 +0000\n\nmsg\n"
	badCommitter = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor Claude <claude@example.com> 1700000000 +0000\ncommitter Mallory <m@evil.example> 1700000000 +0000\n\nmsg\n"
	okTag        = "object 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ntype commit\ntag v1\ntagger Claude <claude@example.com> 1700000000 +0000\n\nrelease\n"
)

func TestSign(t *testing.T) {
	f := newFixture(t, func(p *Policy) { p.Rate.SignsPerLaunch = 3 })
	ctx := context.Background()
	for _, payload := range []string{okCommit, okTag} {
		sig, err := f.k.Sign(ctx, f.launch, "git", []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifySSH(sig, "git", bytes.NewReader([]byte(payload))); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, ns, payload string
		kind              error
		want              string
	}{
		{"namespace file", "file", okCommit, ErrDenied, `denied: namespace "file": keeperd signs git objects only (namespace "git")`},
		{"namespace statement", StatementNamespace, okCommit, ErrDenied, `denied: namespace "claude-box-statement": keeperd signs git objects only (namespace "git")`},
		{"not an object", "git", "hello world\n", ErrDenied, "denied: payload is not a commit or tag object"},
		{"ssh challenge", "git", "\x00\x00\x00\x20challenge", ErrDenied, "denied: payload is not a commit or tag object"},
		{"committer outside policy", "git", badCommitter, ErrDenied, `denied: committer "Mallory <m@evil.example>" is not an identity in policy`},
		{"two trees", "git", "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ntree 4b825dc642cb6eb9a060e54bf8d69288fbee4905\nauthor Claude <claude@example.com> 1700000000 +0000\ncommitter Claude <claude@example.com> 1700000000 +0000\n\nmsg\n", ErrDenied, `denied: committer " <>" is not an identity in policy`},
		{"bad tree", "git", "tree zz\n\n", ErrDenied, "denied: payload is not a commit object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.k.Sign(ctx, f.launch, tc.ns, []byte(tc.payload))
			if !errors.Is(err, tc.kind) || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := f.k.Sign(ctx, f.launch, "git", []byte(okCommit)); err != nil {
		t.Fatal(err)
	}
	_, err := f.k.Sign(ctx, f.launch, "git", []byte(okCommit))
	if !errors.Is(err, ErrRateLimited) || err.Error() != "rate limited: this launch has used its 3 signs (policy rate)" {
		t.Fatalf("err = %v", err)
	}
	// Another launch has its own budget.
	other := f.launch
	other.ID = "L2"
	if _, err := f.k.Sign(ctx, other, "git", []byte(okCommit)); err != nil {
		t.Fatal(err)
	}
}
