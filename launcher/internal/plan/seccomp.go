package plan

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
)

// seccompProfile is the box's seccomp profile: podman's default allowlist
// minus every syscall that mounts, unshares, joins namespaces, traces,
// loads code into the kernel or manipulates keyrings; clone only without
// namespace flags; clone3 answers ENOSYS so libc falls back to clone.
//
//go:embed seccomp.json
var seccompProfile []byte

// SeccompProfile returns the box's seccomp profile (OCI/podman JSON).
func SeccompProfile() []byte { return append([]byte(nil), seccompProfile...) }

// SeccompDigest is the hex sha256 of the profile, naming the file it is
// written to for podman to read.
func SeccompDigest() string {
	s := sha256.Sum256(seccompProfile)
	return hex.EncodeToString(s[:])
}

// ManifestDigest names a manifest as "sha256:<hex>" (keeper records it with
// every commit made through the launch's door).
func ManifestDigest(manifest []byte) string {
	s := sha256.Sum256(manifest)
	return "sha256:" + hex.EncodeToString(s[:])
}
