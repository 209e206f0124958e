// Command claude-box runs Claude Code in a hardened podman box with doors.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/bounded-systems/claude-box/launcher/internal/cli"
	"github.com/bounded-systems/claude-box/launcher/internal/podman"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	// The same signals, to forward the one that ended the launch to the box.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := cli.Run(ctx, os.Args[1:], cli.Env{
		Getenv:   os.Getenv,
		Stdin:    os.Stdin,
		StdinTTY: term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())),
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		Connect:  podman.Connector,
		Version:  version,
		Signals:  sigs,
		// A box never outlives its launcher: see cli.SpawnReaper.
		SpawnReaper: cli.SpawnReaper,
	})
	stop()
	if err != nil {
		fmt.Fprint(os.Stderr, cli.Message(err))
		os.Exit(cli.ExitCode(err))
	}
}
