package door

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// RawMethod is the method name raw connections are authorized and audited
// under.
const RawMethod = "raw"

// RawHandler serves a raw (non-gRPC) connection on a door: one whose first
// bytes are not the HTTP/2 preface. line is its first line without the
// newline; conn continues right after it. ctx carries the door's binding and
// the kernel-reported peer, as for gRPC calls, and is cancelled when the door
// is revoked or its server stops. The handler owns conn and must close it.
//
// Raw connections exist for bulk byte streams (netd's tunnels), where gRPC's
// framing and flow control cost more than the bytes themselves. They are
// authorized by the server's authorizer under RawMethod, so on a TCP door,
// whose authority travels in gRPC metadata, they are refused.
type RawHandler func(ctx context.Context, line string, conn net.Conn)

// http2Preface is how every gRPC connection starts.
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// maxRawLine bounds a raw connection's first line.
const maxRawLine = 4096

// rawDeadline bounds how long a connection may take to say what it is.
const rawDeadline = 10 * time.Second

// sniffedConn is a connection whose first bytes were read to tell gRPC from
// raw; reads start again from the beginning.
type sniffedConn struct {
	net.Conn
	r    io.Reader
	peer Peer
}

func (c *sniffedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection when the underlying one can (unix
// and TCP connections can), so a raw handler can signal end of stream.
func (c *sniffedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("connection cannot half-close")
}

// muxListener hands gRPC connections to the gRPC server and raw ones to a
// RawHandler. Closing it (the server stopping, the door revoked) closes
// every connection it has not handed to gRPC: those being sniffed and
// those a raw handler serves, whether or not the handler watches its
// context.
type muxListener struct {
	net.Listener
	s     *Server
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	// sniffs counts the connections still being told apart; slot holds
	// one token for each, so that no more than its capacity are: the next
	// one waits in the kernel's backlog until one is told apart or gives up.
	sniffs atomic.Int32
	slot   chan struct{}
	mu     sync.Mutex
	err    error
	// open holds the connections being sniffed or served raw; nil once
	// closed.
	open map[net.Conn]struct{}
}

func newMuxListener(l net.Listener, s *Server, maxSniffs int) *muxListener {
	ctx, stop := context.WithCancel(context.Background())
	m := &muxListener{Listener: l, s: s, conns: make(chan net.Conn), done: make(chan struct{}), ctx: ctx, stop: stop,
		slot: make(chan struct{}, maxSniffs), open: map[net.Conn]struct{}{}}
	go m.loop()
	return m
}

// track records c as the mux's to close; false (and c closed) once the mux
// is closed.
func (m *muxListener) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open == nil {
		_ = c.Close()
		return false
	}
	m.open[c] = struct{}{}
	return true
}

// untrack forgets c: it was handed to gRPC or its handler returned.
func (m *muxListener) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.open, c)
}

func (m *muxListener) loop() {
	for {
		select {
		case m.slot <- struct{}{}:
		case <-m.done:
			return
		}
		c, err := m.Listener.Accept()
		if err != nil {
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			_ = m.Close()
			return
		}
		if !m.track(c) {
			<-m.slot
			continue
		}
		m.wg.Add(1)
		m.sniffs.Add(1)
		go func() {
			defer m.wg.Done()
			defer m.untrack(c)
			m.sniff(c)
		}()
	}
}

// sniffed gives back the slot of a connection told apart (or closed).
func (m *muxListener) sniffed() {
	m.sniffs.Add(-1)
	<-m.slot
}

func (m *muxListener) sniff(c net.Conn) {
	sniffing := true
	defer func() {
		if sniffing {
			m.sniffed()
		}
	}()
	var p Peer
	if uc, ok := c.(*net.UnixConn); ok {
		got, ok := unixPeer(uc)
		if !ok {
			_ = c.Close()
			return
		}
		p = got
	} else {
		p = Peer{UID: -1, GID: -1, PID: -1, Addr: c.RemoteAddr().String()}
	}
	_ = c.SetReadDeadline(time.Now().Add(rawDeadline))
	br := bufio.NewReaderSize(c, maxRawLine)
	// Read only as far as the bytes still agree with the HTTP/2 preface: a
	// raw line shorter than the preface must not wait for more bytes.
	for n := 1; ; n++ {
		head, err := br.Peek(n)
		if err != nil {
			_ = c.Close()
			return
		}
		if !bytes.HasPrefix(http2Preface, head) {
			break
		}
		if n == len(http2Preface) {
			_ = c.SetReadDeadline(time.Time{})
			// gRPC owns it from here, and its Stop closes it.
			m.untrack(c)
			select {
			case m.conns <- &sniffedConn{Conn: c, r: br, peer: p}:
			case <-m.done:
				_ = c.Close()
			}
			return
		}
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	m.sniffed()
	sniffing = false
	// A connection that finished its line after the door closed is not
	// served: closing the mux closed it, but its line may have been read
	// already.
	if m.ctx.Err() != nil {
		_ = c.Close()
		return
	}
	m.s.serveRaw(m.ctx, p, string(bytes.TrimRight(line, "\r\n")), &sniffedConn{Conn: c, r: br, peer: p})
}

func (m *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.err != nil {
			return nil, m.err
		}
		return nil, net.ErrClosed
	}
}

func (m *muxListener) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		m.stop()
		err = m.Listener.Close()
		m.mu.Lock()
		open := m.open
		m.open = nil
		m.mu.Unlock()
		for c := range open {
			_ = c.Close()
		}
	})
	return err
}

// serveRaw authorizes and runs the raw handler for one connection.
func (s *Server) serveRaw(ctx context.Context, p Peer, line string, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx = withPeer(ctx, p)
	ctx, cs := s.begin(ctx, RawMethod)
	if err := s.authorize(ctx, RawMethod); err != nil {
		_ = s.deny(ctx, RawMethod, err)
		_ = c.Close()
		return
	}
	defer func() {
		if r := recover(); r != nil {
			_ = s.recovered(RawMethod, r)
			_ = c.Close()
		}
		if !cs.audited.Load() {
			// Charged to the unaudited budget, as in finish.
			audit(ctx, s.log, Record{Method: RawMethod, Allow: true, Reason: "served"}, true)
		}
	}()
	s.cfg.Raw(ctx, line, c)
}
