package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Target is one binary of the repo the suite builds.
type Target struct {
	// Name is the output file name.
	Name string
	// Module is the module directory relative to the repo root ("netd").
	Module string
	// Pkg is the main package inside the module ("./cmd/netd").
	Pkg string
	// TagsFile, when set, names a file in the module whose whitespace-separated
	// words are passed as -tags (the launcher's build.tags).
	TagsFile string
}

// ErrNotBuilt marks a target whose source does not exist (yet).
var ErrNotBuilt = errors.New("not in the repo")

// RepoRoot finds the repository root: the nearest directory above the working
// directory that holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repo root: no go.work above the working directory")
		}
		dir = parent
	}
}

// Build compiles t into outDir as a static (CGO_ENABLED=0) binary, so that the
// same file runs on the host and in the test image. It returns the binary's
// path, or an error wrapping ErrNotBuilt when the package is not in the repo.
func Build(ctx context.Context, repoRoot, outDir string, t Target) (string, error) {
	modDir := filepath.Join(repoRoot, t.Module)
	if _, err := os.Stat(filepath.Join(modDir, filepath.FromSlash(t.Pkg))); err != nil {
		return "", fmt.Errorf("build %s: %s/%s: %w", t.Name, t.Module, t.Pkg, ErrNotBuilt)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build %s: go toolchain: %w", t.Name, err)
	}
	out := filepath.Join(outDir, t.Name)
	// No -trimpath: it would keep these builds from sharing the build cache
	// with the rest of the repo's. -s -w keeps the image small.
	args := []string{"build", "-ldflags=-s -w", "-o", out}
	if t.TagsFile != "" {
		b, err := os.ReadFile(filepath.Join(modDir, t.TagsFile))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("build %s: tags: %w", t.Name, err)
		}
		if tags := strings.Fields(string(b)); len(tags) > 0 {
			args = append(args, "-tags", strings.Join(tags, ","))
		}
	}
	args = append(args, t.Pkg)
	// GOWORK=off: each module builds from its own go.mod and the siblings it
	// replaces, as nix builds it. In workspace mode the modules' requirements
	// are merged, and the launcher's podman bindings need an older
	// filepath-securejoin than go-git's.
	c := command{Path: goBin, Args: args, Dir: modDir, Env: append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")}
	if _, err := c.output(ctx); err != nil {
		return "", fmt.Errorf("build %s: %w", t.Name, err)
	}
	return out, nil
}
