package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bounded-systems/claude-box/launcher/internal/engine"
)

// noConnect is a Connector for runs that must not reach podman.
func noConnect(t *testing.T) engine.Connector {
	return func(context.Context, func(string) string) (engine.Engine, error) {
		t.Error("podman was asked for, but this run must not reach it")
		return nil, errors.New("no podman in this test")
	}
}

// testEnv is an Env with its own HOME, the door daemons' run dir and the
// extra variables vars, writing to the returned buffers.
func testEnv(t *testing.T, runDir string, vars map[string]string, connect engine.Connector) (Env, *strings.Builder, *strings.Builder) {
	t.Helper()
	all := map[string]string{"HOME": t.TempDir(), "CLAUDE_BOX_RUN_DIR": runDir}
	for k, v := range vars {
		all[k] = v
	}
	var out, errb strings.Builder
	env := Env{Getenv: func(k string) string { return all[k] }, Stdout: &out, Stderr: &errb, Connect: connect, Version: "1.2.3"}
	return env, &out, &errb
}
