package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/keeperd/internal/keeper"
	keeperv1 "github.com/bounded-systems/claude-box/proto/claudebox/keeper/v1"
)

// makeTree writes n files in directories of 100 and commits them.
func makeTree(b *testing.B, dir string, n int) {
	b.Helper()
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	benchGit(b, dir, "init", "-q", "-b", "main")
	benchGit(b, dir, "add", "-A")
	benchGit(b, dir, "commit", "-q", "-m", "init")
	benchGit(b, dir, "status", "--porcelain") // refresh racy entries like any user's first status
}

func benchGit(b *testing.B, dir string, args ...string) {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Claude", "GIT_AUTHOR_EMAIL=claude@example.com", "GIT_COMMITTER_NAME=Claude", "GIT_COMMITTER_EMAIL=claude@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func touch10(b *testing.B, dir string, n, round int) {
	for j := 0; j < 10; j++ {
		i := (round*10 + j*(n/10)) % n
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d.txt", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d round %d\n", i, round)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitVsGit measures one commit of 10 changed files through the
// keeper door (a minted unix socket, gRPC, host-side staging and SSHSIG
// signing, the note) against `git add -A && git commit -S` with ssh signing
// on an identical repo, in the same run, and reports the ratio.
//
//	cd keeperd && go test -run '^$' -bench CommitVsGit -benchtime 20x ./internal/server
func BenchmarkCommitVsGit(b *testing.B) {
	for _, tool := range []string{"git", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	for _, n := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			base, err := os.MkdirTemp("", "kbench")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(base)
			viaDoor := filepath.Join(base, "src", "door")
			viaGit := filepath.Join(base, "git")
			makeTree(b, viaDoor, n)
			makeTree(b, viaGit, n)
			keyPath := filepath.Join(base, "keeper", "id_ed25519")
			key, err := keeper.LoadOrCreateKey(keyPath, true)
			if err != nil {
				b.Fatal(err)
			}
			benchGit(b, viaGit, "config", "gpg.format", "ssh")
			benchGit(b, viaGit, "config", "user.signingkey", keyPath)
			log := slog.New(slog.DiscardHandler)
			k, _ := keeper.New(keeper.Config{Key: key, Logger: log, Policy: &keeper.Policy{Version: 1,
				Repos: []keeper.RepoPolicy{{Root: filepath.Join(base, "src")}}, Branches: []string{"main"},
				Identities: []keeper.Identity{{Name: "Claude", Email: "claude@example.com"}}, Rate: keeper.Rate{CommitsPerLaunch: 1 << 30}}})
			srv := New(k, log)
			m, err := door.NewMinter(door.MinterConfig{Door: DoorName, Dir: filepath.Join(base, "l"), Logger: log, Register: srv.Register, Validate: srv.Validate})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close(context.Background())
			minted, err := m.Mint(context.Background(), door.MintRequest{LaunchID: "bench", Account: "b", Bindings: map[string]string{"repo": viaDoor}, PeerUID: -1})
			if err != nil {
				b.Fatal(err)
			}
			cc, err := door.Dial(minted.SocketPath)
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			c := keeperv1.NewKeeperServiceClient(cc)
			var doorTime, gitTime time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				touch10(b, viaDoor, n, i)
				touch10(b, viaGit, n, i)
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				res, err := c.Commit(ctx, &keeperv1.CommitRequest{Message: fmt.Sprintf("round %d", i), All: true})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				if len(res.GetFiles()) != 10 {
					b.Fatalf("door committed %d files", len(res.GetFiles()))
				}
				t1 := time.Now()
				benchGit(b, viaGit, "add", "-A")
				benchGit(b, viaGit, "commit", "-S", "-q", "-m", fmt.Sprintf("round %d", i))
				t2 := time.Now()
				doorTime += t1.Sub(t0)
				gitTime += t2.Sub(t1)
			}
			b.ReportMetric(float64(doorTime.Microseconds())/1000/float64(b.N), "door-ms/op")
			b.ReportMetric(float64(gitTime.Microseconds())/1000/float64(b.N), "git-ms/op")
			b.ReportMetric(float64(doorTime)/float64(gitTime), "door/git")
		})
	}
}
