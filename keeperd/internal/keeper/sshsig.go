package keeper

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// SSHSIG (PROTOCOL.sshsig in OpenSSH): the signature format of
// `ssh-keygen -Y sign`, which git uses for gpg.format=ssh.
const (
	sshsigMagic   = "SSHSIG"
	sshsigVersion = 1
	sshsigHash    = "sha512"
	armorBegin    = "-----BEGIN SSH SIGNATURE-----"
	armorEnd      = "-----END SSH SIGNATURE-----"
)

// ErrBadSignature reports a signature that does not verify or parse.
var ErrBadSignature = errors.New("bad signature")

type sshsigSignedData struct {
	Namespace string
	Reserved  string
	Hash      string
	Digest    string
}

type sshsigBlob struct {
	Version   uint32
	PublicKey string
	Namespace string
	Reserved  string
	Hash      string
	Signature string
}

func sshsigMessage(namespace string, message io.Reader) ([]byte, error) {
	h := sha512.New()
	if _, err := io.Copy(h, message); err != nil {
		return nil, fmt.Errorf("hash message: %w", err)
	}
	sd := ssh.Marshal(sshsigSignedData{Namespace: namespace, Hash: sshsigHash, Digest: string(h.Sum(nil))})
	return append([]byte(sshsigMagic), sd...), nil
}

// SignSSH produces an armored SSHSIG signature of message in namespace.
func (k *Key) SignSSH(namespace string, message io.Reader) ([]byte, error) {
	if namespace == "" {
		return nil, fmt.Errorf("%w: empty namespace", ErrInvalid)
	}
	data, err := sshsigMessage(namespace, message)
	if err != nil {
		return nil, err
	}
	sig, err := k.sign.Sign(rand.Reader, data)
	if err != nil {
		return nil, fmt.Errorf("%w: sign: %w", ErrInternal, err)
	}
	blob := ssh.Marshal(sshsigBlob{
		Version:   sshsigVersion,
		PublicKey: string(k.pub.Marshal()),
		Namespace: namespace,
		Hash:      sshsigHash,
		Signature: string(ssh.Marshal(sig)),
	})
	return armor(append([]byte(sshsigMagic), blob...)), nil
}

func armor(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	out.WriteString(armorBegin + "\n")
	for len(enc) > 70 {
		out.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	out.WriteString(enc + "\n")
	out.WriteString(armorEnd + "\n")
	return out.Bytes()
}

// VerifySSH checks an armored SSHSIG signature of message in namespace and
// returns the public key that made it. The caller decides whether that key
// is trusted.
func VerifySSH(armored []byte, namespace string, message io.Reader) (ssh.PublicKey, error) {
	s := strings.TrimSpace(string(armored))
	if len(s) < len(armorBegin)+len(armorEnd) || !strings.HasPrefix(s, armorBegin) || !strings.HasSuffix(s, armorEnd) {
		return nil, fmt.Errorf("%w: not an armored SSH signature", ErrBadSignature)
	}
	body := strings.Join(strings.Fields(s[len(armorBegin):len(s)-len(armorEnd)]), "")
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if !bytes.HasPrefix(raw, []byte(sshsigMagic)) {
		return nil, fmt.Errorf("%w: missing SSHSIG preamble", ErrBadSignature)
	}
	var blob sshsigBlob
	if err := ssh.Unmarshal(raw[len(sshsigMagic):], &blob); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if blob.Version != sshsigVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadSignature, blob.Version)
	}
	if blob.Namespace != namespace {
		return nil, fmt.Errorf("%w: namespace %q, want %q", ErrBadSignature, blob.Namespace, namespace)
	}
	if blob.Hash != sshsigHash && blob.Hash != "sha256" {
		return nil, fmt.Errorf("%w: hash %q", ErrBadSignature, blob.Hash)
	}
	pub, err := ssh.ParsePublicKey([]byte(blob.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrBadSignature, err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal([]byte(blob.Signature), &sig); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	var data []byte
	if blob.Hash == sshsigHash {
		data, err = sshsigMessage(namespace, message)
	} else {
		data, err = sshsigMessage256(namespace, message)
	}
	if err != nil {
		return nil, err
	}
	if err := pub.Verify(data, &sig); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return pub, nil
}
