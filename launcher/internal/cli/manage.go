package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/bounded-systems/claude-box/launcher/internal/doors"
	"github.com/bounded-systems/claude-box/launcher/internal/engine"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// services lists the door daemons as user services under env.
func services(env Env) []doors.Service {
	cs := controlSockets(env.Getenv, "")
	home := env.Getenv("HOME")
	cfg := env.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		cfg = filepath.Join(home, ".config")
	}
	var out []doors.Service
	for _, d := range plan.DaemonNames() {
		out = append(out, doors.Service{Daemon: d, Socket: cs.For(d), Home: home, ConfigHome: cfg})
	}
	return out
}

func doorsCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name: "doors", Usage: "install, start, stop and inspect the door daemons (netd, keeperd, scoutd)",
		UsageText: "claude-box doors init|status|start|stop|logs\n\nExamples:\n  claude-box doors init    # systemd user units under ~/.config/systemd/user\n  claude-box doors start   # systemctl --user, or detached with pid files\n  claude-box doors status  # running, socket, version, live launches, policy",
		Commands: []*ucli.Command{
			{Name: "init", Usage: "write systemd user units pointing at the installed daemons",
				UsageText: "claude-box doors init\n\nWrites claude-box-netd, -keeperd and -scoutd.service under ${XDG_CONFIG_HOME:-~/.config}/systemd/user, each running the daemon found on PATH on its control socket.\n\n" +
					"Examples:\n  claude-box doors init && claude-box doors start\n  systemctl --user cat claude-box-netd.service   # what was written",
				Action: func(ctx context.Context, c *ucli.Command) error {
					return doors.Init(services(env), env.Stdout)
				}},
			{Name: "start", Usage: "start the daemons and wait until they answer",
				UsageText: "claude-box doors start\n\nStarts the daemons with systemctl --user where there is a user manager, else detached with pid files under ~/.claude-box/run.\n\n" +
					"Examples:\n  claude-box doors start\n  claude-box doors start && claude-box doors status",
				Action: func(ctx context.Context, c *ucli.Command) error {
					return doors.Start(ctx, services(env), doors.ExecRunner, env.Stdout)
				}},
			{Name: "stop", Usage: "stop the daemons",
				UsageText: "claude-box doors stop\n\nStops the daemons (with systemctl --user, or by their pid files); the doors they minted stop answering.\n\n" +
					"Examples:\n  claude-box doors stop\n  claude-box doors stop && claude-box doors start   # after changing a policy",
				Action: func(ctx context.Context, c *ucli.Command) error {
					return doors.Stop(ctx, services(env), doors.ExecRunner, env.Stdout)
				}},
			logsCommand(env),
			{Name: "status", Usage: "report each daemon from its control socket",
				UsageText: "claude-box doors status\n\nAsks each daemon's control socket for its version, uptime, policy and live launches; exits 1 when one is not running.\n\n" +
					"Examples:\n  claude-box doors status\n  claude-box doors status || claude-box doors start",
				Action: func(ctx context.Context, c *ucli.Command) error {
					down := 0
					for _, s := range services(env) {
						st := doors.GetStatus(ctx, s)
						printStatus(env, st)
						if !st.Running {
							down++
						}
					}
					if down > 0 {
						return &ExitError{Code: 1}
					}
					return nil
				}},
		},
	}
}

const logsHelp = `claude-box doors logs [--door netd|keeperd|scoutd]… [--launch ID] [--account NAME] [--denied] [-n N] [--json]

Shows the newest N (default 200) audit records of the door daemons, merged
into one timeline: audit, audit_suppressed and tunnel_closed records, and the
daemons' own warnings and errors. Each log is read from its end (a detached
daemon's ~/.claude-box/log/DAEMON.log, else its systemd journal), in bounded
memory whatever its size. Every field is escaped for the terminal: what a box
sent cannot move the cursor or recolour it. Lines that are not JSON (a crash's
stack trace) are shown, escaped, when no filter is set.
--json prints the matching lines unchanged (JSON Lines, for jq; JSON escapes
C0 controls but not C1 controls or bidi overrides, so do not cat it).

Examples:
  claude-box doors logs --denied                 # what was refused, newest 200
  claude-box doors logs --launch l-7f3a -n 50    # one launch
  claude-box doors logs --door netd --json | jq 'select(.msg == "tunnel_closed")'`

func logsCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name: "logs", Usage: "show the daemons' recent audit records, filtered and escaped",
		UsageText: logsHelp,
		OnUsageError: func(_ context.Context, _ *ucli.Command, err error, _ bool) error {
			return fmt.Errorf("%w: doors logs: %w", ErrUsage, err)
		},
		Flags: []ucli.Flag{
			&ucli.StringSliceFlag{Name: "door", Usage: "only this daemon's log: netd, keeperd or scoutd (repeatable; default all three)"},
			&ucli.StringFlag{Name: "launch", Usage: "only records of launch `ID`"},
			&ucli.StringFlag{Name: "account", Usage: "only records of account `NAME`"},
			&ucli.BoolFlag{Name: "denied", Usage: "only refusals (allow=false, and refusals counted in audit_suppressed)"},
			&ucli.IntFlag{Name: "n", Value: doors.DefaultLogRecords, Usage: "show the newest `N` matching records"},
			&ucli.BoolFlag{Name: "json", Usage: "print the matching lines unchanged (JSON Lines)"},
		},
		Action: func(ctx context.Context, c *ucli.Command) error {
			if c.Args().Present() {
				return fmt.Errorf("%w: doors logs takes no arguments, got %q", ErrUsage, c.Args().First())
			}
			n := c.Int("n")
			if n < 1 {
				return fmt.Errorf("%w: doors logs: -n must be at least 1, got %d", ErrUsage, n)
			}
			picked := c.StringSlice("door")
			for _, d := range picked {
				if !slices.Contains(plan.DaemonNames(), d) {
					return fmt.Errorf("%w: doors logs: unknown --door %q (valid: %s)", ErrUsage, d, strings.Join(plan.DaemonNames(), ", "))
				}
			}
			var svcs []doors.Service
			for _, s := range services(env) {
				if len(picked) == 0 || slices.Contains(picked, s.Daemon) {
					svcs = append(svcs, s)
				}
			}
			asJSON := c.Bool("json")
			q := doors.LogQuery{N: n, Launch: c.String("launch"), Account: c.String("account"), Denied: c.Bool("denied"), SkipText: asJSON}
			tail, err := doors.TailLogs(ctx, svcs, doors.ExecRunner, q)
			for _, note := range tail.Notes {
				fmt.Fprintf(env.Stderr, "claude-box: %s\n", doors.Printable(note, 1000))
			}
			write := doors.WriteLogs
			if asJSON {
				write = doors.WriteLogsJSON
			}
			if len(tail.Records) == 0 {
				fmt.Fprintln(env.Stderr, "claude-box: no matching records")
			} else if werr := write(env.Stdout, tail.Records); werr != nil {
				return werr
			}
			if err == nil {
				return nil
			}
			// Each log that could not be read, on a line of its own.
			errs := []error{err}
			var joined interface{ Unwrap() []error }
			if errors.As(err, &joined) {
				errs = joined.Unwrap()
			}
			for _, e := range errs {
				fmt.Fprintf(env.Stderr, "claude-box: doors logs: %s\n", doors.Printable(e.Error(), 1000))
			}
			return &ExitError{Code: 1}
		},
	}
}

