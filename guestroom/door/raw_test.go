package door

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// echoRaw answers a raw line with what the door was bound to and who called,
// then echoes bytes until the client or the door closes.
func echoRaw(log func() *auditLog) RawHandler {
	return func(ctx context.Context, line string, c net.Conn) {
		defer func() { _ = c.Close() }()
		b, _ := BindingFrom(ctx)
		p, _ := PeerFrom(ctx)
		if log != nil {
			Audit(ctx, log().logger(), Record{Target: line, Allow: true, Reason: "ok"})
		}
		fmt.Fprintf(c, "%s %s/%s uid=%d\n", line, b.Account, b.LaunchID, p.UID)
		go func() { <-ctx.Done(); _ = c.Close() }()
		buf := make([]byte, 1024)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

func rawDial(t *testing.T, path, line string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	got, err := br.ReadString('\n')
	if err != nil {
		return c, br, ""
	}
	return c, br, strings.TrimSpace(got)
}

func TestRawAndGRPCShareADoor(t *testing.T) {
	al := &auditLog{}
	log := al.logger()
	dir := filepath.Join(shortDir(t), "launch")
	m, err := NewMinter(MinterConfig{
		Door: "test", Dir: dir, Logger: log,
		Register: func(s *grpc.Server) { netv1.RegisterEgressServiceServer(s, echoGuest{log: log}) },
		Raw:      echoRaw(func() *auditLog { return al }),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	got, err := m.Mint(context.Background(), MintRequest{LaunchID: "R", Account: "acct", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	// A short raw line is answered at once (it does not wait for 24 bytes).
	c, br, answer := rawDial(t, got.SocketPath, "HI")
	if want := fmt.Sprintf("HI acct/R uid=%d", ownUID()); answer != want {
		t.Fatalf("raw answer %q, want %q", answer, want)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if echo, _ := br.ReadString('\n'); echo != "ping\n" {
		t.Fatalf("echo %q", echo)
	}
	if _, ok := any(&sniffedConn{Conn: c}).(interface{ CloseWrite() error }); !ok {
		t.Fatal("raw connections cannot half-close")
	}
	// gRPC still works on the same socket.
	f := &fixture{audit: al}
	resp, err := f.check(t, got.SocketPath, "x")
	if err != nil || resp.GetVerdict().GetMessage() != "acct/R" {
		t.Fatalf("grpc on a raw-enabled door: %v %v", resp, err)
	}
	// Revocation cuts an open raw connection.
	m.Revoke(got.DoorID)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("raw connection survived revocation")
	}
	var raw int
	for _, r := range al.records(t) {
		if r[KeyMethod] == RawMethod {
			raw++
			if r[KeyAccount] != "acct" || r[KeyLaunch] != "R" || r[KeyTarget] != "HI" {
				t.Errorf("raw audit record = %v", r)
			}
		}
	}
	if raw != 1 {
		t.Fatalf("raw audit records = %d, want 1", raw)
	}
}

func TestRawRefusedOnTCPDoor(t *testing.T) {
	f := newFixture(t, nil)
	f.m.cfg.Raw = echoRaw(nil)
	resp, err := f.ctl.MintDoor(context.Background(), &doorv1.MintDoorRequest{LaunchId: "T", Account: "a", Transport: doorv1.Transport_TRANSPORT_TCP})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", resp.GetAddress(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "HI\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Fatalf("raw on a TCP door answered %q", line)
	}
	recs := f.audit.records(t)
	last := recs[len(recs)-1]
	if last[KeyMethod] != RawMethod || last[KeyAllow] != false || last[KeyReason] != "unauthorized" {
		t.Fatalf("want a raw denial record, got %v", last)
	}
}

func TestRawWithoutHandlerIsNotServed(t *testing.T) {
	f := newFixture(t, nil)
	resp, err := f.ctl.MintDoor(context.Background(), &doorv1.MintDoorRequest{LaunchId: "N", Account: "a", PeerUid: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("unix", resp.GetSocketPath(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	fmt.Fprintf(c, "HI\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Fatalf("a door without a raw handler answered %q", line)
	}
}

// TestRevocationCutsRawConnections: revoking a door closes its raw
// connections in the runtime, whether or not the handler watches its
// context, and a connection still saying what it is when the door is
// revoked is never served.
func TestRevocationCutsRawConnections(t *testing.T) {
	al := &auditLog{}
	served := make(chan string, 4)
	// A handler that ignores its context: it reads until the connection
	// ends.
	naive := func(_ context.Context, line string, c net.Conn) {
		defer func() { _ = c.Close() }()
		served <- line
		fmt.Fprintf(c, "ok\n")
		_, _ = io.Copy(io.Discard, c)
	}
	m, err := NewMinter(MinterConfig{Door: "test", Dir: filepath.Join(shortDir(t), "launch"), Logger: al.logger(), Raw: naive})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	got, err := m.Mint(context.Background(), MintRequest{LaunchID: "R", Account: "acct", PeerUID: -1})
	if err != nil {
		t.Fatal(err)
	}
	open, br, answer := rawDial(t, got.SocketPath, "OPEN")
	if answer != "ok" {
		t.Fatalf("raw answer %q", answer)
	}
	<-served
	// A connection that has not finished its first line yet.
	pending, err := net.DialTimeout("unix", got.SocketPath, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pending.Close() }()
	if _, err := pending.Write([]byte("LA")); err != nil {
		t.Fatal(err)
	}
	// Let the server accept it and start sniffing.
	waitFor(t, "the pending connection to be sniffed", func() bool { return m.sniffing(got.DoorID) == 1 })

	m.Revoke(got.DoorID)
	_ = open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("raw connection survived revocation: %v", err)
	}
	_, _ = pending.Write([]byte("TE\n"))
	_ = pending.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(pending).ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection sniffed across revocation: %q %v", line, err)
	}
	select {
	case line := <-served:
		t.Fatalf("raw handler served %q after revocation", line)
	case <-time.After(100 * time.Millisecond):
	}
}

// sniffing is how many connections of door id are still being told apart.
func (m *Minter) sniffing(id string) int {
	m.mu.Lock()
	d, ok := m.doors[id]
	m.mu.Unlock()
	if !ok {
		return -1
	}
	d.srv.mu.Lock()
	mux := d.srv.mux
	d.srv.mu.Unlock()
	if mux == nil {
		return -1
	}
	return int(mux.sniffs.Load())
}
