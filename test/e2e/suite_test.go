package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/test/internal/harness"
)

// targets are the binaries a run builds. In-box ones are copied into the test
// image; the same static files serve the host side.
var targets = []harness.Target{
	{Name: "probe", Module: "test", Pkg: "./cmd/probe"},
	{Name: "claude-box", Module: "launcher", Pkg: "./cmd/claude-box", TagsFile: "build.tags"},
	{Name: "claude-box-entry", Module: "launcher", Pkg: "./cmd/claude-box-entry"},
	{Name: "netd", Module: "netd", Pkg: "./cmd/netd"},
	{Name: "keeperd", Module: "keeperd", Pkg: "./cmd/keeperd"},
	{Name: "keeper", Module: "keeperd", Pkg: "./cmd/keeper"},
	{Name: "scoutd", Module: "scoutd", Pkg: "./cmd/scoutd"},
	{Name: "scout", Module: "scoutd", Pkg: "./cmd/scout"},
}

// inBox are the binaries the test image carries under /usr/local/bin.
var inBox = []string{"probe", "claude-box-entry", "netd", "keeper", "scout"}

// fakeClaude stands in for claude in the test image. The launcher passes the
// rulebook first (--append-system-prompt TEXT); the fake keeps it in
// /tmp/rulebook.txt and runs the remaining arguments as a command, so a test
// runs `claude-box … -- probe floor`. With no command it prints its arguments.
const fakeClaude = `#!/bin/sh
# fake claude for the claude-box e2e suite
while [ $# -gt 0 ]; do
	case "$1" in
	--append-system-prompt) printf '%s' "$2" > /tmp/rulebook.txt; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
if [ $# -eq 0 ]; then
	echo "fake-claude: no command"
	exit 0
fi
exec "$@"
`

// suite is what every test shares: built once, torn down by TestMain.
type suite struct {
	repo   string
	dir    string
	bins   map[string]string
	binErr map[string]error
	ca     *harness.CA
	podman *harness.Podman
	image  harness.Image
	tools  map[string]error // dynamic tools in the image: nil when present
	err    error            // the podman/image setup failure, if any
	what   string
}

var shared struct {
	once     sync.Once
	s        *suite
	cleanups []func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(shared.cleanups) - 1; i >= 0; i-- {
		shared.cleanups[i]()
	}
	os.Exit(code)
}

// setup returns the shared suite, building it on first use. A test that needs
// a piece that could not be set up is skipped (failed in CI) naming it.
func setup(t testing.TB) *suite {
	t.Helper()
	shared.once.Do(func() { shared.s = build() })
	s := shared.s
	harness.Need(t, s.what, s.err)
	return s
}

// tool stops the test when a dynamically linked tool is not in the image.
func (s *suite) tool(t testing.TB, name string) {
	t.Helper()
	err, ok := s.tools[name]
	if !ok {
		err = fmt.Errorf("%s not in the test image", name)
	}
	harness.Need(t, name, err)
}

// bin returns a built binary or stops the test naming the missing one.
func (s *suite) bin(t testing.TB, name string) string {
	t.Helper()
	p, ok := s.bins[name]
	if !ok {
		err := s.binErr[name]
		if err == nil {
			err = fmt.Errorf("binary %s not built", name)
		}
		harness.Need(t, name, err)
	}
	return p
}

func build() *suite {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s := &suite{bins: map[string]string{}, binErr: map[string]error{}}
	var err error
	if s.repo, err = harness.RepoRoot(); err != nil {
		s.what, s.err = "repo root", err
		return s
	}
	// Short: unix socket paths under it must stay below 108 bytes.
	base := os.TempDir()
	if len(base) > 24 {
		base = "/tmp"
	}
	if s.dir, err = os.MkdirTemp(base, "cbe2e-"); err != nil {
		s.what, s.err = "temp dir", err
		return s
	}
	shared.cleanups = append(shared.cleanups, func() { _ = os.RemoveAll(s.dir) })
	binDir := filepath.Join(s.dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		s.what, s.err = "bin dir", err
		return s
	}
	// A few builds at once: linking is single-threaded.
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 3)
	for _, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p, err := harness.Build(ctx, s.repo, binDir, tg)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.binErr[tg.Name] = err
				return
			}
			s.bins[tg.Name] = p
		}()
	}
	wg.Wait()
	if s.ca, err = harness.NewCA(); err != nil {
		s.what, s.err = "test CA", err
		return s
	}
	busybox, err := harness.CheckBusybox()
	if err != nil {
		s.what, s.err = "busybox-static", err
		return s
	}
	if _, ok := s.bins["probe"]; !ok {
		s.what, s.err = "probe binary", s.binErr["probe"]
		return s
	}
	s.podman, err = harness.StartPodman(ctx, filepath.Join(s.dir, "podman"), harness.PodmanOptions{StorageDriver: os.Getenv("CLAUDE_BOX_E2E_STORAGE_DRIVER")})
	if err != nil {
		s.what, s.err = "podman service", err
		return s
	}
	shared.cleanups = append(shared.cleanups, func() { _ = s.podman.Close() })
	spec := harness.ImageSpec{
		Busybox: busybox,
		Bins:    map[string]string{},
		Scripts: map[string]string{"claude": fakeClaude},
		CAPEM:   s.ca.PEM(),
	}
	for _, name := range inBox {
		if p, ok := s.bins[name]; ok {
			spec.Bins[name] = p
		}
	}
	// Dynamically linked tools with their libraries: curl (the TLS client
	// agents use) and git (reads in the box; it cannot write .git).
	spec.Dynamic = map[string]string{}
	s.tools = map[string]error{}
	for _, tool := range []string{"curl", "git"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			s.tools[tool] = fmt.Errorf("%s not installed on the host (apt-get install -y %s): %w", tool, tool, err)
			continue
		}
		spec.Dynamic["usr/bin/"+tool] = p
		s.tools[tool] = nil
	}
	if _, ok := s.bins["claude-box-entry"]; ok {
		spec.Entrypoint = []string{"/usr/local/bin/claude-box-entry"}
	}
	cache, err := harness.CacheDir()
	if err != nil {
		s.what, s.err = "cache dir", err
		return s
	}
	if s.image, err = harness.BuildImage(ctx, s.podman, cache, spec); err != nil {
		s.what, s.err = "test image", err
		return s
	}
	return s
}
