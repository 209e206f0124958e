package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/scoutd/internal/client"
	"github.com/bounded-systems/claude-box/scoutd/internal/scouttest"

	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/extract"
)

// startDaemon runs scoutd serve in-process with a standing door and
// returns the door's path.
func startDaemon(tb testing.TB, ca *scouttest.CA, args ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	doorPath := filepath.Join(dir, "door", "scout.sock")
	args = append([]string{"serve", "--socket", filepath.Join(dir, "run", "scoutd.sock"), "--door", doorPath, "--allow-private", "127.0.0.1/32", "--log-level", "error"}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, args, Env{Stdout: io.Discard, Stderr: io.Discard, RootCAs: ca.Pool, Ready: func(string) { close(ready) }})
	}()
	tb.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		tb.Fatalf("scoutd: %v", err)
	}
	return doorPath
}

// BenchmarkFetch50MiB fetches a 50 MiB body through scoutd (door + client,
// to io.Discard; scoutd returns the body's size and sha256) on the raw fast
// path and on the gRPC stream, and directly with net/http (same TLS server,
// same process) twice: reading the body only, and reading it with its
// sha256 (io.MultiWriter, as `curl | tee | sha256sum` would) — the same
// deliverable the door returns. All legs run in the same iteration and
// each door leg is reported against both direct ones. "loopback" serves as
// fast as the CPU allows; "gbit" paces the upstream at 1 Gbit/s and "wan40"
// at 40 MiB/s, like fast remote hosts, where the wire rather than the CPU
// is the limit.
func BenchmarkFetch50MiB(b *testing.B) {
	b.Run("loopback", func(b *testing.B) { benchFetch(b, 0) })
	b.Run("gbit", func(b *testing.B) { benchFetch(b, 125_000_000) })
	b.Run("wan40", func(b *testing.B) { benchFetch(b, 40<<20) })
}

// leg is one way of fetching, timed over the iterations.
type leg struct {
	wall, best, cpu time.Duration
	each            []time.Duration
}

func (l *leg) run(b *testing.B, f func() int64) {
	c0, t0 := cpuTime(), time.Now()
	if n := f(); n != 50<<20 {
		b.Fatalf("%d bytes", n)
	}
	d := time.Since(t0)
	l.cpu += cpuTime() - c0
	l.wall += d
	l.each = append(l.each, d)
	if l.best == 0 || d < l.best {
		l.best = d
	}
}

func benchFetch(b *testing.B, rate int) {
	const size = 50 << 20
	ca := scouttest.NewCA(b, "content.test")
	body := make([]byte, size)
	_, port := ca.Server(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rate == 0 {
			_, _ = w.Write(body)
			return
		}
		// Pace the body: each 256 KiB slice leaves no earlier than the
		// rate allows (pacing, not waiting for a condition).
		start := time.Now()
		for off := 0; off < size; off += 256 << 10 {
			if ahead := time.Duration(float64(off)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
			if _, err := w.Write(body[off:min(off+256<<10, size)]); err != nil {
				return
			}
		}
	}))
	cfg := filepath.Join(b.TempDir(), "scoutd.json")
	if err := os.WriteFile(cfg, []byte(`{"version":1,"limits":{"max_bytes":67108864,"max_decoded_bytes":67108864}}`), 0o600); err != nil {
		b.Fatal(err)
	}
	doorPath := startDaemon(b, ca, "--config", cfg, "--allow", "content.test:"+port, "--resolve", "content.test=127.0.0.1")
	cc, err := door.Dial(doorPath, client.DialOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	viaGRPC := client.New(cc)
	viaRaw := viaGRPC.WithRaw(doorPath)
	url := "https://content.test:" + port + "/"
	direct := &http.Client{Transport: &http.Transport{
		TLSClientConfig:    &tls.Config{RootCAs: ca.Pool},
		DisableCompression: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}}
	door := func(cl *client.Client) func() int64 {
		return func() int64 {
			res, err := cl.Fetch(context.Background(), &scoutv1.FetchRequest{Url: url}, io.Discard)
			if err != nil {
				b.Fatalf("door: %v", err)
			}
			return res.Trailer.GetSize()
		}
	}
	var lDirect, lDirectSum, lRaw, lGRPC leg
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		lDirect.run(b, func() int64 {
			resp, err := direct.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil {
				b.Fatalf("direct: %v", err)
			}
			return n
		})
		lDirectSum.run(b, func() int64 {
			resp, err := direct.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			h := sha256.New()
			n, err := io.Copy(io.MultiWriter(io.Discard, h), resp.Body)
			if err != nil {
				b.Fatalf("direct+sha256: %v", err)
			}
			if h.Sum(nil)[0] == 0 && n < 0 {
				b.Fatal("unreachable: keeps the digest live")
			}
			return n
		})
		lRaw.run(b, door(viaRaw))
		lGRPC.run(b, door(viaGRPC))
	}
	mib := func(l leg) float64 { return float64(size) * float64(b.N) / l.wall.Seconds() / (1 << 20) }
	b.ReportMetric(mib(lDirect), "direct_MiB/s")
	b.ReportMetric(mib(lDirectSum), "direct_sha_MiB/s")
	b.ReportMetric(mib(lRaw), "raw_MiB/s")
	b.ReportMetric(mib(lGRPC), "grpc_MiB/s")
	// Throughput against direct (wall time; higher is better).
	b.ReportMetric(lDirect.wall.Seconds()/lRaw.wall.Seconds(), "raw/direct")
	b.ReportMetric(lDirect.wall.Seconds()/lGRPC.wall.Seconds(), "grpc/direct")
	// Against the direct read that also hashes: the same deliverable.
	b.ReportMetric(lDirectSum.wall.Seconds()/lRaw.wall.Seconds(), "raw/direct_sha")
	b.ReportMetric(lDirectSum.wall.Seconds()/lGRPC.wall.Seconds(), "grpc/direct_sha")
	// The ceiling the digest alone sets, measured in the same run: what any
	// fetcher that returns the body's sha256 can reach against a direct
	// read that does not hash (raw/direct can exceed it only by hashing on
	// a core the direct read leaves idle).
	b.ReportMetric(lDirect.wall.Seconds()/lDirectSum.wall.Seconds(), "sha_ceiling")
	// The median over iterations of each iteration's own ratio: the legs
	// of one iteration run back to back, so a burst of load elsewhere on a
	// shared machine moves one pair, not the estimate.
	b.ReportMetric(medianRatio(lDirect, lRaw), "med_raw/direct")
	// Best of each: less sensitive to a shared machine's noise.
	b.ReportMetric(lDirect.best.Seconds()/lRaw.best.Seconds(), "best_raw/direct")
	// CPU seconds of the whole process per leg: the cost ratio, which a
	// loaded machine disturbs far less than wall time.
	b.ReportMetric(lRaw.cpu.Seconds()/lDirect.cpu.Seconds(), "cpu_raw/direct")
	b.ReportMetric(lGRPC.cpu.Seconds()/lDirect.cpu.Seconds(), "cpu_grpc/direct")
	// Cores busy on average during each leg (CPU over wall time): how much
	// of the machine a leg could use, the rest being waits.
	b.ReportMetric(lDirect.cpu.Seconds()/lDirect.wall.Seconds(), "cores_direct")
	b.ReportMetric(lRaw.cpu.Seconds()/lRaw.wall.Seconds(), "cores_raw")
}

