package door

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// maxSocketPath is the longest unix socket path the kernel accepts (sun_path
// minus its terminating NUL): 107 on Linux, 103 on the BSDs and macOS.
func maxSocketPath() int {
	if runtime.GOOS == "linux" {
		return 107
	}
	return 103
}

// ErrSocketInUse reports a socket path that another live server answers on.
var ErrSocketInUse = errors.New("socket is in use by a live server")

// Listen listens on a unix socket at path. The parent directory is created
// 0700 (an existing one must not be group- or world-writable), the socket is
// 0600, a socket that still answers is never taken over, a stale one is
// removed, and the file is removed again when the listener closes.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("listen: empty socket path")
	}
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", path, err)
		}
		path = abs
	}
	if len(path) > maxSocketPath() {
		return nil, fmt.Errorf("listen %s: path is %d bytes, longer than the %d a unix socket allows", path, len(path), maxSocketPath())
	}
	if err := ensurePrivateDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	// Create the socket with no access for anyone but its owner from the first
	// instant: the umask applies to bind(2).
	l, err := listenUnixPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(true)
	return &unixListener{UnixListener: ul, path: path}, nil
}

// umaskMu serializes the umask dance of listenUnixPrivate: umask is process-wide.
var umaskMu sync.Mutex

func listenUnixPrivate(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}

// unixListener removes its socket file on Close even when the listener was
// already closed by a server.
type unixListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { _ = os.Remove(l.path) })
	return err
}

// ensurePrivateDir creates dir 0700 when missing and refuses an existing
// directory that others may write to, or that another user owns (its owner
// could swap a socket for a link between bind and the chmod or chown that
// follows, and have the daemon change a file of its choosing).
func ensurePrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create socket dir: %w", err)
		}
		return os.Chmod(dir, 0o700)
	case err != nil:
		return fmt.Errorf("socket dir: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("socket dir %s is not a directory", dir)
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
		return fmt.Errorf("socket dir %s is writable by others (mode %04o): refusing", dir, fi.Mode().Perm())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("socket dir %s: owner unknown: refusing", dir)
	}
	if uid := int(st.Uid); uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("socket dir %s is owned by uid %d, not this daemon's uid %d: refusing", dir, uid, os.Geteuid())
	}
	return nil
}

// removeStale removes a socket file nobody answers on; it refuses to touch a
// live socket or a path that is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: refusing to replace it", path)
	}
	if Answers(path) {
		return ErrSocketInUse
	}
	return os.Remove(path)
}

// Answers reports whether something accepts connections on the unix socket path.
func Answers(path string) bool {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// ListenTCP listens on a loopback TCP address such as "127.0.0.1:0". Wildcard
// and non-loopback addresses are refused: a door on TCP is reachable by
// anything that can reach the address, so it must at least stay on this host.
func ListenTCP(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen tcp %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("listen tcp %q: only a loopback IP address is allowed", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen tcp %q: %w", addr, err)
	}
	return l, nil
}
