// Command scoutd is the scout door's host daemon: it reads URLs, repository
// snapshots and GitHub issues and pull requests under policy, for boxes
// that hold no token and no network.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bounded-systems/claude-box/scoutd/internal/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := daemon.Run(ctx, os.Args[1:], daemon.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "scoutd: %v\n", err)
		os.Exit(1)
	}
}
