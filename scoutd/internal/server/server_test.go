package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
)

func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{fmt.Errorf("wrapped: %w", dest.ErrNotAllowlisted), codes.PermissionDenied, "not_allowlisted"},
		{dest.ErrPrivateAddress, codes.PermissionDenied, "private_address"},
		{dest.ErrBadTarget, codes.InvalidArgument, "bad_target"},
		{dest.ErrUnreachable, codes.Unavailable, "upstream_unreachable"},
		{&scout.Error{Kind: scout.KindTooLarge, Reason: scout.ReasonDecodedTooLarge, Err: errors.New("x")}, codes.ResourceExhausted, "decoded_too_large"},
		{&scout.Error{Kind: scout.KindTimeout, Reason: scout.ReasonIdleTimeout}, codes.DeadlineExceeded, "idle_timeout"},
		{&scout.Error{Kind: scout.KindNotFound, Reason: scout.ReasonRefNotFound}, codes.NotFound, "ref_not_found"},
		{errors.New("some bug with /secret/path"), codes.Internal, "internal"},
	} {
		st, _ := status.FromError(toStatus(context.Background(), tc.err))
		var reason string
		for _, d := range st.Details() {
			if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == ErrorDomain {
				reason = ei.GetReason()
			}
		}
		if st.Code() != tc.code || reason != tc.reason {
			t.Errorf("toStatus(%v) = %s/%s, want %s/%s", tc.err, st.Code(), reason, tc.code, tc.reason)
		}
		if tc.code == codes.Internal && strings.Contains(st.Message(), "secret") {
			t.Errorf("internal error leaked its detail: %q", st.Message())
		}
	}
	if toStatus(context.Background(), nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@host.test/a?token=x#f": "https://host.test/a",
		"not a url \x00":                    "not a url \x00",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
