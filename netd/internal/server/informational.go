package server

import netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"

// Informational returns the guest methods that only answer a question and
// change nothing: the door runtime budgets their allowed records (see
// door.Config.Informational), since a box can loop on them for free.
// CheckTarget explains a decision without dialing, whatever its outcome; a
// Tunnel is not here: its records are the evidence of where a box went.
func Informational() []string {
	return []string{netv1.EgressService_CheckTarget_FullMethodName}
}
