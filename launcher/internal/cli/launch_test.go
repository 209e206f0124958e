package cli

import (
	"errors"
	"testing"

	"github.com/bounded-systems/claude-box/launcher/internal/engine"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

func TestCheckPin(t *testing.T) {
	img := engine.Image{ID: "sha256:aaa", Digest: "sha256:bbb", RepoDigests: []string{"localhost/claude-box@sha256:ccc"}}
	for _, pin := range []string{"", "sha256:aaa", "aaa", "sha256:bbb", "sha256:ccc"} {
		if err := checkPin(img, pin); err != nil {
			t.Errorf("pin %q: %v", pin, err)
		}
	}
	if err := checkPin(img, "sha256:ddd"); !errors.Is(err, ErrPin) {
		t.Fatalf("mismatch: %v", err)
	}
}

func TestControlSocketsAndImageRef(t *testing.T) {
	env := map[string]string{"HOME": "/h", "KEEPERD_SOCK": "/k.sock"}
	get := func(k string) string { return env[k] }
	cs := controlSockets(get, "")
	if cs.For("netd") != "/h/.claude-box/run/netd.sock" || cs.For("keeperd") != "/k.sock" {
		t.Fatalf("%+v", cs)
	}
	env["CLAUDE_BOX_RUN_DIR"] = "/run/x"
	if controlSockets(get, "").For("scoutd") != "/run/x/scoutd.sock" || controlSockets(get, "/flag").For("scoutd") != "/flag/scoutd.sock" {
		t.Fatal("run dir precedence")
	}
	if imageRef("", get) != plan.DefaultImage || imageRef("a", get) != "a" {
		t.Fatal("image default")
	}
	env["CLAUDE_BOX_IMAGE"] = "b"
	if imageRef("", get) != "b" {
		t.Fatal("image env")
	}
}
