// Package engine states what claude-box needs from a container engine, so
// that everything but internal/podman is built and tested without podman's
// bindings. internal/podman implements it.
package engine

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/bounded-systems/claude-box/launcher/internal/plan"
)

// Info is what the launcher needs to know about the engine.
type Info struct {
	Rootless bool
	Version  string
	// Cgroups is the service host's cgroup version ("v1" or "v2").
	Cgroups string
	// Kernel is the service host's kernel release ("6.1.0-13-amd64").
	Kernel string
}

// Image is a resolved image.
type Image struct {
	ID          string
	Digest      string
	RepoDigests []string
	Tags        []string
}

// BoxInfo is one claude-box container the engine knows.
type BoxInfo struct {
	ID, Name, Account, Launch, Image, State string
}

// Stdio is what a box is attached to.
type Stdio struct {
	Stdin          *os.File // nil: no stdin
	Stdout, Stderr io.Writer
	// Signals carries the signals the launcher caught; when the launch is
	// cancelled the last one is forwarded to the box. Nil: SIGTERM.
	Signals <-chan os.Signal
}

// ErrImageMissing reports an image the engine does not have.
var ErrImageMissing = errors.New("image not found")

// ErrUnreachable reports an engine API that does not answer.
var ErrUnreachable = errors.New("podman API unreachable")

// Engine runs boxes.
type Engine interface {
	// URI names the API socket in use.
	URI() string
	Info(ctx context.Context) (Info, error)
	// Rootless reports whether the service runs rootless, cheaply (Info
	// takes hundreds of milliseconds).
	Rootless(ctx context.Context) (bool, error)
	ResolveImage(ctx context.Context, ref string) (Image, error)
	EnsureVolume(ctx context.Context, name string, labels map[string]string) (created bool, err error)
	Volumes(ctx context.Context) ([]string, error)
	Boxes(ctx context.Context) ([]BoxInfo, error)
	// Run creates, attaches, starts, waits for and removes the box and
	// returns its exit code; cancelling ctx stops it after grace.
	Run(ctx context.Context, b plan.Box, std Stdio, grace time.Duration) (int, error)
	// Remove force-removes a box by name; a box that does not exist is not
	// an error.
	Remove(ctx context.Context, name string) error
	// SeccompPath makes the profile readable by the engine and returns the
	// path to name in the spec.
	SeccompPath(profile []byte, digest string) (string, error)
}

// Connector connects to an engine.
type Connector func(ctx context.Context, getenv func(string) string) (Engine, error)
