package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/launcher/internal/engine"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// fakeEngine is a scripted podman (a server we do not own): it answers from
// its fields and records every call that changes something.
type fakeEngine struct {
	info      engine.Info
	image     engine.Image
	boxes     []engine.BoxInfo
	volumeErr error
	code      int
	// onVolume sees the account volume being ensured.
	onVolume func(name string)
	// onRun sees the box while it would run, doors still minted.
	onRun func(b plan.Box)

	mu    sync.Mutex
	calls []string
}

// The image a new fakeEngine resolves every reference to.
const (
	fakeImageID     = "sha256:1111"
	fakeImageDigest = "sha256:2222"
)

// newFakeEngine is a rootful podman 5 on cgroup v2 with the image loaded.
func newFakeEngine() *fakeEngine {
	return &fakeEngine{
		info:  engine.Info{Version: "5.0.0", Cgroups: "v2", Kernel: "6.1.0"},
		image: engine.Image{ID: fakeImageID, Digest: fakeImageDigest, RepoDigests: []string{"localhost/claude-box@" + fakeImageDigest}},
	}
}

func (f *fakeEngine) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

// called returns the recorded calls of one method.
func (f *fakeEngine) called(method string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if c == method || strings.HasPrefix(c, method+" ") {
			out = append(out, c)
		}
	}
	return out
}

// recorded returns every recorded call.
func (f *fakeEngine) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeEngine) connect(context.Context, func(string) string) (engine.Engine, error) {
	return f, nil
}

func (f *fakeEngine) URI() string { return "unix:///run/fake/podman.sock" }

func (f *fakeEngine) Info(context.Context) (engine.Info, error) { return f.info, nil }

func (f *fakeEngine) Rootless(context.Context) (bool, error) { return f.info.Rootless, nil }

func (f *fakeEngine) ResolveImage(context.Context, string) (engine.Image, error) {
	return f.image, nil
}

func (f *fakeEngine) EnsureVolume(_ context.Context, name string, _ map[string]string) (bool, error) {
	f.record("EnsureVolume " + name)
	if f.onVolume != nil {
		f.onVolume(name)
	}
	return f.volumeErr == nil, f.volumeErr
}

func (f *fakeEngine) Volumes(context.Context) ([]string, error) { return nil, nil }

func (f *fakeEngine) Boxes(context.Context) ([]engine.BoxInfo, error) { return f.boxes, nil }

func (f *fakeEngine) Run(_ context.Context, b plan.Box, _ engine.Stdio, _ time.Duration) (int, error) {
	f.record("Run " + b.Name)
	if f.onRun != nil {
		f.onRun(b)
	}
	return f.code, nil
}

func (f *fakeEngine) Remove(_ context.Context, name string) error {
	f.record("Remove " + name)
	return nil
}

func (f *fakeEngine) SeccompPath(_ []byte, digest string) (string, error) {
	return "/fake/seccomp/" + digest + ".json", nil
}

// noConnect is a Connector for runs that must not reach podman.
func noConnect(t *testing.T) engine.Connector {
	return func(context.Context, func(string) string) (engine.Engine, error) {
		t.Error("podman was asked for, but this run must not reach it")
		return nil, errors.New("no podman in this test")
	}
}

// doorDaemons runs real in-process door daemons, a Minter behind a control
// socket as netd, keeperd and scoutd serve them, in a run dir of their own
// (short: socket paths have a length limit). Every minter accepts every
// binding. It returns the run dir and each daemon's minter.
func doorDaemons(t *testing.T, daemons ...string) (string, map[string]*door.Minter) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	minters := map[string]*door.Minter{}
	for _, d := range daemons {
		minters[d] = serveDaemon(t, dir, d, filepath.Join(dir, d+".doors"))
	}
	return dir, minters
}

// serveDaemon serves daemon's control socket in runDir, its minter
// minting launch sockets into mintDir, until the test ends.
func serveDaemon(t *testing.T, runDir, daemon, mintDir string) *door.Minter {
	t.Helper()
	name := strings.TrimSuffix(daemon, "d")
	m, err := door.NewMinter(door.MinterConfig{
		Door: name, Version: "test", Dir: mintDir,
		Validate:      func(door.Binding) error { return nil },
		PolicySummary: func() string { return "test policy" },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := door.NewServer(door.Config{Door: name, Authorize: door.SameUser()})
	m.RegisterControl(srv.GRPC())
	l, err := door.Listen(filepath.Join(runDir, daemon+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		m.Close(ctx)
	})
	return m
}

// testEnv is an Env with its own HOME, the door daemons' run dir and the
// extra variables vars, writing to the returned buffers.
func testEnv(t *testing.T, runDir string, vars map[string]string, connect engine.Connector) (Env, *strings.Builder, *strings.Builder) {
	t.Helper()
	all := map[string]string{"HOME": t.TempDir(), "CLAUDE_BOX_RUN_DIR": runDir}
	for k, v := range vars {
		all[k] = v
	}
	var out, errb strings.Builder
	env := Env{Getenv: func(k string) string { return all[k] }, Stdout: &out, Stderr: &errb, Connect: connect, Version: "1.2.3"}
	return env, &out, &errb
}
