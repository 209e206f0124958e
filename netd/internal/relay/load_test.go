package relay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/netd/internal/egress"
)

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("open fd count needs /proc/self/fd: %v", err)
	}
	return len(ents)
}

// settle waits until goroutines and fds are back to (near) their baseline.
func settle(t *testing.T, what string, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// Raw tunnels splice between the client and the door through pooled
		// pipes, which only the GC closes: collect so that they count as
		// released once the pool lets them go.
		runtime.GC()
		g, f := runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines+5 && f <= fds+5 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%s: goroutines %d (baseline %d), fds %d (baseline %d)\n%s", what, g, goroutines, f, fds, buf[:n])
		}
		if os.Getenv("NETD_LOAD_DEBUG") != "" {
			t.Logf("%s: goroutines %d fds %d", what, g, f)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tunnel opens one CONNECT tunnel to the echo upstream and proves a byte
// round trip through it.
func tunnel(addr, msg string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "CONNECT echo.test:443 HTTP/1.1\r\nHost: echo.test:443\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
		c.Close()
		return nil, fmt.Errorf("status %q: %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := io.WriteString(c, msg); err != nil {
		c.Close()
		return nil, err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
		c.Close()
		return nil, fmt.Errorf("echo %q: %v", got, err)
	}
	return c, nil
}

// TestLoad holds 1000 tunnels open at once, then runs 10,000 sequential
// connections, and checks that goroutines and fds return to baseline
// after each phase.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped under -short")
	}
	s := newStack(t, stackOpts{echo: true, spec: egress.Spec{Allow: []string{"echo.test"}, Resolve: []string{"echo.test=127.0.0.1"}, AllowPrivate: []string{"127.0.0.1/32"}}})
	// Warm the door connection, then take the baseline.
	c, err := tunnel(s.relayAddr, "warm")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	settle(t, "warm-up", runtime.NumGoroutine(), openFDs(t))
	baseG, baseF := runtime.NumGoroutine(), openFDs(t)

	// Under the race detector every round trip is ~10x slower: run a reduced
	// load there (the detector still sees hundreds of concurrent tunnels) and
	// the full one without it. NETD_LOAD_FULL=1 forces the full load.
	concurrent, sequential := 1000, 10000
	if raceEnabled && os.Getenv("NETD_LOAD_FULL") == "" {
		concurrent, sequential = 200, 200
	}
	phase := time.Now()
	conns := make([]net.Conn, concurrent)
	errs := make(chan error, concurrent)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // bound the dial burst, not the open tunnels
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := tunnel(s.relayAddr, fmt.Sprintf("hello %d", i))
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent tunnel: %v", err)
	}
	if open := s.srv.Counters()["tunnels_open"]; open != int64(concurrent) {
		t.Fatalf("netd reports %d open tunnels, want %d", open, concurrent)
	}
	t.Logf("%d concurrent tunnels open in %v", concurrent, time.Since(phase))
	phase = time.Now()
	for _, c := range conns {
		c.Close()
	}
	settle(t, "after concurrent tunnels", baseG, baseF)
	t.Logf("back to baseline in %v", time.Since(phase))

	start := time.Now()
	for i := range sequential {
		c, err := tunnel(s.relayAddr, "x")
		if err != nil {
			t.Fatalf("sequential connection %d: %v", i, err)
		}
		c.Close()
	}
	t.Logf("%d sequential tunnels in %v", sequential, time.Since(start))
	settle(t, "after sequential connections", baseG, baseF)
}
