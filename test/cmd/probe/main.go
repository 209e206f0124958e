// Command probe runs inside a test box and reports, as one JSON line, what the
// box can observe about itself: its identity and security floor, its network,
// its sockets, the files it can write, and what a TLS request through the
// proxy returns. The end-to-end suite asserts on what it prints.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bounded-systems/claude-box/test/internal/probe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := probe.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe: %v\n", err)
		os.Exit(1)
	}
}
