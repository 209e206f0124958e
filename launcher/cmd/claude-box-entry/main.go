// Command claude-box-entry is the box image's entrypoint: it verifies the
// security floor, starts the netd relay when the net door is mounted, and
// execs claude (or CLAUDE_BOX_EXEC / --exec PROG) with its arguments.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/bounded-systems/claude-box/launcher/internal/entry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := entry.Run(ctx, entry.Config{
		Args: os.Args[1:], Getenv: os.Getenv, Stderr: os.Stderr, Paths: entry.DefaultPaths,
		UID: os.Getuid(), RelayListen: "127.0.0.1:3128", Exec: syscall.Exec, Environ: os.Environ(),
		TTY: term.IsTerminal(int(os.Stdin.Fd())),
	})
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "claude-box-entry: %v\n", err)
		os.Exit(126)
	}
}
