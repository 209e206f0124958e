// Package cli implements keeperd's host-side subcommands (serve, pubkey,
// verify, status, version): it parses flags, loads the policy and key, and
// wires the keeper domain, the gRPC adapter and the door runtime together.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/keeperd/internal/keeper"
	"github.com/bounded-systems/claude-box/keeperd/internal/server"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
	"golang.org/x/crypto/ssh"
)

// EnvSocket overrides the default control socket.
const EnvSocket = "KEEPERD_SOCK"

const usage = `usage: keeperd <command> [flags]

commands:
  serve    run the host daemon (control socket, minted doors, policy, key)
  pubkey   print the signing public key (--allowed-signers EMAIL for git)
  verify   check a commit's signature and its claude-box note
  status   show a running keeperd's launches, policy summary and counters
  version  print the version

run 'keeperd <command> -h' for its flags`

var errUsage = errors.New("usage")

// Run runs one keeperd command.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "pubkey":
		return pubkey(rest, stdout, stderr)
	case "verify":
		return verify(rest, stdout, stderr)
	case "status":
		return statusCmd(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "keeperd", Version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// Version is the module version keeperd was built at, or "devel".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("keeperd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) (bool, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, nil
		}
		return false, fmt.Errorf("%w: %w", errUsage, err)
	}
	return true, nil
}

func home() string {
	h, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "claude-box")
	}
	return h
}

// defaultSocket is $KEEPERD_SOCK, else ~/.claude-box/run/keeperd.sock.
func defaultSocket() string {
	if s := os.Getenv(EnvSocket); s != "" {
		return s
	}
	return filepath.Join(home(), ".claude-box", "run", "keeperd.sock")
}

func defaultKey() string { return filepath.Join(home(), ".claude-box", "keeper", "id_ed25519") }

func defaultPolicy() string { return filepath.Join(home(), ".claude-box", "keeper", "policy.json") }

// loadPolicy reads the named policy; with no name, the default file if it
// exists, else a policy that denies everything.
func loadPolicy(path string, log *slog.Logger) (*keeper.Policy, string, error) {
	if path == "" {
		if _, err := os.Stat(defaultPolicy()); err != nil {
			log.Warn("no policy file: every door mint and request is denied", slog.String("want", defaultPolicy()))
			return keeper.DenyAll(), "(deny all)", nil
		}
		path = defaultPolicy()
	}
	p, err := keeper.LoadPolicy(path)
	return p, path, err
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	sock := fs.String("socket", defaultSocket(), "control socket `PATH` (env "+EnvSocket+")")
	doorPath := fs.String("door", "", "also serve a standing door at `PATH` bound to --repo")
	repo := fs.String("repo", "", "host `PATH` of the worktree the standing door is bound to")
	doorsDir := fs.String("doors-dir", "", "`DIR` for minted launch sockets (default: keeperd.doors beside the control socket)")
	policyPath := fs.String("policy", "", "versioned JSON policy `FILE` (default ~/.claude-box/keeper/policy.json; none: deny all; re-read on SIGHUP)")
	keyPath := fs.String("key", "", "ed25519 OpenSSH private key `FILE` (default ~/.claude-box/keeper/id_ed25519, created on first start)")
	level := fs.String("log-level", "info", "log level (debug, info, warn, error)")
	if ok, err := parse(fs, args); !ok {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", errUsage, fs.Args())
	}
	if (*doorPath == "") != (*repo == "") {
		return fmt.Errorf("%w: --door and --repo go together", errUsage)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("%w: --log-level %q", errUsage, *level)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lv}))
	pol, polName, err := loadPolicy(*policyPath, log)
	if err != nil {
		return err
	}
	key, err := loadKey(*keyPath)
	if err != nil {
		return err
	}
	k, err := keeper.New(keeper.Config{Policy: pol, Key: key, Logger: log, Getenv: os.Getenv})
	if err != nil {
		return err
	}
	srv := server.New(k, log)
	dir := *doorsDir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(*sock), "keeperd.doors")
	}
	m, err := door.NewMinter(door.MinterConfig{
		Door: server.DoorName, Version: Version(), Dir: dir, Logger: log,
		Register: srv.Register, Validate: srv.Validate,
		PolicySummary: srv.PolicySummary, Counters: srv.Counters, OnRevoke: srv.OnRevoke,
		Informational: server.Informational(),
	})
	if err != nil {
		return err
	}
	// SIGHUP re-reads the policy; caught before anything listens, so it can
	// never kill a serving keeperd.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	control, err := door.ServeControl(m, *sock, log)
	if err != nil {
		return err
	}
	served := control.Done()
	shutdown := func() { control.Shutdown(5 * time.Second) }
	if *doorPath != "" {
		abs, err := filepath.Abs(*repo)
		if err != nil {
			shutdown()
			return fmt.Errorf("--repo: %w", err)
		}
		b := door.Binding{Account: "default", LaunchID: door.StandingDoorID, Bindings: map[string]string{server.BindingRepo: abs}}
		if err := m.Standing(*doorPath, b); err != nil {
			shutdown()
			return fmt.Errorf("standing door: %w", err)
		}
	}
	log.Info("keeperd serving", slog.String("socket", *sock), slog.String("door", *doorPath), slog.String("repo", *repo),
		slog.String("doors_dir", dir), slog.String("policy", polName), slog.String("key", key.String()))
	for {
		select {
		case <-ctx.Done():
			shutdown()
			log.Info("keeperd stopped")
			return nil
		case err := <-served:
			shutdown()
			return fmt.Errorf("control socket: %w", err)
		case <-hup:
			p, name, err := loadPolicy(*policyPath, log)
			if err != nil {
				log.Error("policy reload refused; keeping the current policy", slog.String("error", err.Error()))
				continue
			}
			k.SetPolicy(p)
			log.Info("policy reloaded", slog.String("policy", name), slog.String("summary", srv.PolicySummary()))
		}
	}
}

