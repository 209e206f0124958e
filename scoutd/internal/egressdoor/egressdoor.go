// Package egressdoor dials through a netd door: each connection is one
// net/v1 EgressService.Tunnel stream opened with VERB_CONNECT, adapted to a
// net.Conn. scoutd uses it for --egress-door, so that its own traffic obeys
// netd's policy (allowlist and address checks) instead of dialing itself.
package egressdoor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// Dialer opens tunnels through a netd door.
type Dialer struct {
	api  netv1.EgressServiceClient
	door string
}

// New returns a Dialer over cc, a connection to the netd door at path door
// (named in errors).
func New(cc grpc.ClientConnInterface, door string) *Dialer {
	return &Dialer{api: netv1.NewEgressServiceClient(cc), door: door}
}

// ErrRefused marks a target netd refused: scoutd's own policy allowed it,
// netd's did not. It is matched with errors.Is beside the dest sentinel
// the reason maps to, and adds nothing to the message.
var ErrRefused = errors.New("refused by netd through the egress door")

// ErrDoorDown marks an egress door that does not answer.
var ErrDoorDown = errors.New("egress door does not answer")

// marked wraps err so errors.Is also matches mark, keeping err's message.
type marked struct{ err, mark error }

func (m marked) Error() string   { return m.err.Error() }
func (m marked) Unwrap() []error { return []error{m.err, m.mark} }

// verdictErr maps netd's reasons onto the dest sentinels, so a refusal by
// netd reads exactly like one by scoutd.
func verdictErr(v *netv1.Verdict, target string) error {
	var base error
	switch v.GetReason() {
	case dest.ReasonBadTarget:
		base = dest.ErrBadTarget
	case dest.ReasonIPLiteral:
		base = dest.ErrIPLiteral
	case dest.ReasonNotAllowlisted:
		base = dest.ErrNotAllowlisted
	case dest.ReasonPortNotAllowed:
		base = dest.ErrPortNotAllowed
	case dest.ReasonPrivateAddress:
		base = dest.ErrPrivateAddress
	case dest.ReasonResolve:
		base = dest.ErrResolve
	case dest.ReasonNoAddress:
		base = dest.ErrNoAddress
	case dest.ReasonTimeout:
		base = dest.ErrTimeout
	}
	if base == nil {
		switch v.GetDecision() {
		case netv1.Decision_DECISION_DENY:
			base = dest.ErrNotAllowlisted
		case netv1.Decision_DECISION_BAD_TARGET:
			base = dest.ErrBadTarget
		case netv1.Decision_DECISION_TIMEOUT:
			base = dest.ErrTimeout
		default:
			base = dest.ErrUnreachable
		}
	}
	return marked{fmt.Errorf("%w: netd refused %s: %s (%s)", base, target, v.GetReason(), v.GetMessage()), ErrRefused}
}

// DialContext opens a tunnel to address ("host:port"). ctx bounds the
// dial only; the connection lives until Close.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, fmt.Errorf("egress door: network %q not supported", network)
	}
	sctx, cancel := context.WithCancel(context.Background())
	st, err := d.api.Tunnel(sctx)
	if err != nil {
		cancel()
		return nil, marked{fmt.Errorf("%w: egress door %s: %w", dest.ErrUnreachable, d.door, err), ErrDoorDown}
	}
	type verdict struct {
		v   *netv1.Verdict
		err error
	}
	ch := make(chan verdict, 1)
	go func() {
		if err := st.Send(&netv1.TunnelRequest{Open: &netv1.Open{Target: address, Verb: netv1.Verb_VERB_CONNECT}}); err != nil {
			ch <- verdict{err: err}
			return
		}
		m, err := st.Recv()
		if err != nil {
			ch <- verdict{err: err}
			return
		}
		ch <- verdict{v: m.GetVerdict()}
	}()
	var v verdict
	select {
	case v = <-ch:
	case <-ctx.Done():
		cancel()
		return nil, fmt.Errorf("%w: egress door: %w", dest.ErrTimeout, ctx.Err())
	}
	if v.err != nil {
		cancel()
		return nil, marked{fmt.Errorf("%w: egress door %s: %w", dest.ErrUnreachable, d.door, v.err), ErrDoorDown}
	}
	if v.v == nil {
		cancel()
		return nil, fmt.Errorf("%w: egress door sent no verdict", dest.ErrUnreachable)
	}
	if v.v.GetDecision() != netv1.Decision_DECISION_ALLOW {
		cancel()
		return nil, verdictErr(v.v, address)
	}
	c := &conn{st: st, cancel: cancel, target: address, data: make(chan []byte, 16), closed: make(chan struct{})}
	c.readDeadline.init()
	c.writeDeadline.init()
	go c.pump()
	return c, nil
}

