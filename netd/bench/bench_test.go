package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// benchBytes is the bulk transfer size: 1 GiB, or NETD_BENCH_BYTES.
func benchBytes() int64 {
	if s := os.Getenv("NETD_BENCH_BYTES"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 1 << 30
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// throughput pushes n bytes through one tunnel to the sink and returns the
// rate in MiB/s.
func throughput(tb testing.TB, p proxy, target string, n int64) float64 {
	tb.Helper()
	c, err := p.dial(target)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(n))
	if _, err := c.Write(hdr[:]); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			tb.Fatalf("%s: write: %v", p.name, err)
		}
		left -= k
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		tb.Fatalf("%s: ack: %v", p.name, err)
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds()
}

// setup measures CONNECT (or dial) to the first upstream byte, k times in
// sequence, and returns p50 and p99 in microseconds.
func setup(tb testing.TB, p proxy, target string, k int) (p50, p99 float64) {
	tb.Helper()
	ds := make([]time.Duration, 0, k)
	one := make([]byte, 1)
	for range k {
		start := time.Now()
		c, err := p.dial(target)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(c, one); err != nil {
			tb.Fatalf("%s: first byte: %v", p.name, err)
		}
		ds = append(ds, time.Since(start))
		c.Close()
	}
	slices.Sort(ds)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return us(ds[len(ds)/2]), us(ds[len(ds)*99/100])
}

// BenchmarkCompare measures, in one run and on loopback, netd (relay → door
// → netd), stripe/smokescreen in-process, and a direct connection: bulk
// throughput through one tunnel and connection setup latency (CONNECT to
// first upstream byte), and reports netd's ratios to both. Run with
// -benchtime 1x; NETD_BENCH_BYTES and NETD_BENCH_SETUPS scale it down.
func BenchmarkCompare(b *testing.B) {
	u := newUpstream(b)
	netdAddr := startNetd(b, u, false)
	grpcAddr := startNetd(b, u, true)
	smokeAddr := startSmokescreen(b)
	proxies := []proxy{direct(), viaConnect("netd", netdAddr), viaConnect("netd-grpc", grpcAddr), viaConnect("smokescreen", smokeAddr)}
	if addr, _, ok := startTinyproxy(b, 200); ok {
		tp := viaConnect("tinyproxy", addr)
		tp.literal = true
		proxies = append(proxies, tp)
	} else {
		b.Log("tinyproxy is not installed: no tinyproxy peer in this run")
	}
	n := benchBytes()
	k := envInt("NETD_BENCH_SETUPS", 2000)
	type result struct{ mibs, p50, p99 float64 }
	res := map[string]result{}
	for i := 0; i < b.N; i++ {
		for _, p := range proxies {
			var r result
			r.mibs = throughput(b, p, p.target(port(u.sink)), n)
			r.p50, r.p99 = setup(b, p, p.target(port(u.banner)), k)
			res[p.name] = r
		}
	}
	b.StopTimer()
	for _, p := range proxies {
		r := res[p.name]
		if _, ok := res[p.name]; !ok {
			continue
		}
		b.Logf("%-12s throughput %8.1f MiB/s   setup p50 %7.0f µs   p99 %7.0f µs", p.name, r.mibs, r.p50, r.p99)
	}
	nd, sm, di := res["netd"], res["smokescreen"], res["direct"]
	b.ReportMetric(nd.mibs, "netd-MiB/s")
	b.ReportMetric(nd.mibs/sm.mibs, "netd/smokescreen-throughput")
	b.ReportMetric(nd.mibs/di.mibs, "netd/direct-throughput")
	b.ReportMetric(nd.p50/sm.p50, "netd/smokescreen-p50")
	b.ReportMetric(nd.p99/sm.p99, "netd/smokescreen-p99")
	b.ReportMetric(nd.p50/di.p50, "netd/direct-p50")
	if g, ok := res["netd-grpc"]; ok {
		b.ReportMetric(g.mibs/sm.mibs, "netd-grpc/smokescreen-throughput")
	}
	if tp, ok := res["tinyproxy"]; ok {
		b.ReportMetric(nd.mibs/tp.mibs, "netd/tinyproxy-throughput")
		b.ReportMetric(nd.p50/tp.p50, "netd/tinyproxy-p50")
	}
}

