package client

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// statusOf returns the door's reason for a refusal it decided (not a
// transport failure).
func statusOf(err error) (string, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return "", false
	}
	switch st.Code() {
	case codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition, codes.ResourceExhausted, codes.Internal:
		return "keeperd: " + st.Message(), true
	}
	return "", false
}
