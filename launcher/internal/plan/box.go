package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/bounded-systems/claude-box/guestroom"
)

// The box's fixed shape.
const (
	// BoxUser is the uid:gid the box runs as.
	BoxUser = "1000:1000"
	// BoxUID is the box user's uid inside the box.
	BoxUID = 1000
	// Home is the box user's home.
	Home = "/home/claude"
	// ConfigDir is where the account volume is mounted.
	ConfigDir = Home + "/.config/claude"
	// DefaultPidsLimit bounds the number of processes in a box.
	DefaultPidsLimit = 1024
	// DefaultImage is the image run when none is named.
	DefaultImage = "localhost/claude-box:latest"
	// NprocCap bounds RLIMIT_NPROC in a rootful box. It is not the box's
	// process ceiling (the cgroup pids limit is): rootful, the box user is
	// host uid 1000 in the host's user namespace, so the kernel counts every
	// process of that host user — on a desktop, the user's own browser and
	// editor threads — against it, and a low cap would fail the box's forks
	// for reasons outside it (4096 was within reach of a busy desktop).
	// Not higher: where runc lacks CAP_SYS_RESOURCE it cannot set a high
	// RLIMIT_NPROC on the box ("error setting rlimit type 6"; measured
	// here: 32768 works, 32769 does not — this kernel's pid_max, the
	// smallest common default). Rootless boxes get the pids limit instead.
	NprocCap = 16384
	// NofileCap bounds RLIMIT_NOFILE in the box: below what a podman service
	// usually holds, so runc never has to raise it.
	NofileCap = 65536
)

// Container labels.
const (
	LabelAccount = "io.claude-box.account"
	LabelLaunch  = "io.claude-box.launch"
	LabelImage   = "io.claude-box.image"
)

// Env names set in the box.
const (
	EnvCapabilities = "CLAUDE_BOX_CAPABILITIES"
	EnvLaunch       = "CLAUDE_BOX_LAUNCH"
	EnvAccount      = "CLAUDE_BOX_ACCOUNT"
	// EnvPidsLimit tells the entrypoint the process ceiling it must find.
	EnvPidsLimit = "CLAUDE_BOX_PIDS_LIMIT"
)

// PinnedDigest is the image digest built into the binary
// (-ldflags -X …/internal/plan.PinnedDigest=sha256:…); empty means no pin.
var PinnedDigest string

// Rlimit is one resource limit, soft = hard.
type Rlimit struct {
	Type  string `json:"type"`
	Value uint64 `json:"value"`
}

// Tmpfs is one tmpfs mount.
type Tmpfs struct {
	Dest    string `json:"dest"`
	Options string `json:"options"`
}

// Volume is one named volume mount.
type Volume struct {
	Name string `json:"name"`
	Dest string `json:"dest"`
}

// Box is one container, engine-neutral: internal/podman turns it into a
// podman spec field by field and adds nothing.
type Box struct {
	Name           string            `json:"name"`
	Image          string            `json:"image"`
	Labels         map[string]string `json:"labels"`
	User           string            `json:"user"`
	UserNS         string            `json:"userns,omitempty"`
	Command        []string          `json:"command"`
	Env            map[string]string `json:"env"`
	Workdir        string            `json:"workdir,omitempty"`
	Mounts         []Mount           `json:"mounts"`
	Volumes        []Volume          `json:"volumes"`
	Tmpfs          []Tmpfs           `json:"tmpfs"`
	Network        string            `json:"network"`
	CapDrop        []string          `json:"cap_drop"`
	NoNewPrivs     bool              `json:"no_new_privileges"`
	PidsLimit      int64             `json:"pids_limit"`
	SeccompProfile string            `json:"seccomp_profile"`
	ReadOnlyRoot   bool              `json:"read_only_root"`
	Rlimits        []Rlimit          `json:"rlimits"`
	TTY            bool              `json:"tty"`
	Stdin          bool              `json:"stdin"`
}

// Socket is one minted door socket: the grant, and the host file to mount.
type Socket struct {
	Grant      guestroom.Grant
	HostSocket string
}

