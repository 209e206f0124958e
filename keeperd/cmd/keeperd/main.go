// Command keeperd is the keeper door's host daemon: it holds the signing key,
// makes signed commits in bound worktrees and pushes only what policy allows.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bounded-systems/claude-box/keeperd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "keeperd: %v\n", err)
		os.Exit(1)
	}
}
