package doors

import (
	"errors"
	"fmt"
	"strings"
)

// errGone reports a pid no process holds any more.
var errGone = errors.New("no such process")

// notDaemonError reports a live pid that another program holds.
type notDaemonError struct {
	// Exe is the program the pid runs, or "" when the kernel names none
	// (a kernel thread, a zombie, or a process of another user).
	Exe string
}

func (e *notDaemonError) Error() string {
	if e.Exe == "" {
		return "it runs no program the launcher can see"
	}
	return "it runs " + e.Exe
}

// checkDaemon returns nil when pid runs exe, the program recorded when the
// daemon was started; errGone when the pid is free; a *notDaemonError when
// something else holds it.
func checkDaemon(pid int, exe string) error {
	got, err := procExe(pid)
	if err != nil {
		return err
	}
	// A binary replaced on disk while it runs (an upgrade) is still ours.
	if strings.TrimSuffix(got, " (deleted)") != exe {
		return &notDaemonError{Exe: got}
	}
	return nil
}

// errUnverifiable wraps a pid that could not be checked.
func errUnverifiable(pid int, err error) error {
	return fmt.Errorf("cannot read what pid %d runs: %w", pid, err)
}
