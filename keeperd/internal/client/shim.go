package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
	"golang.org/x/crypto/ssh"
)

// maxPayload mirrors keeperd's bound on a Sign payload.
const maxPayload = 1 << 20

// shim is git's gpg.ssh.program: `-Y sign -n git -f KEY [-U] FILE` signs
// through the door; the verification verbs run the real ssh-keygen.
func shim(ctx context.Context, env Env, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("%w: -Y needs a verb", errUsage)
	}
	switch args[1] {
	case "sign":
		return shimSign(ctx, env, args[2:], stdout)
	case "verify", "check-novalidate", "find-principals", "match-principals":
		return realSSHKeygen(ctx, env, args, stdout, stderr)
	}
	return fmt.Errorf("%w: ssh-keygen -Y %s is not supported by keeper", errUsage, args[1])
}

func shimSign(ctx context.Context, env Env, args []string, stdout io.Writer) error {
	var ns, keyFile, file string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-n" && i+1 < len(args):
			ns = args[i+1]
			i++
		case a == "-f" && i+1 < len(args):
			keyFile = args[i+1]
			i++
		case a == "-U":
			// The key is "in an agent": keeper has none either way.
		case a == "-q":
		case len(a) > 0 && a[0] == '-' && a != "-":
			return fmt.Errorf("%w: -Y sign: unsupported flag %q", errUsage, a)
		default:
			if file != "" {
				return fmt.Errorf("%w: -Y sign takes one FILE", errUsage)
			}
			file = a
		}
	}
	if ns == "" || keyFile == "" || file == "" {
		return fmt.Errorf("%w: want -Y sign -n NAMESPACE -f KEY [-U] FILE", errUsage)
	}
	var payload []byte
	var err error
	if file == "-" {
		payload, err = io.ReadAll(io.LimitReader(env.Stdin, maxPayload+1))
	} else {
		payload, err = readLimited(file)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	if len(payload) > maxPayload {
		return fmt.Errorf("%s: payload over %d bytes", file, maxPayload)
	}
	c := &conn{path: doorFrom(env, "")}
	defer c.close()
	if err := c.checkSigningKey(ctx, keyFile); err != nil {
		return err
	}
	res, err := call(ctx, c, 30*time.Second, func(ctx context.Context, k keeperv1.KeeperServiceClient) (*keeperv1.SignResponse, error) {
		return k.Sign(ctx, &keeperv1.SignRequest{Namespace: ns, Payload: payload})
	})
	if err != nil {
		return err
	}
	if file == "-" {
		_, err := stdout.Write(res.GetSignature())
		return err
	}
	if err := os.WriteFile(file+".sig", res.GetSignature(), 0o644); err != nil {
		return fmt.Errorf("write signature: %w", err)
	}
	return nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxPayload+1))
}

// checkSigningKey refuses a user.signingkey that is not keeperd's key, so a
// misconfigured repo fails loudly instead of producing signatures that will
// not verify against what the user configured.
func (c *conn) checkSigningKey(ctx context.Context, keyFile string) error {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("signing key %s: %w", keyFile, err)
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return fmt.Errorf("signing key %s: not a public key (set user.signingkey to the output of 'keeper pubkey')", keyFile)
	}
	res, err := call(ctx, c, 30*time.Second, func(ctx context.Context, k keeperv1.KeeperServiceClient) (*keeperv1.GetPublicKeyResponse, error) {
		return k.GetPublicKey(ctx, &keeperv1.GetPublicKeyRequest{})
	})
	if err != nil {
		return err
	}
	have, _, _, _, err := ssh.ParseAuthorizedKey([]byte(res.GetAuthorizedKey()))
	if err != nil {
		return fmt.Errorf("keeperd sent a bad public key: %w", err)
	}
	if !bytes.Equal(want.Marshal(), have.Marshal()) {
		return fmt.Errorf("signing key %s is not keeperd's key %s (set user.signingkey to the output of 'keeper pubkey')", keyFile, ssh.FingerprintSHA256(have))
	}
	return nil
}

// ExitError carries the real ssh-keygen's exit status.
type ExitError struct{ code int }

func (e ExitError) Error() string { return fmt.Sprintf("ssh-keygen exited with status %d", e.code) }

// ExitCode returns the exit status to use for err: the real ssh-keygen's
// for a verification verb, 1 otherwise.
func ExitCode(err error) int {
	var e ExitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

// realSSHKeygen runs the real ssh-keygen with exactly the arguments git gave.
func realSSHKeygen(ctx context.Context, env Env, args []string, stdout, stderr io.Writer) error {
	bin := env.Getenv(EnvSSHKeygen)
	if bin == "" {
		p, err := exec.LookPath("ssh-keygen")
		if err != nil {
			return fmt.Errorf("ssh-keygen not found for -Y %s: %w", args[1], err)
		}
		bin = p
	}
	if self, err := os.Executable(); err == nil {
		a, _ := filepath.EvalSymlinks(self)
		b, _ := filepath.EvalSymlinks(bin)
		if a != "" && a == b {
			return fmt.Errorf("ssh-keygen at %s is keeper itself; set %s to the real one", bin, EnvSSHKeygen)
		}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = env.Stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ExitError{code: ee.ExitCode()}
		}
		return fmt.Errorf("ssh-keygen: %w", err)
	}
	return nil
}
