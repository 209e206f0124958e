package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bounded-systems/claude-box/guestroom"
	"github.com/bounded-systems/claude-box/launcher/internal/doors"
	"github.com/bounded-systems/claude-box/launcher/internal/engine"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// StopGrace is how long a stopped box gets between SIGTERM and SIGKILL.
const StopGrace = 5 * time.Second

// controlSockets is where the daemons' control sockets are, from flags
// and the environment.
func controlSockets(getenv func(string) string, runDir string) plan.ControlSockets {
	cs := plan.ControlSockets{RunDir: runDir, Override: map[string]string{}}
	if cs.RunDir == "" {
		cs.RunDir = getenv("CLAUDE_BOX_RUN_DIR")
	}
	if cs.RunDir == "" {
		cs.RunDir = filepath.Join(getenv("HOME"), ".claude-box", "run")
	}
	for _, d := range plan.DaemonNames() {
		if p := getenv(strings.ToUpper(d) + "_SOCK"); p != "" {
			cs.Override[d] = p
		}
	}
	return cs
}

// grants expands the rooms, presets and door specs of a launch.
func grants(a LaunchArgs, cat guestroom.Catalog) ([]guestroom.Grant, error) {
	var specs []guestroom.DoorSpec
	for _, p := range []struct {
		on   bool
		name string
	}{{a.Keeper, plan.DoorKeeper}, {a.Net, plan.DoorNet}, {a.Scout, plan.DoorScout}} {
		if p.on {
			specs = append(specs, guestroom.DoorSpec{Name: p.name})
		}
	}
	for _, s := range a.Doors {
		d, err := guestroom.ParseDoorSpec(s)
		if err != nil {
			return nil, fmt.Errorf("%w: --door: %w", ErrUsage, err)
		}
		specs = append(specs, d)
	}
	g, err := cat.Grant(a.Rooms, specs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err := plan.ValidateGrants(g); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return g, nil
}

// refuseKeeperWithoutRepo refuses the keeper door without --repo: keeperd
// commits to the worktree it is bound to when the door is minted, and a
// launch without --repo has none to bind it to.
func refuseKeeperWithoutRepo(a LaunchArgs, granted []guestroom.Grant) error {
	if a.Repo != "" || !hasDoor(granted, plan.DoorKeeper) {
		return nil
	}
	return Hinted(fmt.Errorf("%w: the keeper door needs --repo: keeperd commits to the worktree a launch names, and this one names none", ErrUsage),
		"add --repo PATH (the git worktree to commit to), or launch without the keeper door (--net --scout instead of --room dev)")
}

// hasDoor reports whether the door named name is granted.
func hasDoor(granted []guestroom.Grant, name string) bool {
	return slices.ContainsFunc(granted, func(g guestroom.Grant) bool { return g.Door.Name == name })
}

// refuseRepoRWWithKeeper refuses --repo-rw together with the keeper door: a
// writable .git lets the box plant hooks and redirect keeperd (commondir,
// gitdir files) at other repositories on the host, and keeperd acts on the
// host with the user's key.
func refuseRepoRWWithKeeper(a LaunchArgs, granted []guestroom.Grant) error {
	if !a.RepoRW || !hasDoor(granted, plan.DoorKeeper) {
		return nil
	}
	return fmt.Errorf("%w: --repo-rw cannot be combined with the keeper door: a writable .git would let the box steer keeperd, which acts on the host", ErrUsage)
}

// refuseNetOpenWithNetDoor refuses --net-open together with the net door:
// on the ambient network the door would police nothing (the box could
// dial past the relay), yet its rulebook card would say netd decides, and
// the proxy environment would make it look policed.
func refuseNetOpenWithNetDoor(a LaunchArgs, granted []guestroom.Grant) error {
	if !a.NetOpen || !hasDoor(granted, plan.DoorNet) {
		return nil
	}
	return Hinted(fmt.Errorf("%w: --net-open cannot be combined with the net door: on the ambient network netd would police nothing", ErrUsage),
		"use --net for policed egress; for the ambient network, name the other doors alone (--keeper --scout instead of --room dev)")
}

// widenNet applies --profile: the net door is minted with a profiles
// binding that widens netd's policy for this launch only, and its rulebook
// card says so. A profile without the net door is refused.
func widenNet(profiles []string, granted []guestroom.Grant) ([]guestroom.Grant, error) {
	if len(profiles) == 0 {
		return granted, nil
	}
	out := slices.Clone(granted)
	for i, g := range out {
		if g.Door.Name == plan.DoorNet {
			out[i].Door.Grants = g.Door.Grants + "; widened for this launch by netd profiles: " + strings.Join(profiles, ", ")
			return out, nil
		}
	}
	return nil, fmt.Errorf("%w: --profile widens the net door, which this launch is not granted (add --net)", ErrUsage)
}

// imageRef is the image a launch runs, before resolution.
func imageRef(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	if r := getenv("CLAUDE_BOX_IMAGE"); r != "" {
		return r
	}
	return plan.DefaultImage
}

// ErrPin reports an image that does not match its pin.
var ErrPin = errors.New("image does not match its pinned digest")

// checkPin refuses an image unless it matches pin (its id, its digest, or
// one of its repo digests); an empty pin admits any image.
func checkPin(img engine.Image, pin string) error {
	if pin == "" {
		return nil
	}
	if !strings.HasPrefix(pin, "sha256:") {
		pin = "sha256:" + pin
	}
	if img.ID == pin || img.Digest == pin {
		return nil
	}
	for _, d := range img.RepoDigests {
		if strings.HasSuffix(d, "@"+pin) {
			return nil
		}
	}
	return fmt.Errorf("%w: pinned %s, image is %s (digest %s)", ErrPin, pin, img.ID, img.Digest)
}

func imagePin(getenv func(string) string) string {
	if p := getenv("CLAUDE_BOX_IMAGE_DIGEST"); p != "" {
		return p
	}
	return plan.PinnedDigest
}

func newLaunchID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rlimit returns the process's soft limit for resource r, or 0.
func rlimit(r int) uint64 {
	var l unix.Rlimit
	if err := unix.Getrlimit(r, &l); err != nil || l.Cur == unix.RLIM_INFINITY {
		return 0
	}
	return l.Cur
}

// launch runs one box.
func launch(ctx context.Context, a LaunchArgs, env Env) error {
	getenv := env.Getenv
	cs := controlSockets(getenv, a.RunDir)
	cat, err := plan.Catalog(cs)
	if err != nil {
		return err
	}
	granted, err := grants(a, cat)
	if err != nil {
		return err
	}
	if err := refuseKeeperWithoutRepo(a, granted); err != nil {
		return err
	}
	if err := refuseRepoRWWithKeeper(a, granted); err != nil {
		return err
	}
	if err := refuseNetOpenWithNetDoor(a, granted); err != nil {
		return err
	}
	granted, err = widenNet(a.Profiles, granted)
	if err != nil {
		return err
	}
	var repo *plan.RepoPlan
	if a.Repo != "" {
		rp, err := plan.PlanRepo(plan.RepoRequest{Path: a.Repo, Writable: a.Writable, RW: a.RepoRW})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		}
		repo = &rp
	} else if len(a.Writable) > 0 || a.RepoRW {
		return fmt.Errorf("%w: --writable and --repo-rw need --repo", ErrUsage)
	}

	eng, err := env.Connect(ctx, getenv)
	if err != nil {
		return Hinted(err, hintFor(getenv("CONTAINER_HOST")))
	}
	if err := refuseRemoteBinds(eng.URI(), len(granted) > 0, repo != nil); err != nil {
		return err
	}
	if err := refuseDoorsInAVM(runtime.GOOS, len(granted) > 0); err != nil {
		return err
	}
	rootless, err := eng.Rootless(ctx)
	if err != nil {
		return Hinted(fmt.Errorf("%w at %s: %w", engine.ErrUnreachable, eng.URI(), err), hintFor(eng.URI()))
	}
	pidsByRlimit := false
	if rootless {
		info, err := eng.Info(ctx)
		if err != nil {
			return Hinted(fmt.Errorf("%w at %s: %w", engine.ErrUnreachable, eng.URI(), err), hintFor(eng.URI()))
		}
		if pidsByRlimit, err = rlimitCeiling(info); err != nil {
			return err
		}
	}
	ref := imageRef(a.Image, getenv)
	img, err := eng.ResolveImage(ctx, ref)
	if err != nil {
		if errors.Is(err, engine.ErrImageMissing) {
			return Hinted(err, "build or load it (`nix build .#claude-image && podman load < result`), or name another with --image / CLAUDE_BOX_IMAGE")
		}
		return err
	}
	if err := checkPin(img, imagePin(getenv)); err != nil {
		return Hinted(err, "load the pinned image, or update the pin (CLAUDE_BOX_IMAGE_DIGEST) deliberately")
	}
	seccomp, err := eng.SeccompPath(plan.SeccompProfile(), plan.SeccompDigest())
	if err != nil {
		return err
	}
	launchID := newLaunchID()
	tty := env.StdinTTY
	req := plan.Request{
		Account: a.Account, LaunchID: launchID, ImageID: img.ID, ImageDigest: img.Digest,
		Grants: granted, Denied: cat.Denied(granted), NetOpen: a.NetOpen, Repo: repo,
		ClaudeArgs: a.Claude, TTY: tty, Stdin: env.Stdin != nil, Rootless: rootless, PidsByRlimit: pidsByRlimit,
		SeccompPath: seccomp, PidsLimit: a.Pids, Term: getenv("TERM"),
		Nofile: rlimit(unix.RLIMIT_NOFILE), Nproc: rlimit(unix.RLIMIT_NPROC),
	}
	if img.Digest == "" {
		req.ImageDigest = img.ID
	}

	// The manifest does not depend on the minted sockets: plan once with
	// placeholders, so the keeper door can be bound to the manifest's digest.
	draft := req
	for _, g := range granted {
		draft.Sockets = append(draft.Sockets, plan.Socket{Grant: g, HostSocket: "<minted by " + plan.ControlSocketFor(g, cs) + ">"})
	}
	dp, err := plan.Build(draft)
	if err != nil {
		return err
	}
	if a.DryRun {
		p := dp
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Box      plan.Box        `json:"box"`
			Manifest json.RawMessage `json:"manifest"`
			Rulebook string          `json:"rulebook"`
		}{p.Box, p.Manifest, p.Rulebook})
	}

	if repo != nil && !rootless {
		warnRootfulRepo(env, repo.Root)
	}

	// Doors are minted before anything is created, so a daemon that is
	// down leaves nothing behind; from here every return revokes them.
	peerUID := plan.BoxUID
	if rootless {
		peerUID = os.Getuid()
	}
	wants := make([]doors.Want, 0, len(granted))
	for _, g := range granted {
		w := doors.Want{Grant: g, Control: plan.ControlSocketFor(g, cs), Daemon: plan.Daemon(g.Door.Name)}
		if g.Door.Name == plan.DoorKeeper && repo != nil {
			w.Bindings = map[string]string{"repo": repo.Root, "manifest": plan.ManifestDigest(dp.Manifest)}
		}
		if g.Door.Name == plan.DoorNet && len(a.Profiles) > 0 {
			w.Bindings = map[string]string{"profiles": strings.Join(a.Profiles, ",")}
		}
		wants = append(wants, w)
	}
	sess, err := doors.Mint(ctx, launchID, a.Account, peerUID, wants)
	if err != nil {
		var nr *doors.NotRunningError
		if errors.As(err, &nr) {
			return Hinted(err, nr.Hint())
		}
		var us *doors.UnsafeSocketError
		if errors.As(err, &us) {
			return Hinted(err, fmt.Sprintf("nothing was mounted and every door minted so far is revoked; %s is not behaving as a door daemon: check what answers on its control socket (`claude-box doors status`) and restart it (`claude-box doors stop && claude-box doors start`)", us.Daemon))
		}
		return err
	}
	defer sess.Close(context.WithoutCancel(ctx))
	if _, err := eng.EnsureVolume(ctx, plan.VolumeName(a.Account), map[string]string{plan.LabelAccount: a.Account}); err != nil {
		return err
	}
	for _, m := range sess.Doors() {
		req.Sockets = append(req.Sockets, plan.Socket{Grant: m.Grant, HostSocket: m.HostSocket})
	}
	p, err := plan.Build(req)
	if err != nil {
		return err
	}
	if string(p.Manifest) != string(dp.Manifest) {
		return fmt.Errorf("%w: the manifest changed between planning and minting", plan.ErrBadPlan)
	}
	for _, w := range []string{p.Posture.Warning, repoWarning(repo)} {
		if w != "" {
			fmt.Fprintln(env.Stderr, "claude-box: "+w)
		}
	}
	var stdin *os.File
	if env.Stdin != nil {
		stdin = env.Stdin
	}
	if env.SpawnReaper != nil {
		r, err := env.SpawnReaper(eng.URI(), p.Box.Name)
		if err != nil {
			return err
		}
		defer r.Done()
	}
	code, err := eng.Run(ctx, p.Box, engine.Stdio{Stdin: stdin, Stdout: env.Stdout, Stderr: env.Stderr, Signals: env.Signals}, StopGrace)
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

