package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// reapCommand is the hidden subcommand a launch leaves watching over its
// box: if the launcher dies without saying "done" (SIGKILL, OOM), the reaper
// removes the box, so a box never outlives the launch that owns its doors.
const reapCommand = "__reap"

// Reaper is started by a launch and told when the box is gone.
type Reaper interface {
	// Done tells the reaper the launch cleaned up after itself.
	Done()
}

// SpawnReaper starts `claude-box __reap NAME` detached, with a pipe as its
// stdin; it is the Env.SpawnReaper of the real binary.
func SpawnReaper(uri, name string) (Reaper, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("reaper: %w", err)
	}
	cmd := exec.Command(self, reapCommand, name)
	cmd.Env = append(os.Environ(), "CONTAINER_HOST="+uri)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("reaper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("reaper: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	return &pipeReaper{w: in}, nil
}

type pipeReaper struct{ w io.WriteCloser }

func (p *pipeReaper) Done() {
	_, _ = io.WriteString(p.w, "done\n")
	_ = p.w.Close()
}

// reap waits for its launcher: "done" on stdin means the box is handled;
// EOF without it means the launcher died, and the box is removed.
func reap(ctx context.Context, args []string, env Env) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: %s NAME", ErrUsage, reapCommand)
	}
	name := args[0]
	if !strings.HasPrefix(name, "claude-box-") {
		return fmt.Errorf("%w: %s only removes claude-box boxes", ErrUsage, reapCommand)
	}
	line, _ := bufio.NewReader(env.Stdin).ReadString('\n')
	if strings.TrimSpace(line) == "done" {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	eng, err := env.Connect(rctx, env.Getenv)
	if err != nil {
		return err
	}
	return eng.Remove(rctx, name)
}
