// Package client implements `keeper`, the in-box client of the keeper door:
// status, commit, push and log over the door socket, and git's
// gpg.ssh.program shim that signs through the door and hands verification to
// the real ssh-keygen. It never sends a host path: paths are made relative
// to the worktree root (/work) before they leave the box.
package client

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
	"google.golang.org/grpc"
)

// Environment.
const (
	// EnvDoor names the door socket.
	EnvDoor = "KEEPERD_SOCK"
	// DefaultDoor is where the launcher mounts the keeper door in a box.
	DefaultDoor = "/run/doors/keeperd.sock"
	// EnvWorktree overrides the worktree root in the box.
	EnvWorktree = "KEEPER_WORKTREE"
	// DefaultWorktree is where the box sees the repository.
	DefaultWorktree = "/work"
	// EnvSSHKeygen names the real ssh-keygen for verification verbs.
	EnvSSHKeygen = "KEEPER_SSH_KEYGEN"
)

const usage = `usage: keeper [--door PATH] <command> [flags]

commands:
  status                       what 'keeper commit -a' would commit
  commit -m MSG [-a | PATH…]   make one signed commit host-side
  push [--remote R] [BRANCH]   push one allowed branch to a remote in policy
  log                          what this launch has written
  pubkey                       the key keeperd signs with

as git's gpg.ssh.program (git config gpg.format ssh; gpg.ssh.program keeper):
  keeper -Y sign -n git -f KEY [-U] FILE   signs FILE through the door into FILE.sig
  keeper -Y verify|check-novalidate|find-principals …   runs the real ssh-keygen`

var errUsage = errors.New("usage")

// Env is what the client reads from its environment.
type Env struct {
	// Getenv reads a variable.
	Getenv func(string) string
	// Getwd is the current directory.
	Getwd func() (string, error)
	// Stdin is standard input (for the verification verbs).
	Stdin io.Reader
}

// OSEnv is the process environment.
func OSEnv() Env { return Env{Getenv: os.Getenv, Getwd: os.Getwd, Stdin: os.Stdin} }

