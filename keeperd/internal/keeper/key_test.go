package keeper

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyCreateAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keeper")
	p := filepath.Join(dir, "id_ed25519")
	k1, err := LoadOrCreateKey(p, true)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	di, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("modes: key %o dir %o", fi.Mode().Perm(), di.Mode().Perm())
	}
	b, _ := os.ReadFile(p)
	if !bytes.HasPrefix(b, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Fatalf("not OpenSSH format")
	}
	k2, err := LoadOrCreateKey(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if k1.AuthorizedKey("") != k2.AuthorizedKey("") || !strings.HasPrefix(k1.AuthorizedKey("c"), "ssh-ed25519 ") {
		t.Fatal("reload gave another key")
	}
	if strings.Contains(k1.String(), "PRIVATE") || !strings.Contains(k1.String(), "SHA256:") {
		t.Fatalf("String() = %q", k1.String())
	}
}

func TestKeyRefusals(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good", "id_ed25519")
	if _, err := LoadOrCreateKey(good, true); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose")
	b, _ := os.ReadFile(good)
	os.WriteFile(loose, b, 0o644)
	notkey := filepath.Join(dir, "notkey")
	os.WriteFile(notkey, []byte("hello"), 0o600)
	cases := []struct{ name, path, want string }{
		{"loose perms", loose, "key " + loose + ": permissions 0644 are too open (want 0600: chmod 600 " + loose + ")"},
		{"not a key", notkey, "key " + notkey + ": not an OpenSSH private key"},
		{"missing without create", filepath.Join(dir, "none"), "key " + filepath.Join(dir, "none") + ": lstat " + filepath.Join(dir, "none") + ": no such file or directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadOrCreateKey(tc.path, false)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// ssh-keygen's own ed25519 key with a passphrase is refused clearly.
	if _, err := execCommand("ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", filepath.Join(dir, "pp")).CombinedOutput(); err == nil {
		_, err := LoadKey(filepath.Join(dir, "pp"))
		if err == nil || !strings.HasSuffix(err.Error(), "passphrase-protected keys are not supported") {
			t.Fatalf("err = %v", err)
		}
	}
}
