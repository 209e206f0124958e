package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/egressdoor"
	"github.com/bounded-systems/claude-box/scoutd/internal/scout"
	"github.com/bounded-systems/claude-box/scoutd/internal/server"
)

// EnvSocket overrides the control socket path.
const EnvSocket = "SCOUTD_SOCK"

const usage = `usage: scoutd COMMAND [flags]

commands:
  serve     serve the scout door (control socket; --door for a standing door)
  status    ask a running scoutd (--socket) for its policy, launches and counters
  version   print the version

serve flags:
  --socket PATH          control socket (env SCOUTD_SOCK; default ~/.claude-box/run/scoutd.sock)
  --door PATH            also serve a standing, unscoped guest door at PATH
  --doors-dir DIR        directory for minted launch sockets (default scoutd.doors beside the socket)
  --config FILE          JSON config, {"version": 1, ...}; unknown keys are refused
  --allow LIST           allowlist entries: host, .domain, host:port (repeatable, comma-separated)
  --allow-http           admit plain http:// URLs
  --resolve HOST=IP      static answer for HOST (repeatable)
  --allow-private CIDR   let names resolve into this non-public prefix (repeatable)
  --github-api URL       GitHub REST base (default https://api.github.com)
  --token-file FILE      GitHub read token (else $SCOUTD_TOKEN, else $GH_TOKEN)
  --egress-door PATH     send scoutd's own traffic through this netd door
  --log-level LEVEL      debug, info, warn, error
`

// Version is the daemon's version: the module version, or "dev".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Env is what Run needs from the process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// RootCAs overrides the system pool (tests).
	RootCAs *x509.CertPool
	// Ready, when set, is called once the control socket is listening.
	Ready func(controlSocket string)
}

// Run runs scoutd with args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if len(args) == 0 {
		_, _ = io.WriteString(env.Stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], env)
	case "status":
		return status(ctx, args[1:], env)
	case "version", "--version":
		_, err := fmt.Fprintf(env.Stdout, "scoutd %s\n", Version())
		return err
	case "help", "-h", "--help":
		_, err := io.WriteString(env.Stdout, usage)
		return err
	}
	_, _ = io.WriteString(env.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func defaultSocket(getenv func(string) string) string {
	if s := getenv(EnvSocket); s != "" {
		return s
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".claude-box", "run", "scoutd.sock")
}

func serve(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { _, _ = io.WriteString(env.Stderr, usage) }
	var s Settings
	var allow, resolve, private listFlag
	sock := fs.String("socket", defaultSocket(env.Getenv), "control socket")
	doorPath := fs.String("door", "", "standing door")
	doorsDir := fs.String("doors-dir", "", "minted sockets directory")
	fs.StringVar(&s.ConfigFile, "config", "", "config file")
	fs.Var(&allow, "allow", "allowlist entries")
	fs.BoolVar(&s.AllowHTTP, "allow-http", false, "admit http://")
	fs.Var(&resolve, "resolve", "HOST=IP")
	fs.Var(&private, "allow-private", "CIDR")
	fs.StringVar(&s.GitHubAPI, "github-api", "", "GitHub REST base `URL`, https only (default https://api.github.com)")
	fs.StringVar(&s.TokenFile, "token-file", "", "token file")
	egress := fs.String("egress-door", "", "netd door for scoutd's own traffic")
	level := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	s.Allow, s.Resolve, s.AllowPrivate, s.Getenv = allow, resolve, private, env.Getenv
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: lv}))

	pol, err := Load(s)
	if err != nil {
		return err
	}
	cfg := scout.Config{
		Allow:     pol.Allow,
		AllowHTTP: pol.AllowHTTP,
		Resolver:  &dest.Static{Hosts: pol.Resolve, Next: dest.NewGoResolver()},
		Addrs:     dest.AddrPolicy{AllowPrivate: pol.AllowPrivate},
		RootCAs:   env.RootCAs,
		Limits:    pol.Limits,
		GitHubAPI: pol.GitHubAPI,
		Token:     pol.Token,
		UserAgent: "claude-box-scoutd/" + Version(),
	}
	if *egress != "" {
		cc, err := door.Dial(*egress)
		if err != nil {
			return fmt.Errorf("--egress-door: %w", err)
		}
		defer func() { _ = cc.Close() }()
		cfg.Dialer = egressdoor.New(cc, *egress)
	}
	sc, err := scout.New(cfg)
	if err != nil {
		return err
	}
	for _, pf := range pol.AllowPrivate {
		log.Warn("ALLOW-PRIVATE: scout reads may reach non-public addresses in this prefix", slog.String("prefix", pf.String()))
	}
	srv := server.New(sc, log, Version())
	dir := *doorsDir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(*sock), "scoutd.doors")
	}
	m, err := door.NewMinter(door.MinterConfig{
		Door: "scout", Version: Version(), Dir: dir, Logger: log,
		Register: srv.Register,
		// The raw fast path of `scout fetch` (unix doors only; the runtime
		// refuses raw connections on TCP doors).
		Raw: srv.Raw,
		Validate: func(b door.Binding) error {
			if len(b.Bindings) > 0 {
				return errors.New("scout door takes no bindings")
			}
			return scout.ValidateCaveats(b.Caveats)
		},
		PolicySummary: pol.Summary,
		Counters:      srv.Counters,
		Informational: server.Informational(),
	})
	if err != nil {
		return err
	}
	control, err := door.ServeControl(m, *sock, log)
	if err != nil {
		return err
	}
	served := control.Done()
	shutdown := func() { control.Shutdown(5 * time.Second) }
	if *doorPath != "" {
		if err := m.Standing(*doorPath, door.Binding{Account: "default", LaunchID: door.StandingDoorID}); err != nil {
			shutdown()
			return err
		}
	}
	log.Info("scoutd serving", slog.String("socket", *sock), slog.String("door", *doorPath),
		slog.String("doors_dir", dir), slog.String("egress_door", *egress), slog.String("policy", pol.Summary()))
	if env.Ready != nil {
		env.Ready(*sock)
	}
	select {
	case <-ctx.Done():
		shutdown()
		log.Info("scoutd stopped")
		return nil
	case err := <-served:
		shutdown()
		return fmt.Errorf("control socket: %w", err)
	}
}

// status asks the control socket for the daemon's status.
func status(ctx context.Context, args []string, env Env) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	sock := fs.String("socket", defaultSocket(env.Getenv), "control socket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cc, err := door.Dial(*sock)
	if err != nil {
		return err
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := doorv1.NewControlServiceClient(cc).GetStatus(ctx, &doorv1.GetStatusRequest{})
	if err != nil {
		return fmt.Errorf("%w\nhint: start it with `scoutd serve` (or pass --socket)", door.Unavailable(*sock, err))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "scoutd %s, up %s\npolicy: %s\n", st.GetVersion(), st.GetUptime().AsDuration().Round(time.Second), st.GetPolicySummary())
	fmt.Fprintf(&b, "launches: %d\n", len(st.GetLaunches()))
	for _, l := range st.GetLaunches() {
		var cs []string
		for _, c := range l.GetCaveats() {
			cs = append(cs, c.GetKey()+"="+c.GetValue())
		}
		fmt.Fprintf(&b, "  %s account=%s door=%s caveats=[%s]\n", l.GetLaunchId(), l.GetAccount(), l.GetDoorId(), strings.Join(cs, " "))
	}
	keys := make([]string, 0, len(st.GetCounters()))
	for k := range st.GetCounters() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s=%d\n", k, st.GetCounters()[k])
	}
	_, err = io.WriteString(env.Stdout, b.String())
	return err
}
