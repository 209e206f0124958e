package dest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// DefaultConnectTimeout bounds one upstream connect when Dialer.Timeout is 0.
const DefaultConnectTimeout = 10 * time.Second

// Dialer resolves a target once, checks every address it got, and dials
// only addresses it checked: there is no second lookup between check and
// connect. It decides nothing about names; match the allowlist first.
type Dialer struct {
	// Resolver answers name lookups; nil means NewGoResolver().
	Resolver Resolver
	// Addrs decides which resolved addresses may be dialed.
	Addrs AddrPolicy
	// Timeout bounds each connect; 0 means DefaultConnectTimeout.
	Timeout time.Duration
	// Dial connects to an "ip:port" address; nil means a net.Dialer.
	// Tests use it to observe what is dialed.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Resolve returns the addresses t may be dialed at: the literal itself for
// an IP target, else every address the resolver gave. It fails when the
// lookup fails (ErrResolve), gives nothing (ErrNoAddress), or gives any
// address the policy refuses (ErrPrivateAddress), even next to public ones.
func (d *Dialer) Resolve(ctx context.Context, t Target) ([]netip.Addr, error) {
	if t.IsIP() {
		if err := d.Addrs.Check(t.Addr); err != nil {
			return nil, err
		}
		return []netip.Addr{t.Addr}, nil
	}
	r := d.Resolver
	if r == nil {
		r = NewGoResolver()
	}
	addrs, err := r.LookupNetIP(ctx, t.Host)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrResolve, t.Host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoAddress, t.Host)
	}
	for i, a := range addrs {
		addrs[i] = a.WithZone("")
		if a.Zone() != "" {
			return nil, fmt.Errorf("%w: %s resolved to zoned address %s", ErrPrivateAddress, t.Host, a)
		}
	}
	if err := d.Addrs.CheckAll(addrs); err != nil {
		return nil, fmt.Errorf("%s: %w", t.Host, err)
	}
	return addrs, nil
}

// DialTarget resolves and checks t, then connects to the checked addresses
// in order until one answers. It returns the address connected to.
// Connection failures wrap ErrUnreachable, timeouts ErrTimeout.
func (d *Dialer) DialTarget(ctx context.Context, network string, t Target) (net.Conn, netip.AddrPort, error) {
	addrs, err := d.Resolve(ctx, t)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return d.dialChecked(ctx, network, t, addrs)
}

func (d *Dialer) dialChecked(ctx context.Context, network string, t Target, addrs []netip.Addr) (net.Conn, netip.AddrPort, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	dial := d.Dial
	if dial == nil {
		nd := &net.Dialer{Control: d.control}
		dial = nd.DialContext
	}
	var errs []error
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), t.Port)
		cctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := dial(cctx, network, ap.String())
		cancel()
		if err == nil {
			return c, ap, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	err := errors.Join(errs...)
	if isTimeout(err) {
		return nil, netip.AddrPort{}, fmt.Errorf("%w: %s: %w", ErrTimeout, t, err)
	}
	return nil, netip.AddrPort{}, fmt.Errorf("%w: %s: %w", ErrUnreachable, t, err)
}

// control re-checks, at the socket level, that the address being connected
// to is one the policy admits: a last line against any path that would dial
// something unchecked.
func (d *Dialer) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: dial of unparsed address %q", ErrPrivateAddress, address)
	}
	return d.Addrs.Check(ap.Addr())
}

// DialContext dials "host:port" with the same checks as DialTarget; it has
// the signature of net.Dialer.DialContext, for http.Transport. It checks
// addresses only: match names against an allowlist before calling it.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	t, err := ParseHostPort(address)
	if err != nil {
		return nil, err
	}
	c, _, err := d.DialTarget(ctx, network, t)
	return c, err
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
