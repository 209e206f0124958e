package doors

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// procExe is the executable the kernel ran for pid: /proc/PID/exe.
func procExe(pid int) (string, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	exe, err := os.Readlink(dir + "/exe")
	switch {
	case err == nil:
		return exe, nil
	case errors.Is(err, fs.ErrPermission):
		// Only another user's process hides its executable from us, and a
		// daemon we started runs as us.
		return "", &notDaemonError{}
	case errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			return "", errGone
		}
		return "", &notDaemonError{} // a kernel thread or a zombie
	}
	return "", errUnverifiable(pid, err)
}

// signalChecked sends sig to pid only if check accepts the process. A
// pidfd taken before the check pins the process, so a pid reused between
// the check and the signal is never signalled; without pidfds (Linux
// before 5.3) the check is followed by kill(2).
func signalChecked(pid int, sig syscall.Signal, check func() error) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return errGone
	}
	if err != nil {
		if err := check(); err != nil {
			return err
		}
		return kill(pid, sig)
	}
	defer unix.Close(fd)
	if err := check(); err != nil {
		return err
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errGone
		}
		return err
	}
	return nil
}

func kill(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return errGone
		}
		return err
	}
	return nil
}
