package keeper

import (
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

// sshsigMessage256 is the signed data for a sha256 SSHSIG (verify only).
func sshsigMessage256(namespace string, message io.Reader) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, message); err != nil {
		return nil, fmt.Errorf("hash message: %w", err)
	}
	sd := ssh.Marshal(sshsigSignedData{Namespace: namespace, Hash: "sha256", Digest: string(h.Sum(nil))})
	return append([]byte(sshsigMagic), sd...), nil
}
