package doors

import (
	"bytes"
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// procExe is the executable path pid was exec'd with: kern.procargs2
// (argc, then the path, NUL-terminated).
func procExe(pid int) (string, error) {
	b, err := unix.SysctlRaw("kern.procargs2", pid)
	if err != nil {
		switch kerr := syscall.Kill(pid, 0); {
		case errors.Is(kerr, syscall.ESRCH):
			return "", errGone
		case errors.Is(kerr, syscall.EPERM):
			// Another user's process; a daemon we started runs as us.
			return "", &notDaemonError{}
		}
		return "", errUnverifiable(pid, err)
	}
	if len(b) < 5 {
		return "", &notDaemonError{}
	}
	path, _, _ := bytes.Cut(b[4:], []byte{0})
	return string(path), nil
}

// signalChecked sends sig to pid only if check accepts the process.
func signalChecked(pid int, sig syscall.Signal, check func() error) error {
	if err := check(); err != nil {
		return err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return errGone
		}
		return err
	}
	return nil
}
