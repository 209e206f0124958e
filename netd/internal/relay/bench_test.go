package relay

import (
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/netd/internal/egress"
)

// BenchmarkRelayVsDirect measures, in one run, an echo round trip of 64 MiB
// through one tunnel and 200 sequential tunnel setups, through the relay
// and netd versus straight to the upstream, and reports netd's ratios. The
// comparison against stripe/smokescreen lives in the netd/bench module.
func BenchmarkRelayVsDirect(b *testing.B) {
	s := newStack(b, stackOpts{echo: true, spec: egress.Spec{Allow: []string{"echo.test"}, Resolve: []string{"echo.test=127.0.0.1"}, AllowPrivate: []string{"127.0.0.1/32"}}})
	up := s.up.l.Addr().String()
	viaNetd := func() (net.Conn, error) { return tunnel(s.relayAddr, "x") }
	direct := func() (net.Conn, error) {
		c, err := net.Dial("tcp", up)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(c, "x"); err != nil {
			c.Close()
			return nil, err
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		return c, err
	}
	const size = 64 << 20
	echo := func(dial func() (net.Conn, error)) float64 {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
		start := time.Now()
		go func() {
			buf := make([]byte, 256<<10)
			for left := size; left > 0; left -= len(buf) {
				if _, err := c.Write(buf[:min(left, len(buf))]); err != nil {
					return
				}
			}
		}()
		if _, err := io.CopyN(io.Discard, c, size); err != nil {
			b.Fatal(err)
		}
		return size / (1 << 20) / time.Since(start).Seconds()
	}
	setupP50 := func(dial func() (net.Conn, error)) time.Duration {
		ds := make([]time.Duration, 0, 200)
		for range 200 {
			start := time.Now()
			c, err := dial()
			if err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(start))
			c.Close()
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	var nT, dT float64
	var nS, dS time.Duration
	for i := 0; i < b.N; i++ {
		nT, dT = echo(viaNetd), echo(direct)
		nS, dS = setupP50(viaNetd), setupP50(direct)
	}
	b.ReportMetric(nT, "netd-echo-MiB/s")
	b.ReportMetric(nT/dT, "netd/direct-throughput")
	b.ReportMetric(float64(nS.Microseconds()), "netd-setup-p50-µs")
	b.ReportMetric(float64(nS)/float64(dS), "netd/direct-setup-p50")
}