func loadKey(path string) (*keeper.Key, error) {
	if path != "" {
		return keeper.LoadKey(path)
	}
	return keeper.LoadOrCreateKey(defaultKey(), true)
}

func pubkey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pubkey", stderr)
	keyPath := fs.String("key", "", "private key `FILE` (default ~/.claude-box/keeper/id_ed25519, created if missing)")
	email := fs.String("allowed-signers", "", "print a gpg.ssh.allowedSignersFile line for `EMAIL`")
	if ok, err := parse(fs, args); !ok {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: pubkey takes no arguments", errUsage)
	}
	key, err := loadKey(*keyPath)
	if err != nil {
		return err
	}
	if *email != "" {
		if strings.ContainsAny(*email, " \t\n\"") {
			return fmt.Errorf("%w: --allowed-signers %q is not an address", errUsage, *email)
		}
		fmt.Fprintf(stdout, "%s namespaces=\"git\" %s\n", *email, key.AuthorizedKey(""))
		return nil
	}
	fmt.Fprintln(stdout, key.AuthorizedKey("keeperd"))
	return nil
}

func verify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	keyPath := fs.String("key", "", "private key `FILE` whose public half is trusted (default ~/.claude-box/keeper/id_ed25519)")
	pubPath := fs.String("pubkey", "", "trust this authorized_keys-form public key `FILE` instead of the local key")
	repo := fs.String("repo", ".", "repository `DIR`")
	optional := fs.Bool("note-optional", false, "accept a commit without a claude-box note")
	if ok, err := parse(fs, args); !ok {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: verify takes one COMMIT", errUsage)
	}
	var trusted ssh.PublicKey
	if *pubPath != "" {
		b, err := os.ReadFile(*pubPath)
		if err != nil {
			return fmt.Errorf("--pubkey: %w", err)
		}
		trusted, _, _, _, err = ssh.ParseAuthorizedKey(b)
		if err != nil {
			return fmt.Errorf("--pubkey %s: %w", *pubPath, err)
		}
	} else {
		p := *keyPath
		if p == "" {
			p = defaultKey()
		}
		key, err := keeper.LoadKey(p)
		if err != nil {
			return err
		}
		trusted = key.PublicKey()
	}
	v, err := keeper.VerifyCommit(*repo, fs.Arg(0), trusted, !*optional)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "commit %s: good signature by %s\n", v.Commit, v.Signer)
	if s := v.Statement; s != nil {
		fmt.Fprintf(stdout, "note: good signature; made on %s by launch %s, account %s, manifest %s, at %s\n",
			s.Branch, s.Launch, s.Account, s.Manifest, time.Unix(s.Time, 0).UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintln(stdout, "note: none")
	}
	return nil
}

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	sock := fs.String("socket", defaultSocket(), "control socket `PATH` (env "+EnvSocket+")")
	if ok, err := parse(fs, args); !ok {
		return err
	}
	cc, err := door.Dial(*sock)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := doorv1.NewControlServiceClient(cc).GetStatus(ctx, &doorv1.GetStatusRequest{})
	if err != nil {
		return fmt.Errorf("%w\nhint: start it with 'keeperd serve' (socket %s)", door.Unavailable(*sock, err), *sock)
	}
	fmt.Fprintf(stdout, "door %s, version %s, up %s\npolicy: %s\nlaunches: %d\n", st.GetDoor(), st.GetVersion(),
		st.GetUptime().AsDuration().Round(time.Second), st.GetPolicySummary(), len(st.GetLaunches()))
	for _, l := range st.GetLaunches() {
		fmt.Fprintf(stdout, "  %s account=%s door=%s socket=%s\n", l.GetLaunchId(), l.GetAccount(), l.GetDoorId(), l.GetSocketPath())
	}
	for _, k := range []string{"commits", "pushes", "signs", "denials", "failures"} {
		fmt.Fprintf(stdout, "  %s %d\n", k, st.GetCounters()[k])
	}
	return nil
}
