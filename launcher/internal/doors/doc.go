// Package doors is the launcher's side of the door daemons: it checks their
// control sockets, mints one launch-scoped door per grant, refuses to mount
// a minted socket that is not a unix socket of the daemon's own (a symlink,
// a file, a directory, a control socket or anything beside one), holds the
// lease for as long as the box lives and revokes every door when the launch
// ends.
// It also installs, starts, stops and reports on the daemons as user
// services (claude-box doors …).
package doors
