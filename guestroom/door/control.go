package door

import (
	"context"
	"log/slog"
	"time"

	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
)

// Control is a daemon's control socket: a server that admits only the
// daemon's own uid (SameUser) and serves the minter's ControlService.
type Control struct {
	srv    *Server
	m      *Minter
	served chan error
}

// ServeControl listens at path and serves m's control service there. On
// failure the minter is closed, so the daemon leaves nothing behind.
func ServeControl(m *Minter, path string, log *slog.Logger) (*Control, error) {
	// Every launch holds a control connection for its lease, and only the
	// daemon's own uid connects: the ceiling is far above a guest door's.
	srv := NewServer(Config{Door: m.cfg.Door, Logger: log, Authorize: SameUser(), AuditBudget: m.cfg.AuditBudget,
		Informational: []string{doorv1.ControlService_GetStatus_FullMethodName}, limits: connLimits{grpc: maxControlConns}})
	m.RegisterControl(srv.GRPC())
	l, err := Listen(path)
	if err != nil {
		m.Close(context.Background())
		return nil, err
	}
	c := &Control{srv: srv, m: m, served: make(chan error, 1)}
	go func() { c.served <- srv.Serve(l) }()
	return c, nil
}

// Done delivers the control server's exit: nil after Shutdown, an error if
// it stopped by itself.
func (c *Control) Done() <-chan error { return c.served }

// Shutdown stops the control server, then revokes every door, each within
// timeout: graceful first, forced after.
func (c *Control) Shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c.srv.Stop(ctx)
	c.m.Close(ctx)
}
