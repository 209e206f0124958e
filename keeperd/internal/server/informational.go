package server

import keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"

// Informational returns the guest methods that only answer a question and
// change nothing: the door runtime budgets their allowed records (see
// door.Config.Informational), since a box can loop on them for free.
// Commit, Push and Sign are not here: their records are the evidence of
// what a box did, always written.
func Informational() []string {
	return []string{
		keeperv1.KeeperService_GetPublicKey_FullMethodName,
		keeperv1.KeeperService_ListWrites_FullMethodName,
		keeperv1.KeeperService_GetStatus_FullMethodName,
	}
}
