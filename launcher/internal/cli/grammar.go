package cli

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// Reserved are the subcommand names: they can never name an account.
var Reserved = []string{"ls", "name", "login", "doors", "doctor", "version", "help", "completion"}

// LaunchArgs is a parsed launch: claude-box [ACCOUNT] [flags] [claude args…].
type LaunchArgs struct {
	Account  string
	Net      bool
	Keeper   bool
	Scout    bool
	NetOpen  bool
	Rooms    []string
	Doors    []string
	Profiles []string
	Repo     string
	Writable []string
	RepoRW   bool
	Image    string
	RunDir   string
	Pids     int64
	DryRun   bool
	Help     bool
	// Claude holds every argument claude-box does not own, in order.
	Claude []string
}

// profileRE is what a netd profile name looks like; netd decides which exist.
var profileRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ErrUsage reports a command line that does not parse; it exits 2.
var ErrUsage = errors.New("usage")

// flagKind says how a launch flag takes its value.
type flagKind int

const (
	boolFlag flagKind = iota
	valueFlag
)

// launchFlag is one flag of the launch grammar.
type launchFlag struct {
	name  string
	kind  flagKind
	usage string
	set   func(a *LaunchArgs, v string) error
}

func setBool(p func(a *LaunchArgs) *bool) func(*LaunchArgs, string) error {
	return func(a *LaunchArgs, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, not %q", v)
		}
		*p(a) = b
		return nil
	}
}

// launchFlags is the launch grammar's flag table; the help text is made
// from it too.
var launchFlags = []launchFlag{
	{"net", boolFlag, "grant the net door: policed egress through netd (proxy env set)", setBool(func(a *LaunchArgs) *bool { return &a.Net })},
	{"keeper", boolFlag, "grant the keeper door: signed commits and pushes through keeperd", setBool(func(a *LaunchArgs) *bool { return &a.Keeper })},
	{"scout", boolFlag, "grant the scout door: read-only fetches through scoutd", setBool(func(a *LaunchArgs) *bool { return &a.Scout })},
	{"room", valueFlag, "grant a room of doors: tool (none), read (scout), dev (keeper, net, scout); repeatable", func(a *LaunchArgs, v string) error { a.Rooms = append(a.Rooms, v); return nil }},
	{"door", valueFlag, "grant a door by spec NAME[:key=value…][@/host/control.sock]; repeatable", func(a *LaunchArgs, v string) error { a.Doors = append(a.Doors, v); return nil }},
	{"profile", valueFlag, "widen the net door for this launch by a netd profile (login, github-read, npm, pypi); repeatable", func(a *LaunchArgs, v string) error {
		if !profileRE.MatchString(v) {
			return fmt.Errorf("profile %q must match %s", v, profileRE)
		}
		a.Profiles = append(a.Profiles, v)
		return nil
	}},
	{"net-open", boolFlag, "UNSAFE: give the box podman's ambient network (no policy, no audit)", setBool(func(a *LaunchArgs) *bool { return &a.NetOpen })},
	{"repo", valueFlag, "mount this git worktree read-write at /work (its .git read-only)", func(a *LaunchArgs, v string) error { a.Repo = v; return nil }},
	{"writable", valueFlag, "make only this subtree of --repo writable (the rest of /work read-only); repeatable", func(a *LaunchArgs, v string) error { a.Writable = append(a.Writable, v); return nil }},
	{"repo-rw", boolFlag, "UNSAFE: mount the repo's .git read-write too", setBool(func(a *LaunchArgs) *bool { return &a.RepoRW })},
	{"image", valueFlag, "image to run (default $CLAUDE_BOX_IMAGE or " + plan.DefaultImage + ")", func(a *LaunchArgs, v string) error { a.Image = v; return nil }},
	{"run-dir", valueFlag, "directory of the door daemons' control sockets (default $CLAUDE_BOX_RUN_DIR or ~/.claude-box/run)", func(a *LaunchArgs, v string) error { a.RunDir = v; return nil }},
	{"pids-limit", valueFlag, "maximum number of processes in the box (default 1024)", func(a *LaunchArgs, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive number, not %q", v)
		}
		a.Pids = n
		return nil
	}},
	{"dry-run", boolFlag, "print the planned box (spec, rulebook, manifest) as JSON and exit; mints nothing", setBool(func(a *LaunchArgs) *bool { return &a.DryRun })},
}

func findFlag(name string) (launchFlag, bool) {
	i := slices.IndexFunc(launchFlags, func(f launchFlag) bool { return f.name == name })
	if i < 0 {
		return launchFlag{}, false
	}
	return launchFlags[i], true
}

// ParseLaunch parses a launch command line (without the program name).
// The first argument names the account unless it starts with '-'. A flag
// claude-box owns is consumed wherever it appears before `--`; every other
// argument goes to claude in order; `--` hands everything after it to claude.
func ParseLaunch(args []string) (LaunchArgs, error) {
	a := LaunchArgs{Account: plan.DefaultAccount}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if slices.Contains(Reserved, args[0]) {
			return a, fmt.Errorf("%w: %q is a subcommand, not an account", ErrUsage, args[0])
		}
		if err := plan.ValidateAccount(args[0]); err != nil {
			return a, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		a.Account = args[0]
		args = args[1:]
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			a.Claude = append(a.Claude, args[i+1:]...)
			break
		}
		if arg == "-h" || arg == "--help" {
			a.Help = true
			continue
		}
		if !strings.HasPrefix(arg, "--") {
			a.Claude = append(a.Claude, arg)
			continue
		}
		name, val, hasVal := strings.Cut(arg[2:], "=")
		f, ok := findFlag(name)
		if !ok {
			a.Claude = append(a.Claude, arg)
			continue
		}
		switch f.kind {
		case boolFlag:
			if !hasVal {
				val = "true"
			}
		case valueFlag:
			if !hasVal {
				if i+1 >= len(args) {
					return a, fmt.Errorf("%w: --%s needs a value", ErrUsage, name)
				}
				i++
				val = args[i]
			}
		}
		if err := f.set(&a, val); err != nil {
			return a, fmt.Errorf("%w: --%s: %w", ErrUsage, name, err)
		}
	}
	return a, nil
}