// Run runs one keeper command.
func Run(ctx context.Context, env Env, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "-Y" {
		return shim(ctx, env, args, stdout, stderr)
	}
	fs := flag.NewFlagSet("keeper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	doorPath := fs.String("door", "", "door socket `PATH` (env "+EnvDoor+", default "+DefaultDoor+")")
	fs.Usage = func() { fmt.Fprintln(stderr, usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: no command", errUsage)
	}
	c := &conn{path: doorFrom(env, *doorPath)}
	defer c.close()
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "status":
		return c.status(ctx, rest, stdout, stderr)
	case "commit":
		return c.commit(ctx, env, rest, stdout, stderr)
	case "push":
		return c.push(ctx, rest, stdout, stderr)
	case "log":
		return c.log(ctx, stdout)
	case "pubkey":
		return c.pubkey(ctx, stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

func doorFrom(env Env, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if s := env.Getenv(EnvDoor); s != "" {
		return s
	}
	return DefaultDoor
}

type conn struct {
	path string
	cc   *grpc.ClientConn
}

func (c *conn) client() (keeperv1.KeeperServiceClient, error) {
	if c.cc == nil {
		if _, err := os.Stat(c.path); err != nil && !strings.Contains(c.path, ":") {
			return nil, fmt.Errorf("keeper door %s: %w\nhint: relaunch with --keeper (claude-box --keeper) or set %s", c.path, err, EnvDoor)
		}
		cc, err := door.Dial(c.path)
		if err != nil {
			return nil, err
		}
		c.cc = cc
	}
	return keeperv1.NewKeeperServiceClient(c.cc), nil
}

func (c *conn) close() {
	if c.cc != nil {
		c.cc.Close()
	}
}

// call runs one unary call with a deadline.
func call[T any](ctx context.Context, c *conn, d time.Duration, f func(context.Context, keeperv1.KeeperServiceClient) (T, error)) (T, error) {
	var zero T
	kc, err := c.client()
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	r, err := f(ctx, kc)
	if err != nil {
		return zero, explain(c.path, err)
	}
	return r, nil
}

func (c *conn) status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: status takes no arguments", errUsage)
	}
	st, err := call(ctx, c, 2*time.Minute, func(ctx context.Context, k keeperv1.KeeperServiceClient) (*keeperv1.GetStatusResponse, error) {
		return k.GetStatus(ctx, &keeperv1.GetStatusRequest{})
	})
	if err != nil {
		return err
	}
	branch := st.GetBranch()
	if branch == "" {
		branch = "(detached HEAD)"
	} else if !st.GetBranchAllowed() {
		branch += " (policy does not allow committing here)"
	}
	fmt.Fprintf(stdout, "branch %s at %s\n", branch, shortID(st.GetHead()))
	if len(st.GetFiles()) == 0 {
		fmt.Fprintln(stdout, "nothing to commit")
	}
	for _, f := range st.GetFiles() {
		fmt.Fprintf(stdout, "  %-8s %s\n", f.GetStatus(), f.GetPath())
	}
	return nil
}

func shortID(h string) string {
	if h == "" {
		return "(no commits)"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func (c *conn) commit(ctx context.Context, env Env, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keeper commit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var msgs []string
	fs.Func("m", "commit `MESSAGE` (repeat for paragraphs)", func(s string) error { msgs = append(msgs, s); return nil })
	all := fs.Bool("a", false, "commit every change (git add -A)")
	author := fs.String("author", "", "author `\"Name <email>\"` (must be an identity in keeperd's policy)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if len(msgs) == 0 {
		return fmt.Errorf("%w: commit needs -m MESSAGE", errUsage)
	}
	paths, err := relPaths(env, fs.Args())
	if err != nil {
		return err
	}
	res, err := call(ctx, c, 2*time.Minute, func(ctx context.Context, k keeperv1.KeeperServiceClient) (*keeperv1.CommitResponse, error) {
		return k.Commit(ctx, &keeperv1.CommitRequest{Message: strings.Join(msgs, "\n\n"), All: *all, Paths: paths, Author: *author})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "[%s %s] %d file(s) changed\n", res.GetBranch(), shortID(res.GetCommit()), len(res.GetFiles()))
	for _, f := range res.GetFiles() {
		fmt.Fprintf(stdout, "  %-8s %s\n", f.GetStatus(), f.GetPath())
	}
	return nil
}

// relPaths turns the user's paths into paths relative to the worktree root.
// A path outside the worktree is refused here, before it leaves the box.
func relPaths(env Env, in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	root := env.Getenv(EnvWorktree)
	if root == "" {
		root = DefaultWorktree
	}
	root = filepath.Clean(root)
	wd, err := env.Getwd()
	if err != nil {
		wd = root
	}
	out := make([]string, 0, len(in))
	for _, p := range in {
		abs := p
		if !filepath.IsAbs(p) {
			abs = filepath.Join(wd, p)
		}
		abs = filepath.Clean(abs)
		rel, err := filepath.Rel(root, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("path %q is outside the worktree %s", p, root)
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out, nil
}

func (c *conn) push(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keeper push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	remote := fs.String("remote", "", "remote `NAME` from keeperd's policy (default: the policy's default)")
	force := fs.Bool("force", false, "ask for a non-fast-forward push (refused unless policy allows force)")
	tag := fs.String("tag", "", "push tag `NAME` instead of a branch (refused unless policy allows tags)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: push takes at most one BRANCH", errUsage)
	}
	res, err := call(ctx, c, 5*time.Minute, func(ctx context.Context, k keeperv1.KeeperServiceClient) (*keeperv1.PushResponse, error) {
		return k.Push(ctx, &keeperv1.PushRequest{Remote: *remote, Branch: fs.Arg(0), Force: *force, Tag: *tag})
	})
	if err != nil {
		return err
	}
	if res.GetOldCommit() == res.GetNewCommit() {
		fmt.Fprintf(stdout, "%s %s: up to date at %s\n", res.GetRemote(), res.GetRef(), shortID(res.GetNewCommit()))
		return nil
	}
	old := shortID(res.GetOldCommit())
	if res.GetOldCommit() == "" {
		old = "(new)"
	}
	fmt.Fprintf(stdout, "%s %s: %s..%s (%d commit(s))\n", res.GetRemote(), res.GetRef(), old, shortID(res.GetNewCommit()), res.GetCommits())
	return nil
}

func (c *conn) log(ctx context.Context, stdout io.Writer) error {
	res, err := call(ctx, c, 30*time.Second, func(ctx context.Context, k keeperv1.KeeperServiceClient) (*keeperv1.ListWritesResponse, error) {
		return k.ListWrites(ctx, &keeperv1.ListWritesRequest{})
	})
	if err != nil {
		return err
	}
	if len(res.GetWrites()) == 0 {
		fmt.Fprintln(stdout, "this launch has written nothing")
	}
	for _, w := range res.GetWrites() {
		fmt.Fprintf(stdout, "%s %-6s %s %s\n", w.GetTime(), w.GetKind(), w.GetTarget(), w.GetSummary())
	}
	return nil
}

func (c *conn) pubkey(ctx context.Context, stdout io.Writer) error {
	res, err := call(ctx, c, 30*time.Second, func(ctx context.Context, k keeperv1.KeeperServiceClient) (*keeperv1.GetPublicKeyResponse, error) {
		return k.GetPublicKey(ctx, &keeperv1.GetPublicKeyRequest{})
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.GetAuthorizedKey())
	return nil
}

// explain turns a door error into one line plus, for an unreachable door, a hint.
func explain(path string, err error) error {
	if s, ok := statusOf(err); ok {
		return errors.New(s)
	}
	return door.Unavailable(path, err)
}
