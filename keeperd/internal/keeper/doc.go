// Package keeper is the domain of the git-write door: it makes signed commits
// host-side in a repository the box can only read the .git of, and pushes
// only what policy allows, with a key the box never sees.
//
// It knows nothing of protos or the door runtime: the gRPC adapter in
// internal/server converts requests into calls on a Keeper.
package keeper
