// Package cli is the claude-box command line: the launch grammar
// (claude-box [ACCOUNT] [flags] [claude args…]) and the subcommands ls, name,
// login, doors, doctor and version. It reaches podman only through an
// engine.Engine it is handed.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/bounded-systems/claude-box/launcher/internal/accounts"
	"github.com/bounded-systems/claude-box/launcher/internal/engine"
	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// Env is everything a run gets from its process.
type Env struct {
	Getenv   func(string) string
	Stdin    *os.File
	StdinTTY bool
	Stdout   io.Writer
	Stderr   io.Writer
	Connect  engine.Connector
	Version  string
	// Signals receives the signals that cancel the run, to forward the
	// same one to the box; nil forwards SIGTERM.
	Signals <-chan os.Signal
	// SpawnReaper starts a process that removes the box if this one dies
	// before it does; nil starts none (tests).
	SpawnReaper func(uri, name string) (Reaper, error)
}

// ExitError carries an exit code; a nil Err means "exit quietly".
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code.
func (e *ExitError) ExitCode() int { return e.Code }

// HintedError is an error with a hint line saying what to do.
type HintedError struct {
	Err  error
	Hint string
}

func (e *HintedError) Error() string { return e.Err.Error() }
func (e *HintedError) Unwrap() error { return e.Err }

// Hinted attaches a hint to err.
func Hinted(err error, hint string) error { return &HintedError{Err: err, Hint: hint} }

// ExitCode maps an error from Run to the process exit code: 0 for nil, 2
// for a usage error, the box's code when it exited non-zero, 125 when the
// launch failed before the box ran.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, ErrUsage):
		return 2
	default:
		return 125
	}
}

// Message renders an error for stderr: "claude-box: …" and a hint line.
// An ExitError without an error prints nothing.
func Message(err error) string {
	var ee *ExitError
	if errors.As(err, &ee) && ee.Err == nil {
		return ""
	}
	msg := strings.TrimPrefix(err.Error(), ErrUsage.Error()+": ")
	if errors.Is(err, ErrUsage) && !strings.Contains(msg, "see claude-box --help") {
		msg += " (see claude-box --help)"
	}
	out := "claude-box: " + msg + "\n"
	var h *HintedError
	if errors.As(err, &h) && h.Hint != "" {
		out += "hint: " + h.Hint + "\n"
	}
	return out
}

// Run runs claude-box with args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if len(args) > 0 && args[0] == reapCommand {
		return reap(ctx, args[1:], env)
	}
	if slices.Contains(args, completionFlag) {
		// A completion script asking for candidates: answer, never launch.
		app := newApp(env)
		app.ShellComplete = completeTop(args)
		return app.Run(ctx, append([]string{"claude-box"}, args...))
	}
	if len(args) > 0 && (slices.Contains(Reserved, args[0]) || args[0] == "-h" || args[0] == "--help" || args[0] == "--version") {
		return newApp(env).Run(ctx, append([]string{"claude-box"}, args...))
	}
	a, err := ParseLaunch(args)
	if err != nil {
		return err
	}
	if a.Help {
		return newApp(env).Run(ctx, []string{"claude-box", "--help"})
	}
	return launch(ctx, a, env)
}

const rootHelp = `claude-box [ACCOUNT] [flags] [claude args…]

Runs Claude Code in a hardened podman box for ACCOUNT (default "personal";
^[A-Za-z0-9._-]+$). The box has no network, no credentials and no host files
except what you grant: each door is a socket to a host daemon that holds the
real authority and enforces its policy. Flags claude-box does not know go to
claude in order; "--" hands everything after it to claude.

Examples:
  claude-box                                  # personal account, no doors, no network
  claude-box work --resume                    # resume in the work account
  claude-box --repo . --room dev              # edit this repo; commit, fetch and egress through doors
  claude-box --repo . --writable src --keeper # only src/ writable; commits through keeper
  claude-box --net --door scout:host=github.com
  claude-box work -- --help                   # claude's own help
  claude-box login work                       # first /login for the work account
  claude-box doors init && claude-box doors start
  claude-box ls; claude-box name work "Acme day job"`