// Request is everything a launch is planned from.
type Request struct {
	Account     string
	LaunchID    string
	ImageID     string
	ImageDigest string
	Grants      []guestroom.Grant
	Denied      []guestroom.Door
	Sockets     []Socket // one per grant, same order
	NetOpen     bool
	Repo        *RepoPlan
	ClaudeArgs  []string
	TTY         bool
	Stdin       bool
	Rootless    bool
	// PidsByRlimit: the runtime sets no cgroup pids limit (rootless podman
	// on cgroup v1), so RLIMIT_NPROC carries the pids limit.
	PidsByRlimit bool
	SeccompPath  string
	PidsLimit    int64
	Nofile       uint64
	Nproc        uint64
	Term         string
}

// Plan is a planned launch: the box, the posture it was derived with, and
// the guest's rulebook and manifest.
type Plan struct {
	Box      Box
	Posture  Posture
	Launch   guestroom.Launch
	Rulebook string
	Manifest []byte
}

// ErrBadPlan reports a request that cannot become a box.
var ErrBadPlan = errors.New("cannot plan launch")

// Boundary says what confines the box, as the manifest states it.
const Boundary = "podman container, uid 1000, all capabilities dropped, no-new-privileges, seccomp, pids limit, read-only root"

// The unsafe escapes a launch can use, as the manifest names them.
const (
	// UnsafeNetOpen is --net-open: podman's ambient network.
	UnsafeNetOpen = "net-open"
	// UnsafeRepoRW is --repo-rw: the repository's .git mounted read-write.
	UnsafeRepoRW = "repo-rw"
)

// ExtraUnsafe is the manifest's extra key that lists, comma-separated, the
// unsafe escapes the launch uses; it is absent when it uses none.
const ExtraUnsafe = "unsafe"

// unsafeEscapes names the unsafe escapes of a request, in a fixed order,
// from what the box gets: the open network, and a .git mounted writable.
func unsafeEscapes(r Request) []string {
	var out []string
	if r.NetOpen {
		out = append(out, UnsafeNetOpen)
	}
	if r.Repo != nil && slices.ContainsFunc(r.Repo.Mounts, func(m Mount) bool { return m.Dest == Workdir+"/.git" && !m.ReadOnly }) {
		out = append(out, UnsafeRepoRW)
	}
	return out
}

