// Package podman is the only package of claude-box that talks to podman: it
// connects to the podman API socket and creates, attaches to, waits on and
// removes boxes through podman's Go bindings. It adds nothing to a box: every
// field of the container spec comes from a plan.Box.
package podman

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/bindings/system"
	"github.com/containers/podman/v5/pkg/bindings/volumes"
	entitiesTypes "github.com/containers/podman/v5/pkg/domain/entities/types"
	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bounded-systems/claude-box/launcher/internal/engine"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// ErrUnreachable reports a podman API that does not answer.
var ErrUnreachable = engine.ErrUnreachable

var _ engine.Engine = (*Client)(nil)

// Connector connects to podman as an engine.Engine.
func Connector(ctx context.Context, getenv func(string) string) (engine.Engine, error) {
	c, err := Connect(ctx, getenv)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Candidates lists the podman API sockets to try, in order: CONTAINER_HOST,
// the rootless user socket, then the rootful system socket.
func Candidates(getenv func(string) string) []string {
	return candidates(getenv, os.Getuid())
}

// candidates is Candidates for a user uid.
func candidates(getenv func(string) string, uid int) []string {
	if h := getenv("CONTAINER_HOST"); h != "" {
		return []string{h}
	}
	var out []string
	if x := getenv("XDG_RUNTIME_DIR"); x != "" {
		out = append(out, "unix://"+filepath.Join(x, "podman", "podman.sock"))
	} else if uid != 0 {
		out = append(out, fmt.Sprintf("unix:///run/user/%d/podman/podman.sock", uid))
	}
	return append(out, "unix:///run/podman/podman.sock")
}

// Client is a connection to one podman API service.
type Client struct {
	ctx    context.Context
	uri    string
	getenv func(string) string
}

// URI is the API socket connected to.
func (c *Client) URI() string { return c.uri }

// Connect connects to the first candidate socket that answers. The error
// names every socket tried and how to start one.
func Connect(ctx context.Context, getenv func(string) string) (*Client, error) {
	return connect(ctx, getenv, Candidates(getenv))
}

// connect connects to the first of uris that answers.
func connect(ctx context.Context, getenv func(string) string, uris []string) (*Client, error) {
	var tried []string
	var last error
	for _, uri := range uris {
		u, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("%w: CONTAINER_HOST %q: %w", ErrUnreachable, uri, err)
		}
		if u.Scheme == "unix" {
			if _, err := os.Stat(u.Path); err != nil {
				tried = append(tried, uri+" (no socket)")
				last = err
				continue
			}
		}
		// The connection outlives ctx: cleanup after a Ctrl-C still needs it.
		// Each call is bound to its own ctx by with().
		cctx, err := bindings.NewConnectionWithIdentity(context.WithoutCancel(ctx), uri, getenv("CONTAINER_SSHKEY"), false)
		if err != nil {
			tried = append(tried, uri)
			last = err
			continue
		}
		return &Client{ctx: cctx, uri: uri, getenv: getenv}, nil
	}
	return nil, &UnreachableError{Tried: tried, Err: last}
}

// UnreachableError names the sockets tried.
type UnreachableError struct {
	Tried []string
	Err   error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s: tried %s: %v", ErrUnreachable, strings.Join(e.Tried, ", "), e.Err)
}

func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// Hint says how to start a podman API service.
const Hint = "start podman's API: `systemctl --user enable --now podman.socket` (rootless), " +
	"`sudo systemctl enable --now podman.socket` (rootful), or `podman system service --time=0 unix://$XDG_RUNTIME_DIR/podman/podman.sock &`; " +
	"or point CONTAINER_HOST at a running one"

// with returns the connection context bound to ctx's cancellation.
func (c *Client) with(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(ctx, cancel)
	return cctx, func() { stop(); cancel() }
}

// Info asks the service whether it is rootless and its version.
func (c *Client) Info(ctx context.Context) (engine.Info, error) {
	cctx, cancel := c.with(ctx)
	defer cancel()
	i, err := system.Info(cctx, nil)
	if err != nil {
		return engine.Info{}, fmt.Errorf("podman info: %w", err)
	}
	return engine.Info{Rootless: i.Host.Security.Rootless, Version: i.Version.Version, Cgroups: i.Host.CgroupsVersion, Kernel: i.Host.Kernel}, nil
}

// Rootless reports whether the service runs rootless: for a local unix
// socket, whether a non-root user owns it (the service runs as its owner);
// otherwise it asks the service.
func (c *Client) Rootless(ctx context.Context) (bool, error) {
	if u, err := url.Parse(c.uri); err == nil && u.Scheme == "unix" {
		if fi, err := os.Stat(u.Path); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				return st.Uid != 0, nil
			}
		}
	}
	i, err := c.Info(ctx)
	if err != nil {
		return false, err
	}
	return i.Rootless, nil
}

