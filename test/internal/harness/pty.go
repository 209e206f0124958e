package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal pair opened from /dev/ptmx: the test holds the
// master (it types into it and reads the screen from it), a child process
// gets the slave as its terminal.
type PTY struct {
	Master *os.File
	Slave  *os.File
	// Name is the slave's path, /dev/pts/N.
	Name string
}

// OpenPTY opens a new pseudo-terminal with the kernel's default termios
// (canonical mode, echo on). Neither end becomes the caller's controlling
// terminal.
func OpenPTY() (*PTY, error) {
	// Non-blocking so reads go through Go's poller and Close interrupts them.
	mfd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	master := os.NewFile(uintptr(mfd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, fmt.Errorf("unlock pty (TIOCSPTLCK): %w", err)
	}
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("pty number (TIOCGPTN): %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	// Blocking: the child inherits the file description as its stdio.
	sfd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return &PTY{Master: master, Slave: os.NewFile(uintptr(sfd), name), Name: name}, nil
}

// SetSize sets the terminal's window size. The kernel sends SIGWINCH to the
// terminal's foreground process group when the size changes.
func (p *PTY) SetSize(rows, cols uint16) error {
	ws := &unix.Winsize{Row: rows, Col: cols}
	if err := unix.IoctlSetWinsize(int(p.Master.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return fmt.Errorf("set size of %s (TIOCSWINSZ): %w", p.Name, err)
	}
	return nil
}

// Size returns the terminal's window size (rows, cols).
func (p *PTY) Size() (rows, cols uint16, err error) {
	ws, err := unix.IoctlGetWinsize(int(p.Slave.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0, fmt.Errorf("size of %s (TIOCGWINSZ): %w", p.Name, err)
	}
	return ws.Row, ws.Col, nil
}

// Termios returns the terminal's current settings, as whatever process
// holds the slave set them.
func (p *PTY) Termios() (*unix.Termios, error) {
	tio, err := unix.IoctlGetTermios(int(p.Slave.Fd()), unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("termios of %s (TCGETS): %w", p.Name, err)
	}
	return tio, nil
}

// Close closes both ends.
func (p *PTY) Close() error {
	return errors.Join(p.Slave.Close(), p.Master.Close())
}

// Screen records everything a terminal's master end reads: what the
// processes on the slave wrote, and the line discipline's echo.
type Screen struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

// Record copies r into a new Screen until r fails (EIO once every slave
// holder is gone, or the master is closed).
func Record(r io.Reader) *Screen {
	s := &Screen{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			s.mu.Lock()
			s.buf.Write(b[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

// String is the text so far, with the terminal's carriage returns dropped.
func (s *Screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.ReplaceAll(s.buf.String(), "\r", "")
}

// WaitFor polls until the text contains want, and reports whether it did
// within timeout.
func (s *Screen) WaitFor(want string, timeout time.Duration) bool {
	return WaitFor(timeout, func() bool { return strings.Contains(s.String(), want) })
}

// Done is closed when recording stopped.
func (s *Screen) Done() <-chan struct{} { return s.done }
