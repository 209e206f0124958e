package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/smokescreen/pkg/smokescreen"
	"github.com/stripe/smokescreen/pkg/smokescreen/conntrack"
	"github.com/stripe/smokescreen/pkg/smokescreen/metrics"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	"github.com/bounded-systems/claude-box/netd/internal/relay"
	"github.com/bounded-systems/claude-box/netd/internal/server"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// upstream is a loopback server with two behaviours, chosen by port:
// banner writes one byte on accept and then echoes; sink reads an 8-byte
// length, discards that many bytes and answers one byte.
type upstream struct {
	banner, sink net.Listener
}

func serveLoop(l net.Listener, h func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			h(c)
		}()
	}
}

func newUpstream(tb testing.TB) *upstream {
	tb.Helper()
	u := &upstream{}
	var err error
	if u.banner, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	if u.sink, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { u.banner.Close(); u.sink.Close() })
	go serveLoop(u.banner, func(c net.Conn) {
		if _, err := c.Write([]byte("!")); err != nil {
			return
		}
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				_, _ = c.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	})
	go serveLoop(u.sink, func(c net.Conn) {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint64(hdr[:]))
		buf := make([]byte, 256<<10)
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(struct{ io.Reader }{c}, n), buf); err != nil {
			return
		}
		_, _ = c.Write([]byte("K"))
	})
	return u
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// proxy is one way to reach the upstream: dial returns a connection on
// which bytes reach target ("host:port").
type proxy struct {
	name string
	dial func(target string) (net.Conn, error)
	// literal makes the target an IP literal (for peers that would resolve
	// "up.bench" through real DNS).
	literal bool
}

// target names the upstream port for p.
func (p proxy) target(port int) string {
	if p.literal {
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	return fmt.Sprintf("up.bench:%d", port)
}

// direct dials the upstream itself.
func direct() proxy {
	return proxy{name: "direct", dial: func(target string) (net.Conn, error) {
		_, p, _ := net.SplitHostPort(target)
		return net.Dial("tcp", "127.0.0.1:"+p)
	}}
}

// viaConnect dials an HTTP CONNECT proxy at addr.
func viaConnect(name, addr string) proxy {
	return proxy{name: name, dial: func(target string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
			c.Close()
			return nil, err
		}
		br := bufio.NewReaderSize(c, 512)
		line, err := br.ReadString('\n')
		if err != nil || !strings.Contains(line, " 200 ") {
			c.Close()
			return nil, fmt.Errorf("%s CONNECT: %q %v", name, line, err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				c.Close()
				return nil, err
			}
			if l == "\r\n" {
				break
			}
		}
		if br.Buffered() > 0 {
			return &bufConn{Conn: c, r: br}, nil
		}
		return c, nil
	}}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// staticResolver answers every name with 127.0.0.1 (smokescreen's resolver).
type staticResolver struct{}

func (staticResolver) LookupPort(ctx context.Context, network, service string) (int, error) {
	return net.DefaultResolver.LookupPort(ctx, network, service)
}

func (staticResolver) LookupIP(context.Context, string, string) ([]net.IP, error) {
	return []net.IP{net.IPv4(127, 0, 0, 1)}, nil
}

// startSmokescreen runs stripe/smokescreen in-process, with loopback
// allowed and no egress ACL (it decides less than netd does).
func startSmokescreen(tb testing.TB) string {
	tb.Helper()
	conf := smokescreen.NewConfig()
	conf.Log.SetOutput(io.Discard)
	if err := conf.SetAllowRanges([]string{"127.0.0.0/8"}); err != nil {
		tb.Fatal(err)
	}
	conf.Resolver = staticResolver{}
	conf.ConnectTimeout = 10 * time.Second
	conf.ExitTimeout = 10 * time.Second
	conf.AllowMissingRole = true
	conf.ConnTracker = conntrack.NewTracker(conf.IdleTimeout, metrics.NewNoOpMetricsClient(), conf.Log, atomic.Value{}, nil)
	srv := httptest.NewServer(smokescreen.BuildProxy(conf))
	tb.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// startTinyproxy runs tinyproxy (when installed) on a free loopback port
// and returns its address and pid; ok is false when it is not installed.
func startTinyproxy(tb testing.TB, maxClients int) (addr string, pid int, ok bool) {
	tb.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		return "", 0, false
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir := tb.TempDir()
	conf := filepath.Join(dir, "tinyproxy.conf")
	cfg := fmt.Sprintf("Port %s\nListen 127.0.0.1\nTimeout 600\nMaxClients %d\nAllow 127.0.0.1\nLogLevel Critical\n", port, maxClients)
	if os.Geteuid() == 0 {
		cfg += "User nobody\nGroup nogroup\n"
	}
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, cmd.Process.Pid, true
		}
		if time.Now().After(deadline) {
			tb.Fatalf("tinyproxy never listened on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNetd runs the whole net door in-process: relay on loopback TCP →
// unix-socket standing door → server → egress engine, with JSON audit
// logging (to io.Discard) as in production. Tunnels go as raw door
// connections (the relay's default on a unix door), or as gRPC streams when
// grpcOnly is set.
func startNetd(tb testing.TB, u *upstream, grpcOnly bool) string {
	tb.Helper()
	pol, err := egress.Compile(egress.Spec{
		Allow:        []string{fmt.Sprintf("up.bench:%d,up.bench:%d", port(u.banner), port(u.sink))},
		Resolve:      []string{"up.bench=127.0.0.1"},
		AllowPrivate: []string{"127.0.0.0/8"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := server.New(egress.NewEngine(pol, egress.Options{Resolver: &dest.Static{}}), log, server.Limits{})
	dir, err := os.MkdirTemp("/tmp", "netdb")
	if err != nil {
		tb.Fatal(err)
	}
	m, err := door.NewMinter(door.MinterConfig{Door: "net", Dir: filepath.Join(dir, "d"), Logger: log, Register: srv.Register, Raw: srv.Raw})
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "netd.sock")
	if err := m.Standing(path, door.Binding{}); err != nil {
		tb.Fatal(err)
	}
	cc, err := door.Dial(path, relay.DialOptions()...)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := relay.Listen("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw := path
		if grpcOnly {
			raw = ""
		}
		_ = relay.New(relay.Config{Door: netv1.NewEgressServiceClient(cc), RawDoor: raw, DoorName: path, Logger: log}).Serve(ctx, l)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
		cc.Close()
		sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer c2()
		m.Close(sctx)
		os.RemoveAll(dir)
	})
	return l.Addr().String()
}
