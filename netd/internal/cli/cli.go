// Package cli implements netd's subcommands (serve, relay, check, status,
// version): it parses flags, wires the egress engine, the gRPC adapter, the
// door runtime and the relay together, and reports in plain text.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// Environment variables.
const (
	// EnvSocket overrides the default control socket.
	EnvSocket = "NETD_SOCK"
	// DefaultDoor is where the launcher mounts the net door in a box.
	DefaultDoor = "/run/doors/netd.sock"
	// DefaultListen is the relay's address in a box.
	DefaultListen = "127.0.0.1:3128"
)

const usage = `usage: netd <command> [flags]

commands:
  serve    run the host daemon (control socket, minted doors, policy)
  relay    run the in-box HTTP proxy that carries connections to a net door
  check    explain the decision netd would make for HOST[:PORT] or a URL
  status   show a running netd's launches, policy summary and counters
  version  print the version

run 'netd <command> -h' for its flags`

// errUsage reports a command line that does not parse.
var errUsage = errors.New("usage")

// Run runs one netd command.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "relay":
		return relayCmd(ctx, rest, stdout, stderr)
	case "check":
		return check(ctx, rest, stdout, stderr)
	case "status":
		return statusCmd(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "netd", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// version is the module version netd was built at, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("netd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses fs, turning -h into a nil-error exit signal.
func parse(fs *flag.FlagSet, args []string) (bool, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, nil
		}
		return false, fmt.Errorf("%w: %w", errUsage, err)
	}
	return true, nil
}

// defaultSocket is $NETD_SOCK, else ~/.claude-box/run/netd.sock.
func defaultSocket() string {
	if s := os.Getenv(EnvSocket); s != "" {
		return s
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "claude-box", "run", "netd.sock")
	}
	return filepath.Join(home, ".claude-box", "run", "netd.sock")
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q", errUsage, level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// policyFlags are the policy flags serve and check share.
type policyFlags struct {
	config                                string
	allow, profile, resolve, allowPrivate listFlag
}

func (p *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.config, "config", "", "versioned JSON config `FILE` (strict; re-read on SIGHUP)")
	fs.Var(&p.allow, "allow", "comma-separated allowlist `ENTRIES` (host, .domain, optional :port); repeatable")
	fs.Var(&p.profile, "profile", "named profile `NAME` to add (default, login, github-read, npm, pypi); repeatable")
	fs.Var(&p.resolve, "resolve", "static answer `HOST=IP` (like curl's --resolve); repeatable")
	fs.Var(&p.allowPrivate, "allow-private", "`CIDR` whose private/loopback/link-local addresses may be dialed; repeatable, logged loudly")
}
