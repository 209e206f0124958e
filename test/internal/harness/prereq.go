package harness

import (
	"os"
	"testing"
)

// InCI reports whether the suite runs in CI (CI=true), where a missing
// prerequisite is a failure rather than a skip.
func InCI() bool {
	return os.Getenv("CI") == "true"
}

// Need stops the test when err is not nil: it fails in CI and skips, naming
// what is missing, elsewhere.
func Need(tb testing.TB, what string, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if InCI() {
		tb.Fatalf("prerequisite %s: %v", what, err)
	}
	tb.Skipf("prerequisite %s missing: %v", what, err)
}