// BenchmarkSnapshot5000 snapshots a 5,000-file repository through scoutd
// (door + client + safe extraction into a fresh directory) and clones it
// with `git clone --depth 1` from the same smart-HTTP server, in the same
// iteration, and reports scout/git time.
func BenchmarkSnapshot5000(b *testing.B) {
	scouttest.NeedGit(b)
	ca := scouttest.NewCA(b, "git.test")
	_, root := scouttest.Repo(b, scouttest.ManyFiles(5000), "octo", "r")
	_, port := ca.Server(b, scouttest.GitHandler(root))
	caFile := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		b.Fatal(err)
	}
	doorPath := startDaemon(b, ca, "--allow", "git.test:"+port, "--resolve", "git.test=127.0.0.1")
	cc, err := door.Dial(doorPath, client.DialOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	cl := client.New(cc)
	url := "https://git.test:" + port + "/octo/r.git"
	var tScout, tGit time.Duration
	minScout, minGit := time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for i := range b.N {
		out := b.TempDir()
		t0 := time.Now()
		cmd := exec.Command("git", "-c", "http.sslCAInfo="+caFile, "-c", "http.curloptResolve=git.test:"+port+":127.0.0.1",
			"clone", "-q", "--depth", "1", url, filepath.Join(out, "git"))
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_SSL_CAINFO="+caFile)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git clone: %v\n%s", err, o)
		}
		t1 := time.Now()
		dir := filepath.Join(out, fmt.Sprintf("scout%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		res, err := cl.Snapshot(context.Background(), &scoutv1.SnapshotRequest{Url: url}, dir, extract.Limits{})
		if err != nil {
			b.Fatalf("snapshot: %v", err)
		}
		tGit += t1.Sub(t0)
		tScout += time.Since(t1)
		minGit = min(minGit, t1.Sub(t0))
		minScout = min(minScout, time.Since(t1))
		if res.Stats.Entries < 5000 {
			b.Fatalf("snapshot has %d entries", res.Stats.Entries)
		}
	}
	b.ReportMetric(tGit.Seconds()*1000/float64(b.N), "git_ms/op")
	b.ReportMetric(tScout.Seconds()*1000/float64(b.N), "scout_ms/op")
	b.ReportMetric(tScout.Seconds()/tGit.Seconds(), "scout/git")
	b.ReportMetric(minScout.Seconds()/minGit.Seconds(), "best_scout/git")
}

// medianRatio is the median of peer[i]/l[i] over the iterations: the
// throughput of l against peer, pairwise.
func medianRatio(peer, l leg) float64 {
	r := make([]float64, len(l.each))
	for i := range r {
		r[i] = peer.each[i].Seconds() / l.each[i].Seconds()
	}
	slices.Sort(r)
	if len(r)%2 == 1 {
		return r[len(r)/2]
	}
	return (r[len(r)/2-1] + r[len(r)/2]) / 2
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
