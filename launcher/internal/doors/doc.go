// Package doors is the launcher's side of the door daemons: it checks their
// control sockets, mints one launch-scoped door per grant, holds the lease
// for as long as the box lives and revokes every door when the launch ends.
// It also installs, starts, stops and reports on the daemons as user
// services (claude-box doors …).
package doors