func newApp(env Env) *ucli.Command {
	flags := make([]ucli.Flag, 0, len(launchFlags))
	for _, f := range launchFlags {
		if f.kind == boolFlag {
			flags = append(flags, &ucli.BoolFlag{Name: f.name, Usage: f.usage})
		} else {
			flags = append(flags, &ucli.StringFlag{Name: f.name, Usage: f.usage})
		}
	}
	root := &ucli.Command{
		Name:                            "claude-box",
		Usage:                           "Claude Code in a box, with doors",
		UsageText:                       rootHelp,
		Version:                         env.Version,
		Writer:                          env.Stdout,
		ErrWriter:                       env.Stderr,
		EnableShellCompletion:           true,
		HideHelpCommand:                 false,
		Flags:                           flags,
		ConfigureShellCompletionCommand: completionHelp,
		Action: func(ctx context.Context, c *ucli.Command) error {
			return ucli.ShowRootCommandHelp(c)
		},
		// Exit codes are main's business: urfave must not print or exit.
		ExitErrHandler: func(context.Context, *ucli.Command, error) {},
		OnUsageError: func(_ context.Context, _ *ucli.Command, err error, _ bool) error {
			return fmt.Errorf("%w: %w", ErrUsage, err)
		},
		Commands: []*ucli.Command{
			lsCommand(env), nameCommand(env), loginCommand(env), doorsCommand(env), doctorCommand(env),
			{
				Name: "version", Usage: "print the version",
				UsageText: "claude-box version\n\nPrints the launcher's version and, when the binary was built with one, the image digest it pins.\n\n" +
					"Examples:\n  claude-box version\n  claude-box --version",
				Action: func(context.Context, *ucli.Command) error {
					fmt.Fprintf(env.Stdout, "claude-box %s\n", env.Version)
					if plan.PinnedDigest != "" {
						fmt.Fprintf(env.Stdout, "image pin %s\n", plan.PinnedDigest)
					}
					return nil
				},
			},
		},
	}
	usageErrors(root.Commands, "claude-box")
	return root
}

// usageErrors makes a bad flag or argument of every subcommand a usage
// error (exit 2), as on the root: urfave does not pass OnUsageError down.
func usageErrors(cmds []*ucli.Command, parent string) {
	for _, c := range cmds {
		name := parent + " " + c.Name
		if c.OnUsageError == nil {
			c.OnUsageError = func(_ context.Context, _ *ucli.Command, err error, _ bool) error {
				return fmt.Errorf("%w: %s: %w", ErrUsage, name, err)
			}
		}
		usageErrors(c.Commands, name)
	}
}

func lsCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name: "ls", Usage: "list accounts (config volumes and labels)",
		UsageText: "claude-box ls\n\nPrints one account per line with its label: the union of claude-<account>-config volumes and ~/.config/claude-box/accounts.json.\n\n" +
			"Examples:\n  claude-box ls                 # every account, with its label\n  claude-box ls | cut -f1       # account names only",
		Action: func(ctx context.Context, c *ucli.Command) error {
			path, err := accounts.Path(env.Getenv)
			if err != nil {
				return err
			}
			labels, err := accounts.Load(path)
			if err != nil {
				return err
			}
			var vols []string
			if eng, err := env.Connect(ctx, env.Getenv); err != nil {
				fmt.Fprintf(env.Stderr, "claude-box: warning: listing labels only: %v\n", err)
			} else if names, err := eng.Volumes(ctx); err != nil {
				fmt.Fprintf(env.Stderr, "claude-box: warning: listing labels only: %v\n", err)
			} else {
				for _, n := range names {
					if a, ok := plan.AccountFromVolume(n); ok {
						vols = append(vols, a)
					}
				}
			}
			for _, r := range accounts.Union(vols, labels) {
				if r.Desc != "" {
					fmt.Fprintf(env.Stdout, "%s\t%s\n", r.Account, r.Desc)
				} else {
					fmt.Fprintln(env.Stdout, r.Account)
				}
			}
			return nil
		},
	}
}

func nameCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name: "name", Usage: "label an account", ArgsUsage: "ACCOUNT LABEL…",
		UsageText: "claude-box name ACCOUNT LABEL…\n\nLabels ACCOUNT in ~/.config/claude-box/accounts.json; claude-box ls shows the label.\n\n" +
			"Examples:\n  claude-box name work \"Acme day job\"\n  claude-box name personal side projects",
		Action: func(ctx context.Context, c *ucli.Command) error {
			args := c.Args().Slice()
			if len(args) < 2 {
				return fmt.Errorf("%w: name needs ACCOUNT and a LABEL", ErrUsage)
			}
			if err := plan.ValidateAccount(args[0]); err != nil {
				return fmt.Errorf("%w: %w", ErrUsage, err)
			}
			if slices.Contains(Reserved, args[0]) {
				return fmt.Errorf("%w: %q is a subcommand, not an account", ErrUsage, args[0])
			}
			path, err := accounts.Path(env.Getenv)
			if err != nil {
				return err
			}
			return accounts.Set(path, args[0], strings.Join(args[1:], " "))
		},
	}
}

func loginCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name: "login", Usage: "open a box for the first /login of an account", ArgsUsage: "[ACCOUNT]",
		UsageText: "claude-box login [ACCOUNT]\n\nRuns claude in ACCOUNT's box (default \"" + plan.DefaultAccount + "\") with only the net door, so its first /login can reach Anthropic.\n" +
			"Its net door is minted with netd's `login` profile for this launch only.\n\n" +
			"Examples:\n  claude-box login          # the personal account\n  claude-box login work     # then run /login inside, once",
		SkipFlagParsing: true,
		// ACCOUNT is the user's to name: urfave's default would offer the
		// help command as one.
		ShellComplete: func(context.Context, *ucli.Command) {},
		Action: func(ctx context.Context, c *ucli.Command) error {
			args := c.Args().Slice()
			if slices.Contains(args, "-h") || slices.Contains(args, "--help") {
				return ucli.ShowSubcommandHelp(c)
			}
			a := LaunchArgs{Account: plan.DefaultAccount, Net: true, Profiles: []string{"login"}}
			if len(args) > 1 {
				return fmt.Errorf("%w: login takes at most one ACCOUNT", ErrUsage)
			}
			if len(args) == 1 {
				acct := args[0]
				if strings.HasPrefix(acct, "-") {
					return fmt.Errorf("%w: login takes no flags, got %q: it opens a box with only the net door", ErrUsage, acct)
				}
				if err := plan.ValidateAccount(acct); err != nil {
					return fmt.Errorf("%w: %w", ErrUsage, err)
				}
				if slices.Contains(Reserved, acct) {
					return fmt.Errorf("%w: %q is a subcommand, not an account", ErrUsage, acct)
				}
				a.Account = acct
			}
			return launch(ctx, a, env)
		},
	}
}

// completionFlag is the word urfave's completion scripts append to ask for
// candidates: `claude-box WORDS… --generate-shell-completion`.
const completionFlag = "--generate-shell-completion"

// completeTop answers a completion request at the top level from the
// request's own words (urfave's default reads os.Args there): the
// subcommands for the first word, the launch flags for a word that starts
// with "-", and nothing after an account or "--", where claude's arguments
// follow.
func completeTop(args []string) ucli.ShellCompleteFunc {
	return func(_ context.Context, c *ucli.Command) {
		words := args
		if n := len(words); n > 0 && words[n-1] == completionFlag {
			words = words[:n-1]
		}
		// "--" as the word being completed still completes flags.
		if i := slices.Index(words, "--"); i >= 0 && i < len(words)-1 {
			return
		}
		w := c.Root().Writer
		if len(words) == 0 {
			for _, sub := range c.VisibleCommands() {
				fmt.Fprintf(w, "%s:%s\n", sub.Name, sub.Usage)
			}
			return
		}
		cur := words[len(words)-1]
		if !strings.HasPrefix(cur, "-") {
			return
		}
		for _, f := range c.VisibleFlags() {
			usage := ""
			if u, ok := f.(interface{ GetUsage() string }); ok {
				usage = u.GetUsage()
			}
			for _, name := range f.Names() {
				if len(name) < 2 {
					continue
				}
				if long := "--" + name; strings.HasPrefix(long, cur) && long != cur {
					fmt.Fprintf(w, "%s:%s\n", long, usage)
				}
			}
		}
	}
}

// completionExample is how a shell's completion script is installed.
func completionExample(shell string) string {
	switch shell {
	case "bash":
		return "source <(claude-box completion bash)    # in ~/.bashrc"
	case "zsh":
		return "source <(claude-box completion zsh)     # in ~/.zshrc"
	case "fish":
		return "claude-box completion fish > ~/.config/fish/completions/claude-box.fish"
	case "pwsh":
		return "claude-box completion pwsh > claude-box.ps1   # and dot-source it from $PROFILE"
	}
	return "claude-box completion " + shell
}

// completionHelp gives urfave's completion command and its shells usage
// examples, as every other command has.
func completionHelp(c *ucli.Command) {
	c.UsageText = "claude-box completion bash|zsh|fish|pwsh\n\nExamples:"
	for _, sh := range c.Commands {
		ex := completionExample(sh.Name)
		c.UsageText += "\n  " + ex
		sh.UsageText = "claude-box completion " + sh.Name + "\n\nExamples:\n  " + ex
	}
}