func repoWarning(r *plan.RepoPlan) string {
	if r == nil {
		return ""
	}
	return r.Warning
}

// warnRootfulRepo says so when rootful podman's uid 1000 cannot write the repo.
func warnRootfulRepo(env Env, root string) {
	fi, err := os.Stat(root)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	if w := rootfulRepoWarning(root, st.Uid, fi.Mode().Perm()); w != "" {
		fmt.Fprintln(env.Stderr, w)
	}
}

// rootfulRepoWarning is the warning for a worktree root owned by uid with
// permissions perm, under rootful podman (the box user is host uid 1000):
// empty when the box user owns it or anyone may write it.
func rootfulRepoWarning(root string, uid uint32, perm fs.FileMode) string {
	if uid == plan.BoxUID || perm&0o002 != 0 {
		return ""
	}
	return fmt.Sprintf("claude-box: warning: podman is rootful and the box runs as uid %d, but %s is owned by uid %d: the box can read but not write it (use rootless podman, or chown the worktree)", plan.BoxUID, root, uid)
}

// ErrNoProcessCeiling refuses a launch whose box could get no process
// ceiling of its own.
var ErrNoProcessCeiling = errors.New("this host cannot give a rootless box its own process ceiling")

// rlimitCeiling decides how a rootless box's process ceiling holds. With
// cgroup v2 the runtime sets pids.max (false). On cgroup v1 rootless podman
// sets no resource limit, so RLIMIT_NPROC carries it (true) — which is a
// per-box count only where the kernel counts it per user namespace (5.14
// and later); before that it counts every process of the host user, and a
// desktop session alone would exhaust the box's limit, so the launch is
// refused with the ways out.
func rlimitCeiling(info engine.Info) (bool, error) {
	if info.Cgroups != "v1" {
		return false, nil
	}
	major, minor, ok := kernelVersion(info.Kernel)
	if !ok {
		return false, Hinted(fmt.Errorf("%w: podman reports cgroup v1 and kernel %q, which the launcher cannot read", ErrNoProcessCeiling, info.Kernel),
			"use rootful podman, or a host with cgroup v2")
	}
	if major < 5 || (major == 5 && minor < 14) {
		return false, Hinted(fmt.Errorf("%w: rootless podman on cgroup v1 sets no pids limit, and kernel %d.%d (before 5.14) counts RLIMIT_NPROC across all of your processes, not per box", ErrNoProcessCeiling, major, minor),
			"use rootful podman, a host with cgroup v2 (systemd.unified_cgroup_hierarchy=1), or kernel 5.14 or later")
	}
	return true, nil
}

