package keeper

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// Key is keeperd's ed25519 signing key. Its private half never leaves this
// type: String and errors never include it.
type Key struct {
	priv ed25519.PrivateKey
	pub  ssh.PublicKey
	sign ssh.Signer
}

// String names the key by its fingerprint only.
func (k *Key) String() string { return "keeperd key " + ssh.FingerprintSHA256(k.pub) }

// PublicKey returns the public half.
func (k *Key) PublicKey() ssh.PublicKey { return k.pub }

// Signer returns an ssh.Signer for client authentication.
func (k *Key) Signer() ssh.Signer { return k.sign }

// AuthorizedKey renders the public key in authorized_keys form with comment.
func (k *Key) AuthorizedKey(comment string) string {
	s := string(ssh.MarshalAuthorizedKey(k.pub))
	s = s[:len(s)-1]
	if comment != "" {
		s += " " + comment
	}
	return s
}

func newKey(priv ed25519.PrivateKey) (*Key, error) {
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	return &Key{priv: priv, pub: s.PublicKey(), sign: s}, nil
}

// DefaultKeyPath is where keeperd keeps its key: ~/.claude-box/keeper/id_ed25519.
func DefaultKeyPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("default key path: %w", err)
	}
	return filepath.Join(home, ".claude-box", "keeper", "id_ed25519"), nil
}

// LoadOrCreateKey loads the key at path, creating it (and its 0700
// directory) when create is set and the file does not exist. A key file
// readable or writable by group or others is refused, as is a directory
// others can write to.
func LoadOrCreateKey(path string, create bool) (*Key, error) {
	k, err := LoadKey(path)
	if err == nil || !create || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key dir: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "keeperd")
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write key %s: %w", path, err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write key %s: %w", path, err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	sp, err := ssh.NewPublicKey(pub)
	if err == nil {
		_ = os.WriteFile(path+".pub", append(ssh.MarshalAuthorizedKey(sp)[:len(ssh.MarshalAuthorizedKey(sp))-1], []byte(" keeperd\n")...), 0o644)
	}
	return newKey(priv)
}

// LoadKey reads an OpenSSH ed25519 private key, refusing loose permissions,
// passphrase-protected keys and other key types.
func LoadKey(path string) (*Key, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s: permissions %04o are too open (want 0600: chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	if di, err := os.Stat(filepath.Dir(path)); err == nil && di.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("key %s: directory %s is writable by others (want 0700)", path, filepath.Dir(path))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("key %s: passphrase-protected keys are not supported", path)
		}
		// Never wrap the parser's error: it could quote key material.
		return nil, fmt.Errorf("key %s: not an OpenSSH private key", path)
	}
	var priv ed25519.PrivateKey
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		priv = k
	case *ed25519.PrivateKey:
		priv = *k
	default:
		return nil, fmt.Errorf("key %s: %T is not an ed25519 key", path, raw)
	}
	return newKey(priv)
}