func printStatus(env Env, st doors.Status) {
	if !st.Running {
		fmt.Fprintf(env.Stdout, "%s: not running (%v)\n  socket: %s\n  start: claude-box doors start (or nix run .#%s -- serve)\n", st.Daemon, st.Err, st.Socket, st.Daemon)
		return
	}
	fmt.Fprintf(env.Stdout, "%s: running %s, up %s\n  socket: %s\n  policy: %s\n  live launches: %d\n",
		st.Daemon, st.Version, st.Uptime.Round(1e9), st.Socket, st.Policy, len(st.Launches))
	for _, l := range st.Launches {
		var cv []string
		for _, c := range l.GetCaveats() {
			cv = append(cv, c.GetKey()+"="+c.GetValue())
		}
		fmt.Fprintf(env.Stdout, "    %s account=%s door=%s caveats=[%s]\n", l.GetLaunchId(), l.GetAccount(), l.GetDoorId(), strings.Join(cv, " "))
	}
}

func doctorCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name: "doctor", Usage: "check podman, the image and its pin, the doors, and stale boxes",
		UsageText: "claude-box doctor\n\nChecks podman and its process ceiling, the image against its pin, boxes still running an older image, and each door daemon.\n" +
			"Prints one ok or FAIL line per check, with a hint for each failure; exits 1 when any check fails.\n\n" +
			"Examples:\n  claude-box doctor\n  CLAUDE_BOX_IMAGE=localhost/claude-box:next claude-box doctor   # check another image",
		Action: func(ctx context.Context, c *ucli.Command) error {
			bad := 0
			fail := func(format string, a ...any) { bad++; fmt.Fprintf(env.Stdout, "FAIL "+format+"\n", a...) }
			ok := func(format string, a ...any) { fmt.Fprintf(env.Stdout, "ok   "+format+"\n", a...) }
			eng, err := env.Connect(ctx, env.Getenv)
			var img engine.Image
			if err != nil {
				fail("podman: %v\n     hint: %s", err, hintFor(env.Getenv("CONTAINER_HOST")))
			} else if info, err := eng.Info(ctx); err != nil {
				fail("podman at %s: %v", eng.URI(), err)
			} else {
				ok("podman %s at %s (rootless=%v, cgroups %s)", info.Version, eng.URI(), info.Rootless, info.Cgroups)
				if info.Rootless {
					if byRlimit, err := rlimitCeiling(info); err != nil {
						var he *HintedError
						hint := ""
						if errors.As(err, &he) {
							hint = he.Hint
						}
						fail("process ceiling: %v\n     hint: %s", err, hint)
					} else if byRlimit {
						ok("process ceiling: rootless podman on cgroup v1 sets no pids limit; each box's RLIMIT_NPROC is its pids limit, counted per box (its own user namespace, kernel %s)", info.Kernel)
					}
				}
				ref := imageRef("", env.Getenv)
				if img, err = eng.ResolveImage(ctx, ref); err != nil {
					fail("image %s: %v", ref, err)
				} else if err := checkPin(img, imagePin(env.Getenv)); err != nil {
					fail("image %s: %v", ref, err)
				} else {
					pin := imagePin(env.Getenv)
					if pin == "" {
						pin = "none"
					}
					ok("image %s = %s (pin: %s)", ref, img.ID, pin)
				}
				if boxes, err := eng.Boxes(ctx); err != nil {
					fail("boxes: %v", err)
				} else {
					for _, b := range boxes {
						id := b.Image
						if !strings.HasPrefix(id, "sha256:") {
							id = "sha256:" + id
						}
						if img.ID != "" && id != img.ID {
							fail("stale box %s (%s, account %s) runs an old image %s; stop it with `podman rm -f %s`", b.Name, b.State, b.Account, b.Image, b.Name)
						} else {
							ok("box %s (%s, account %s)", b.Name, b.State, b.Account)
						}
					}
				}
			}
			for _, s := range services(env) {
				st := doors.GetStatus(ctx, s)
				if st.Running {
					ok("%s %s at %s, %d live launches", st.Daemon, st.Version, st.Socket, len(st.Launches))
				} else {
					fail("%s: %v\n     hint: claude-box doors start (or nix run .#%s -- serve)", st.Daemon, st.Err, st.Daemon)
				}
			}
			if bad > 0 {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
}
