// Command keeper is the in-box client of the keeper door, and git's
// gpg.ssh.program when a box owns its clone.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bounded-systems/claude-box/keeperd/internal/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := client.Run(ctx, client.OSEnv(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var exit client.ExitError
		if !errors.As(err, &exit) {
			fmt.Fprintf(os.Stderr, "keeper: %v\n", err)
		}
		os.Exit(client.ExitCode(err))
	}
}