// conn adapts a Tunnel stream to net.Conn.
type conn struct {
	st     grpc.BidiStreamingClient[netv1.TunnelRequest, netv1.TunnelResponse]
	cancel context.CancelFunc
	target string

	data    chan []byte // from the pump; closed at EOF or error
	rerr    error       // set before data is closed
	pending []byte

	wmu       sync.Mutex
	closeOnce sync.Once
	closed    chan struct{}
	cut       atomic.Bool // a write deadline ended the stream

	readDeadline, writeDeadline deadline
}

func (c *conn) pump() {
	defer close(c.data)
	for {
		m, err := c.st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				c.rerr = io.EOF
			} else {
				c.rerr = err
			}
			return
		}
		if b := m.GetData(); len(b) > 0 {
			select {
			case c.data <- b:
			case <-c.closed:
				c.rerr = net.ErrClosed
				return
			}
		}
	}
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		select {
		case b, ok := <-c.data:
			if !ok {
				return 0, c.rerr
			}
			c.pending = b
		case <-c.closed:
			return 0, net.ErrClosed
		case <-c.readDeadline.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	dl := c.writeDeadline.wait()
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	case <-dl:
		return 0, os.ErrDeadlineExceeded
	default:
	}
	if c.cut.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	// Send blocks on flow control when netd, or the upstream behind it,
	// stops reading, and returns only when the stream ends: a write
	// deadline that fires meanwhile ends the stream (a tunnel whose write
	// was cut midway cannot be resumed). Close ends it too.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-dl:
			c.cut.Store(true)
			c.cancel()
		case <-done:
		}
	}()
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		if err := c.st.Send(&netv1.TunnelRequest{Data: append([]byte(nil), p[:k]...)}); err != nil {
			return n, c.writeErr(err)
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// writeErr names why a Send failed when the conn ended it itself.
func (c *conn) writeErr(err error) error {
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	if c.cut.Load() {
		return os.ErrDeadlineExceeded
	}
	return err
}

// CloseWrite half-closes the client-to-upstream direction.
func (c *conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.st.Send(&netv1.TunnelRequest{CloseWrite: true})
}

// Close ends the stream. It cancels first: a Write blocked in Send (netd
// not reading) holds wmu until the stream ends, so taking wmu first would
// wait for it forever.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.cancel()
		c.wmu.Lock()
		_ = c.st.CloseSend()
		c.wmu.Unlock()
	})
	return nil
}

type addr string

func (a addr) Network() string { return "netd-tunnel" }
func (a addr) String() string  { return string(a) }

func (c *conn) LocalAddr() net.Addr  { return addr("scoutd") }
func (c *conn) RemoteAddr() net.Addr { return addr(c.target) }

func (c *conn) SetDeadline(t time.Time) error {
	c.readDeadline.set(t)
	c.writeDeadline.set(t)
	return nil
}
func (c *conn) SetReadDeadline(t time.Time) error  { c.readDeadline.set(t); return nil }
func (c *conn) SetWriteDeadline(t time.Time) error { c.writeDeadline.set(t); return nil }

// deadline is a resettable timer whose wait channel closes when it fires.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{}
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		// Too late to stop: wait for the callback to close ch, so that it
		// neither closes it twice nor expires the deadline set below.
		<-d.ch
	}
	d.timer = nil
	select {
	case <-d.ch:
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	if dur := time.Until(t); dur <= 0 {
		close(d.ch)
		return
	}
	ch := d.ch
	d.timer = time.AfterFunc(time.Until(t), func() { close(ch) })
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}
