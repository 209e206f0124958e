package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	"github.com/bounded-systems/claude-box/netd/internal/server"
)

func serve(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var pf policyFlags
	pf.register(fs)
	sock := fs.String("socket", defaultSocket(), "control socket `PATH` (env "+EnvSocket+")")
	doorPath := fs.String("door", "", "also serve a standing, unscoped guest door at `PATH` (account default)")
	doorsDir := fs.String("doors-dir", "", "`DIR` for minted launch sockets (default: netd.doors beside the control socket)")
	maxTunnels := fs.Int("max-tunnels", server.DefaultMaxTunnels, "cap on open tunnels across all launches")
	maxPerLaunch := fs.Int("max-tunnels-per-launch", server.DefaultMaxPerLaunch, "cap on open tunnels of one launch")
	idle := fs.Duration("idle-timeout", server.DefaultIdleTimeout, "close a tunnel idle this long")
	connectTimeout := fs.Duration("connect-timeout", 10*time.Second, "upstream connect timeout (then 504)")
	level := fs.String("log-level", "info", "log level (debug, info, warn, error)")
	if ok, err := parse(fs, args); !ok {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: serve takes no arguments, got %q", errUsage, fs.Args())
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	src := egress.Source{File: pf.config, Flags: egress.Spec{Allow: pf.allow, Profiles: pf.profile, Resolve: pf.resolve, AllowPrivate: pf.allowPrivate}}
	pol, err := src.Load()
	if err != nil {
		return err
	}
	warnPrivate(log, pol)
	eng := egress.NewEngine(pol, egress.Options{ConnectTimeout: *connectTimeout})
	srv := server.New(eng, log, server.Limits{MaxTunnels: *maxTunnels, MaxPerLaunch: *maxPerLaunch, IdleTimeout: *idle})
	dir := *doorsDir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(*sock), "netd.doors")
	}
	m, err := door.NewMinter(door.MinterConfig{
		Door: server.DoorName, Version: version(), Dir: dir, Logger: log,
		Register: srv.Register, Raw: srv.Raw,
		Validate: func(b door.Binding) error {
			if err := egress.ValidateBindings(b.Bindings); err != nil {
				return err
			}
			return egress.ValidateCaveats(b.Caveats)
		},
		PolicySummary: func() string { return eng.Policy().Summary() },
		Counters:      srv.Counters,
		Informational: server.Informational(),
	})
	if err != nil {
		return err
	}
	srv.Serving(m)
	// SIGHUP is caught before anything listens, so it can never kill a serving netd.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	control, err := door.ServeControl(m, *sock, log)
	if err != nil {
		return err
	}
	served := control.Done()
	shutdown := func() {
		srv.Stopping()
		control.Shutdown(5 * time.Second)
	}
	if *doorPath != "" {
		if err := m.Standing(*doorPath, door.Binding{Account: "default", LaunchID: door.StandingDoorID}); err != nil {
			shutdown()
			return err
		}
	}
	log.Info("netd serving", slog.String("socket", *sock), slog.String("door", *doorPath),
		slog.String("doors_dir", dir), slog.String("policy", pol.Summary()))
	for {
		select {
		case <-ctx.Done():
			shutdown()
			log.Info("netd stopped")
			return nil
		case err := <-served:
			shutdown()
			return fmt.Errorf("control socket: %w", err)
		case <-hup:
			p, err := eng.Reload(src)
			if err != nil {
				log.Error("config reload refused", slog.String("error", err.Error()), slog.String("policy", p.Summary()))
				continue
			}
			warnPrivate(log, p)
			log.Info("config reloaded", slog.String("policy", p.Summary()))
		}
	}
}

// warnPrivate says, loudly, that private addresses are reachable.
func warnPrivate(log *slog.Logger, p egress.Policy) {
	for _, pfx := range p.AllowPrivate {
		log.Warn("ALLOW-PRIVATE: boxes may reach private, loopback or link-local addresses in this prefix",
			slog.String("prefix", pfx.String()))
	}
}