// BenchmarkRSS builds netd and the smokescreen peer, runs each as its own
// process(es), holds NETD_BENCH_TUNNELS (1000) tunnels open through it and
// reports resident memory: netd is serve + relay together.
func BenchmarkRSS(b *testing.B) {
	tunnels := envInt("NETD_BENCH_TUNNELS", 1000)
	u := newUpstream(b)
	dir, err := os.MkdirTemp("/tmp", "netdr")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	build := func(out, pkg string) string {
		bin := filepath.Join(dir, out)
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", pkg, err, msg)
		}
		return bin
	}
	netdBin := build("netd", "github.com/bounded-systems/claude-box/netd/cmd/netd")
	smokeBin := build("smokepeer", "./cmd/smokepeer")
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	start := func(bin string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	waitDial := func(addr string) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s never listened", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	doorPath := filepath.Join(dir, "doors", "netd.sock")
	serve := start(netdBin, "serve", "--socket", filepath.Join(dir, "run", "netd.sock"), "--door", doorPath,
		"--allow", fmt.Sprintf("up.bench:%d", port(u.banner)), "--resolve", "up.bench=127.0.0.1", "--allow-private", "127.0.0.0/8")
	relayAddr := free()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(doorPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("netd serve never opened its door")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rl := start(netdBin, "relay", "--listen", relayAddr, "--door", doorPath)
	smokeAddr := free()
	sm := start(smokeBin, smokeAddr)
	waitDial(relayAddr)
	waitDial(smokeAddr)
	tpAddr, tpPid, tpOK := startTinyproxy(b, tunnels+100)

	hold := func(p proxy, target string) []net.Conn {
		conns := make([]net.Conn, 0, tunnels)
		one := make([]byte, 1)
		for range tunnels {
			c, err := p.dial(target)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, one); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		return conns
	}
	for i := 0; i < b.N; i++ {
		idleNetd := rssKiB(b, serve.Process.Pid) + rssKiB(b, rl.Process.Pid)
		idleSmoke := rssKiB(b, sm.Process.Pid)
		nc := hold(viaConnect("netd", relayAddr), fmt.Sprintf("up.bench:%d", port(u.banner)))
		sc := hold(viaConnect("smokescreen", smokeAddr), fmt.Sprintf("127.0.0.1:%d", port(u.banner)))
		netdKiB := rssKiB(b, serve.Process.Pid) + rssKiB(b, rl.Process.Pid)
		smokeKiB := rssKiB(b, sm.Process.Pid)
		for _, c := range append(nc, sc...) {
			c.Close()
		}
		if tpOK {
			idleTP := rssKiB(b, tpPid)
			tpc := hold(proxy{name: "tinyproxy", dial: viaConnect("tinyproxy", tpAddr).dial}, fmt.Sprintf("127.0.0.1:%d", port(u.banner)))
			tpKiB := rssKiB(b, tpPid)
			for _, c := range tpc {
				c.Close()
			}
			b.Logf("RSS with %d open tunnels: tinyproxy %.1f MiB (idle %.1f)", tunnels, float64(tpKiB)/1024, float64(idleTP)/1024)
			b.ReportMetric(float64(tpKiB)/1024, "tinyproxy-RSS-MiB")
		}
		b.Logf("RSS with %d open tunnels: netd (serve+relay) %.1f MiB (idle %.1f), smokescreen %.1f MiB (idle %.1f)",
			tunnels, float64(netdKiB)/1024, float64(idleNetd)/1024, float64(smokeKiB)/1024, float64(idleSmoke)/1024)
		b.ReportMetric(float64(netdKiB)/1024, "netd-RSS-MiB")
		b.ReportMetric(float64(smokeKiB)/1024, "smokescreen-RSS-MiB")
		b.ReportMetric(float64(netdKiB)/float64(smokeKiB), "netd/smokescreen-RSS")
	}
}

var rssRe = regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`)

func rssKiB(tb testing.TB, pid int) int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Skipf("RSS needs /proc: %v", err)
	}
	defer f.Close()
	s, _ := io.ReadAll(bufio.NewReader(f))
	m := rssRe.FindSubmatch(s)
	if m == nil {
		tb.Fatalf("no VmRSS for pid %d", pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// BenchmarkSetup measures one tunnel setup (CONNECT to first upstream byte)
// per iteration through each peer, for profiling the setup path:
// go test -run '^$' -bench Setup -cpuprofile cpu.out.
func BenchmarkSetup(b *testing.B) {
	u := newUpstream(b)
	for _, p := range []proxy{viaConnect("netd", startNetd(b, u, false)), viaConnect("smokescreen", startSmokescreen(b))} {
		b.Run(p.name, func(b *testing.B) {
			target := p.target(port(u.banner))
			one := make([]byte, 1)
			for i := 0; i < b.N; i++ {
				c, err := p.dial(target)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
