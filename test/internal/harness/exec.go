package harness

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// command is one external program run with a fixed argv and no shell.
type command struct {
	Path string
	Args []string
	Env  []string // nil: inherit
	Dir  string
}

// output runs c and returns its stdout; on failure the error carries the argv
// and the tail of stderr.
func (c command) output(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", c.Path, strings.Join(c.Args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes(), nil
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
