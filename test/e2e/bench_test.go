package e2e

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkLaunch measures launch-to-exit of a trivial command through
// claude-box against `podman run` of the very box the launcher plans (its
// `--dry-run` spec translated flag for flag: user, capabilities,
// no-new-privileges, the launcher's seccomp profile, pids limit, rlimits,
// read-only root, tmpfs, the account volume, environment, labels, no
// network, and the image's entrypoint claude-box-entry, which checks the
// floor before it execs the fake claude) on the same service and image, in
// one run; and the cost of the doors: claude-box with every door minted
// (--room dev --repo) against claude-box with the same repository and no
// door (--repo), so the repository's mounts are on both sides. The four
// are interleaved, 8 launches of each per iteration. It reports the mean
// ratio and difference and, less moved by a burst of load elsewhere, the
// median of each round's own: the targets are claude-box/podman
// ≤ 1.15 with no doors, and minting three doors adding under 50 ms.
func BenchmarkLaunch(b *testing.B) {
	w := newWorld(b)
	w.startScoutd(b, nil, "")
	w.startNetd(b, nil)
	repo := newKeeperRepo(b, w)
	w.startKeeperd(b, repo)
	// One launch to create the account volume.
	w.ok(b, "e2e-bench", "--", "true")
	peer := w.plan(b, "e2e-bench", "--", "true")
	peer.Name = ""
	podmanArgs := peer.podmanRun(b, "--rm")

	// Interleaved, so that load from elsewhere on the machine falls on all
	// four alike.
	const reps = 8
	timed := func(run func()) time.Duration {
		start := time.Now()
		run()
		return time.Since(start)
	}
	ctx := context.Background()
	var podman, bare, withRepo, dev time.Duration
	var ratios, doors []float64
	b.ResetTimer()
	for range b.N {
		for range reps {
			p := timed(func() {
				if out, err := w.s.podman.CLI(ctx, podmanArgs...); err != nil {
					b.Fatalf("podman run: %v %s", err, out)
				}
			})
			c := timed(func() { w.ok(b, "e2e-bench", "--", "true") })
			r := timed(func() { w.ok(b, "e2e-bench", "--repo", repo.dir, "--", "true") })
			d := timed(func() { w.ok(b, "e2e-bench", "--room", "dev", "--repo", repo.dir, "--", "true") })
			podman, bare, withRepo, dev = podman+p, bare+c, withRepo+r, dev+d
			ratios = append(ratios, float64(c)/float64(p))
			doors = append(doors, float64((d - r).Milliseconds()))
		}
	}
	b.StopTimer()
	n := time.Duration(b.N * reps)
	podman, bare, withRepo, dev = podman/n, bare/n, withRepo/n, dev/n
	b.ReportMetric(float64(podman.Milliseconds()), "podman-ms")
	b.ReportMetric(float64(bare.Milliseconds()), "claude-box-ms")
	b.ReportMetric(float64(withRepo.Milliseconds()), "repo-ms")
	b.ReportMetric(float64(dev.Milliseconds()), "room-dev-ms")
	b.ReportMetric(float64(bare)/float64(podman), "claude-box/podman")
	b.ReportMetric(median(ratios), "med-claude-box/podman")
	b.ReportMetric(float64((dev - withRepo).Milliseconds()), "three-doors-ms")
	b.ReportMetric(median(doors), "med-three-doors-ms")
}

// median is the middle of xs (the mean of the two middle ones for an even
// count); xs is sorted in place.
func median(xs []float64) float64 {
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}
