package client

import (
	"archive/tar"
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
)

// An error that names what a snapshot carried (here a file name too long
// for the file system, which the OS error repeats as it is) reaches the
// terminal escaped, like every other message scout prints: a repository
// cannot drive the terminal through scout's stderr.
func TestErrorsAreEscaped(t *testing.T) {
	name := "\u009b2J\u202e" + strings.Repeat("x", 300)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 1, Mode: 0o644, Format: tar.FormatPAX})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	sock := serveLiar(t, &lyingScout{snap: []*scoutv1.SnapshotResponse{{Chunk: buf.Bytes()}}})
	dir := filepath.Join(t.TempDir(), "snap")
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"--door", sock, "repo", "https://x.test/o/r.git", dir}, IO{Stdout: &stdout, Stderr: &stderr})
	if err == nil {
		t.Fatal("extracting a name too long for the file system succeeded")
	}
	if msg := err.Error(); strings.ContainsAny(msg, "\u009b\u202e") {
		t.Fatalf("error reaches the terminal unescaped: %q", msg)
	}
}
