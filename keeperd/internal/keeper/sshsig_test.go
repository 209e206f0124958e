package keeper

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Our SSHSIG verifies with the real ssh-keygen, and ssh-keygen's verifies
// with ours.
func TestSSHSIGInteropWithSSHKeygen(t *testing.T) {
	needTool(t, "ssh-keygen")
	dir := t.TempDir()
	key, err := LoadOrCreateKey(filepath.Join(dir, "k", "id_ed25519"), true)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\nm\n")
	sig, err := key.SignSSH("git", bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sig, []byte("-----BEGIN SSH SIGNATURE-----\n")) || !bytes.HasSuffix(sig, []byte("-----END SSH SIGNATURE-----\n")) {
		t.Fatalf("armor: %s", sig)
	}
	for _, line := range strings.Split(string(sig), "\n") {
		if len(line) > 70 {
			t.Fatalf("armor line over 70 columns: %q", line)
		}
	}
	allowed := filepath.Join(dir, "allowed")
	os.WriteFile(allowed, []byte("a@x "+key.AuthorizedKey("")+"\n"), 0o644)
	sigFile := filepath.Join(dir, "msg.sig")
	os.WriteFile(sigFile, sig, 0o644)
	msgFile := filepath.Join(dir, "msg")
	os.WriteFile(msgFile, msg, 0o644)
	if out, err := runStdin(dir, msg, "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "a@x", "-n", "git", "-s", sigFile); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
	}
	// Wrong namespace: ssh-keygen refuses too.
	if _, err := runStdin(dir, msg, "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "a@x", "-n", "file", "-s", sigFile); err == nil {
		t.Fatal("ssh-keygen accepted the wrong namespace")
	}
	// ssh-keygen signs with our key file; we verify it.
	run(t, dir, "ssh-keygen", "-q", "-Y", "sign", "-n", "git", "-f", filepath.Join(dir, "k", "id_ed25519"), msgFile)
	theirs, _ := os.ReadFile(msgFile + ".sig")
	pub, err := VerifySSH(theirs, "git", bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub.Marshal(), key.PublicKey().Marshal()) {
		t.Fatal("wrong key")
	}
	// Tampering and namespace confusion fail.
	if _, err := VerifySSH(sig, "git", bytes.NewReader(append(msg, 'x'))); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := VerifySSH(sig, StatementNamespace, bytes.NewReader(msg)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("namespace: %v", err)
	}
}

func runStdin(dir string, stdin []byte, name string, args ...string) (string, error) {
	cmd := execCommand(name, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func FuzzVerifySSH(f *testing.F) {
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = VerifySSH(b, "git", bytes.NewReader(nil))
	})
}
