//go:build !linux && !darwin

package doors

import (
	"errors"
	"syscall"
)

// procExe cannot name a process's executable on this platform, so a
// detached daemon is never signalled on the word of its pid file alone.
func procExe(pid int) (string, error) {
	return "", errUnverifiable(pid, errors.ErrUnsupported)
}

// signalChecked sends sig to pid only if check accepts the process.
func signalChecked(pid int, sig syscall.Signal, check func() error) error {
	if err := check(); err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}
