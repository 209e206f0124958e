package server

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/keeperd/internal/keeper"
)

// A walk over a ceiling is a refusal the box can act on: ResourceExhausted
// with the domain's words, audited as too_large.
func TestTooLargeStatus(t *testing.T) {
	err := fmt.Errorf("%w: more than 50 files, directories and symlinks to walk", keeper.ErrTooLarge)
	st := status.Convert(toStatus(err, "/host/repo"))
	if st.Code() != codes.ResourceExhausted || st.Message() != err.Error() {
		t.Fatalf("status = %v %q", st.Code(), st.Message())
	}
	if got := reasonOf(err); got != ReasonTooLarge {
		t.Fatalf("reason = %q, want %q", got, ReasonTooLarge)
	}
}
