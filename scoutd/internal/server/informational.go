package server

import scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"

// Informational returns the guest methods that only answer a question and
// change nothing: the door runtime budgets their allowed records (see
// door.Config.Informational), since a box can loop on them for free.
// Fetches, snapshots, issues and pull requests are not here: each reaches
// the network, and its record is the evidence of what a box read.
func Informational() []string {
	return []string{scoutv1.ScoutService_GetStatus_FullMethodName}
}