// Build plans one launch.
func Build(r Request) (Plan, error) {
	if err := ValidateAccount(r.Account); err != nil {
		return Plan{}, err
	}
	if r.LaunchID == "" || r.ImageID == "" || r.SeccompPath == "" {
		return Plan{}, fmt.Errorf("%w: launch id, image and seccomp profile are required", ErrBadPlan)
	}
	if len(r.Sockets) != len(r.Grants) {
		return Plan{}, fmt.Errorf("%w: %d grants but %d minted sockets", ErrBadPlan, len(r.Grants), len(r.Sockets))
	}
	if r.NetOpen && slices.ContainsFunc(r.Grants, func(g guestroom.Grant) bool { return g.Door.Name == DoorNet }) {
		return Plan{}, fmt.Errorf("%w: the ambient network (--net-open) and the net door exclude each other", ErrBadPlan)
	}
	posture := DerivePosture(r.Grants, r.NetOpen)
	repo := ""
	if r.Repo != nil {
		repo = r.Repo.Root
	}
	var suppress []string
	if posture.Network == NetworkOpen {
		suppress = append(suppress, DoorNet)
	}
	denied := slices.DeleteFunc(slices.Clone(r.Denied), func(d guestroom.Door) bool { return slices.Contains(suppress, d.Name) })
	extra := map[string]string{"launch": r.LaunchID, "image": r.ImageDigest}
	if u := unsafeEscapes(r); len(u) > 0 {
		extra[ExtraUnsafe] = strings.Join(u, ",")
	}
	launch := guestroom.Launch{
		Account: r.Account, Network: string(posture.Network), Boundary: Boundary, Repo: repo,
		Granted: r.Grants, Denied: denied, Extra: extra,
	}
	manifest, err := launch.ManifestJSON()
	if err != nil {
		return Plan{}, err
	}
	rulebook := launch.Rulebook()

	env := map[string]string{
		"HOME":              Home,
		"USER":              "claude",
		"CLAUDE_CONFIG_DIR": ConfigDir,
		EnvAccount:          r.Account,
		EnvLaunch:           r.LaunchID,
		EnvCapabilities:     compact(manifest),
	}
	if r.TTY && r.Term != "" {
		env["TERM"] = r.Term
	}
	maps.Copy(env, posture.Env)

	b := Box{
		Name:  "claude-box-" + r.Account + "-" + r.LaunchID,
		Image: r.ImageID,
		Labels: map[string]string{
			LabelAccount: r.Account, LabelLaunch: r.LaunchID, LabelImage: r.ImageDigest,
		},
		User:           BoxUser,
		Command:        append([]string{"claude", "--append-system-prompt", rulebook}, r.ClaudeArgs...),
		Env:            env,
		Volumes:        []Volume{{Name: VolumeName(r.Account), Dest: ConfigDir}},
		Tmpfs:          []Tmpfs{{Dest: "/tmp", Options: "rw,nosuid,nodev,mode=1777,U"}, {Dest: Home, Options: "rw,nosuid,nodev,mode=0700,U"}},
		Network:        posture.PodmanNetwork,
		CapDrop:        []string{"ALL"},
		NoNewPrivs:     true,
		PidsLimit:      r.PidsLimit,
		SeccompProfile: r.SeccompPath,
		ReadOnlyRoot:   true,
		TTY:            r.TTY,
		Stdin:          r.Stdin,
	}
	if b.PidsLimit <= 0 {
		b.PidsLimit = DefaultPidsLimit
	}
	env[EnvPidsLimit] = strconv.FormatInt(b.PidsLimit, 10)
	if r.Rootless {
		b.UserNS = "keep-id:uid=1000,gid=1000"
	}
	nofile := r.Nofile
	if nofile == 0 || nofile > NofileCap {
		nofile = NofileCap
	}
	b.Rlimits = append(b.Rlimits, Rlimit{Type: "nofile", Value: nofile})
	nproc := r.Nproc
	if nproc == 0 || nproc > NprocCap {
		nproc = NprocCap
	}
	if r.PidsByRlimit && nproc > uint64(b.PidsLimit) {
		// Rootless podman on a cgroup v1 host drops the pids limit; the
		// box's own user namespace makes RLIMIT_NPROC a per-box ceiling
		// (kernel ≥ 5.14), and the entrypoint accepts it in the cgroup's
		// place.
		nproc = uint64(b.PidsLimit)
	}
	b.Rlimits = append(b.Rlimits, Rlimit{Type: "nproc", Value: nproc})
	if r.Repo != nil {
		b.Workdir = Workdir
		b.Mounts = append(b.Mounts, r.Repo.Mounts...)
	} else {
		b.Workdir = Home
	}
	for i, s := range r.Sockets {
		g := r.Grants[i]
		if s.Grant.Door.Name != g.Door.Name || s.HostSocket == "" {
			return Plan{}, fmt.Errorf("%w: door %q has no minted socket", ErrBadPlan, g.Door.Name)
		}
		b.Mounts = append(b.Mounts, Mount{Source: s.HostSocket, Dest: g.Door.Socket})
		env[g.Door.Env] = g.Door.Socket
	}
	return Plan{Box: b, Posture: posture, Launch: launch, Rulebook: rulebook, Manifest: manifest}, nil
}

// ValidateGrants refuses grants a launch must never hold: a generic door
// named like one of the daemons (it would reach a daemon under a name the
// posture does not know).
func ValidateGrants(grants []guestroom.Grant) error {
	for _, g := range grants {
		if slices.Contains(DaemonNames(), g.Door.Name) {
			return fmt.Errorf("%w: door %q is a daemon name; ask for its door (--net, --keeper, --scout)", ErrBadPlan, g.Door.Name)
		}
	}
	return nil
}

// compact renders JSON on one line, for the environment.
func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return strings.TrimSpace(string(b))
	}
	return buf.String()
}