// kernelVersion reads "MAJOR.MINOR" from a kernel release string.
func kernelVersion(release string) (int, int, bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minorDigits := parts[1]
	if i := strings.IndexFunc(minorDigits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorDigits = minorDigits[:i]
	}
	minor, err2 := strconv.Atoi(minorDigits)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return major, minor, true
}

// sshHint is what to check when an ssh:// CONTAINER_HOST does not answer:
// the service may well be running, and the ssh leg is what failed.
const sshHint = "check the ssh leg podman uses: the key in CONTAINER_SSHKEY (or ssh-agent), the server's host key in ~/.ssh/known_hosts, " +
	"and that the server's sshd allows forwarding to the socket (`AllowTcpForwarding local` or `yes`, `AllowStreamLocalForwarding yes`); " +
	"`ssh USER@HOST podman info` must work, and the podman API must run there (`systemctl --user enable --now podman.socket`)"

// hintFor picks the hint for an unreachable podman at uri.
func hintFor(uri string) string {
	if strings.HasPrefix(uri, "ssh://") {
		return sshHint
	}
	return podmanHint
}

// ErrDoorsInAVM refuses doors where podman runs in a virtual machine.
var ErrDoorsInAVM = errors.New("doors cannot reach a box in podman's virtual machine yet")

// refuseDoorsInAVM refuses doors on macOS, where podman always runs in a
// podman machine (a Linux VM) that the launcher reaches over a loopback
// ssh port: the VM sees the Mac's files through a shared directory, so a
// bind mount of a minted socket would find its file, but a unix socket
// does not cross that share, and the box could not connect to its doors.
// The repository itself crosses it fine.
func refuseDoorsInAVM(goos string, doors bool) error {
	if goos != "darwin" || !doors {
		return nil
	}
	return Hinted(fmt.Errorf("%w: on macOS podman runs in a podman machine, and the doors' unix sockets on this Mac do not cross into it", ErrDoorsInAVM),
		"launch without doors (--room tool; --repo works), or run claude-box and the door daemons on the Linux host that runs podman (docs/HOSTING.md, \"macOS\")")
}

// ErrRemoteBinds refuses host paths in a box whose podman runs elsewhere.
var ErrRemoteBinds = errors.New("doors and --repo need podman on this machine")

// refuseRemoteBinds fails closed when the podman service is reached over
// ssh:// or tcp:// on a host that is not this one's loopback, and the launch
// would bind host paths (minted door sockets, the repository): podman
// resolves bind sources on its own host, where those paths name another
// machine's files — or nothing. A loopback ssh:// (a local podman reached
// through sshd) is this machine.
func refuseRemoteBinds(uri string, doors, repo bool) error {
	if !doors && !repo {
		return nil
	}
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "ssh" && u.Scheme != "tcp") {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return Hinted(fmt.Errorf("%w: podman at %s runs on %s, and bind mounts name paths on that host, not these minted door sockets or this repository", ErrRemoteBinds, uri, host),
		"run claude-box on "+host+" itself, or launch without doors and --repo")
}

const podmanHint = "start podman's API: `systemctl --user enable --now podman.socket` (rootless), " +
	"`sudo systemctl enable --now podman.socket` (rootful), or `podman system service --time=0 unix://$XDG_RUNTIME_DIR/podman/podman.sock &`; " +
	"or point CONTAINER_HOST at a running one"