// ResolveImage resolves ref to the image's id and digests.
func (c *Client) ResolveImage(ctx context.Context, ref string) (engine.Image, error) {
	cctx, cancel := c.with(ctx)
	defer cancel()
	ok, err := images.Exists(cctx, ref, nil)
	if err != nil {
		return engine.Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	if !ok {
		return engine.Image{}, fmt.Errorf("%w: %s", engine.ErrImageMissing, ref)
	}
	r, err := images.GetImage(cctx, ref, nil)
	if err != nil {
		return engine.Image{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	id := r.ID
	if !strings.HasPrefix(id, "sha256:") {
		id = "sha256:" + id
	}
	return engine.Image{ID: id, Digest: r.Digest.String(), RepoDigests: r.RepoDigests, Tags: r.RepoTags}, nil
}

// EnsureVolume creates the named volume with labels unless it exists.
func (c *Client) EnsureVolume(ctx context.Context, name string, labels map[string]string) (bool, error) {
	cctx, cancel := c.with(ctx)
	defer cancel()
	ok, err := volumes.Exists(cctx, name, nil)
	if err != nil {
		return false, fmt.Errorf("volume %s: %w", name, err)
	}
	if ok {
		return false, nil
	}
	if _, err := volumes.Create(cctx, entitiesTypes.VolumeCreateOptions{Name: name, Labels: labels}, nil); err != nil {
		return false, fmt.Errorf("create volume %s: %w", name, err)
	}
	return true, nil
}

// Volumes lists volume names.
func (c *Client) Volumes(ctx context.Context) ([]string, error) {
	cctx, cancel := c.with(ctx)
	defer cancel()
	vs, err := volumes.List(cctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out, nil
}

// Boxes lists containers labelled as claude-box launches.
func (c *Client) Boxes(ctx context.Context) ([]engine.BoxInfo, error) {
	cctx, cancel := c.with(ctx)
	defer cancel()
	cs, err := containers.List(cctx, new(containers.ListOptions).WithAll(true).WithFilters(map[string][]string{"label": {plan.LabelLaunch}}))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]engine.BoxInfo, 0, len(cs))
	for _, k := range cs {
		name := ""
		if len(k.Names) > 0 {
			name = k.Names[0]
		}
		out = append(out, engine.BoxInfo{ID: k.ID, Name: name, Account: k.Labels[plan.LabelAccount], Launch: k.Labels[plan.LabelLaunch], Image: k.ImageID, State: k.State})
	}
	return out, nil
}

// Remove force-removes the named box; a missing box is not an error.
func (c *Client) Remove(ctx context.Context, name string) error {
	cctx, cancel := c.with(ctx)
	defer cancel()
	ok, err := containers.Exists(cctx, name, nil)
	if err != nil {
		return fmt.Errorf("remove box %s: %w", name, err)
	}
	if !ok {
		return nil
	}
	if _, err := containers.Remove(cctx, name, new(containers.RemoveOptions).WithForce(true).WithTimeout(0)); err != nil {
		return fmt.Errorf("remove box %s: %w", name, err)
	}
	return nil
}

// Spec converts a box into podman's container spec, field by field.
func Spec(b plan.Box) *specgen.SpecGenerator {
	t, f := true, false
	s := specgen.NewSpecGenerator(b.Image, false)
	s.Name = b.Name
	s.Labels = b.Labels
	s.User = b.User
	s.Command = b.Command
	s.Env = b.Env
	s.WorkDir = b.Workdir
	for _, m := range b.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		s.Mounts = append(s.Mounts, spec.Mount{Type: "bind", Source: m.Source, Destination: m.Dest, Options: []string{"bind", mode, "nosuid", "nodev"}})
	}
	for _, tm := range b.Tmpfs {
		s.Mounts = append(s.Mounts, spec.Mount{Type: "tmpfs", Source: "tmpfs", Destination: tm.Dest, Options: strings.Split(tm.Options, ",")})
	}
	for _, v := range b.Volumes {
		s.Volumes = append(s.Volumes, &specgen.NamedVolume{Name: v.Name, Dest: v.Dest, Options: []string{"rw", "nosuid", "nodev"}})
	}
	// Only the empty network is podman's default (the --net-open posture);
	// "none" and anything else the plan might ever say get no network.
	if b.Network != "" {
		s.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	}
	if mode, val, ok := strings.Cut(b.UserNS, ":"); b.UserNS != "" {
		s.UserNS = specgen.Namespace{NSMode: specgen.NamespaceMode(mode)}
		if ok {
			s.UserNS.Value = val
		}
	}
	s.CapDrop = b.CapDrop
	s.NoNewPrivileges = &b.NoNewPrivs
	s.ResourceLimits = &spec.LinuxResources{Pids: &spec.LinuxPids{Limit: b.PidsLimit}}
	s.SeccompProfilePath = b.SeccompProfile
	s.ReadOnlyFilesystem = &b.ReadOnlyRoot
	s.ReadWriteTmpfs = &f
	for _, r := range b.Rlimits {
		s.Rlimits = append(s.Rlimits, spec.POSIXRlimit{Type: r.Type, Hard: r.Value, Soft: r.Value})
	}
	s.Terminal = &b.TTY
	s.Stdin = &b.Stdin
	if b.Stdin {
		s.Stdin = &t
	}
	return s
}

// Run creates the box, attaches, starts it, waits for it to exit, removes
// it and returns its exit code. Cancelling ctx stops the box (SIGTERM, then
// SIGKILL after grace); it is removed in every case.
func (c *Client) Run(ctx context.Context, b plan.Box, std engine.Stdio, grace time.Duration) (code int, err error) {
	// Cleanup must outlive ctx: a Ctrl-C still removes the box.
	bg, cancelBG := context.WithCancel(c.ctx)
	defer cancelBG()
	r, err := containers.CreateWithSpec(bg, Spec(b), nil)
	if err != nil {
		return 0, fmt.Errorf("create box: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		if _, rerr := containers.Remove(rctx, r.ID, new(containers.RemoveOptions).WithForce(true).WithTimeout(0)); rerr != nil && err == nil {
			err = fmt.Errorf("remove box %s: %w", b.Name, rerr)
		}
	}()
	ready := make(chan bool, 1)
	attached := make(chan error, 1)
	go func() {
		var in *os.File
		if std.Stdin != nil {
			in = std.Stdin
		}
		attached <- containers.Attach(bg, r.ID, in, std.Stdout, std.Stderr, ready, new(containers.AttachOptions).WithStream(true))
	}()
	select {
	case <-ready:
	case err := <-attached:
		return 0, fmt.Errorf("attach box: %w", err)
	}
	if err := containers.Start(bg, r.ID, nil); err != nil {
		return 0, fmt.Errorf("start box: %w", err)
	}
	select {
	case <-attached:
	case <-ctx.Done():
		// Forward the signal that ended the launch (SIGTERM when none is
		// known), give the box grace, then stop it (SIGKILL).
		sig := "TERM"
		select {
		case s := <-std.Signals:
			if n, ok := s.(syscall.Signal); ok {
				sig = strconv.Itoa(int(n))
			}
		case <-time.After(50 * time.Millisecond):
		}
		if err := containers.Kill(bg, r.ID, new(containers.KillOptions).WithSignal(sig)); err != nil {
			fmt.Fprintf(std.Stderr, "claude-box: forward signal %s to the box: %v\n", sig, err)
		}
		select {
		case <-attached:
		case <-time.After(grace):
			sctx, cancel := context.WithTimeout(bg, 10*time.Second)
			if err := containers.Stop(sctx, r.ID, new(containers.StopOptions).WithTimeout(0)); err != nil {
				fmt.Fprintf(std.Stderr, "claude-box: stop the box: %v\n", err)
			}
			cancel()
			<-attached
		}
	}
	exit, err := containers.Wait(bg, r.ID, nil)
	if err != nil {
		return 0, fmt.Errorf("wait for box: %w", err)
	}
	return int(exit), nil
}

// SeccompPath writes the profile where the podman service reads it: a
// content-addressed file under ~/.claude-box/seccomp, or CLAUDE_BOX_SECCOMP
// (a path on the service's host, for ssh:// connections).
func (c *Client) SeccompPath(profile []byte, digest string) (string, error) {
	if p := c.getenv("CLAUDE_BOX_SECCOMP"); p != "" {
		return p, nil
	}
	if strings.HasPrefix(c.uri, "ssh://") || strings.HasPrefix(c.uri, "tcp://") {
		return "", fmt.Errorf("seccomp profile: podman at %s is remote; install launcher/internal/plan/seccomp.json on that host and set CLAUDE_BOX_SECCOMP to its path there", c.uri)
	}
	home := c.getenv("HOME")
	if home == "" {
		return "", errors.New("seccomp profile: HOME is not set")
	}
	dir := filepath.Join(home, ".claude-box", "seccomp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("seccomp profile: %w", err)
	}
	p := filepath.Join(dir, digest+".json")
	if b, err := os.ReadFile(p); err == nil && string(b) == string(profile) {
		return p, nil
	}
	tmp, err := os.CreateTemp(dir, ".seccomp-*")
	if err != nil {
		return "", fmt.Errorf("seccomp profile: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(profile); err != nil {
		tmp.Close()
		return "", fmt.Errorf("seccomp profile: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("seccomp profile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("seccomp profile: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("seccomp profile: %w", err)
	}
	return p, nil
}
