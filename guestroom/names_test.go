package guestroom

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEngineNamesNoGuest keeps the engine guest-agnostic: its non-test
// sources must never name a guest, a product or a daemon built on it.
func TestEngineNamesNoGuest(t *testing.T) {
	banned := []string{"claude", "anthropic", "podman", "keeperd", "netd", "scoutd"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		lower := strings.ToLower(string(b))
		for _, word := range banned {
			if i := strings.Index(lower, word); i >= 0 {
				line := 1 + strings.Count(lower[:i], "\n")
				t.Errorf("%s:%d names %q; the engine must stay guest-agnostic", f, line, word)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no engine sources found to check")
	}
}
