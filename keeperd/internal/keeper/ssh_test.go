package keeper

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// sshGitServer is a tiny ssh server on loopback that runs git-receive-pack
// and git-upload-pack against bare repositories under root, for one
// authorized client key.
type sshGitServer struct {
	addr    string
	hostKey ssh.PublicKey
	root    string
	wg      sync.WaitGroup
}

func newSSHGitServer(t *testing.T, client ssh.PublicKey) *sshGitServer {
	t.Helper()
	needTool(t, "git")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hs, _ := ssh.NewSignerFromKey(priv)
	root := t.TempDir()
	run(t, root, "git", "init", "-q", "--bare", "-b", "main", "proj.git")
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), client.Marshal()) {
			return &ssh.Permissions{}, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(hs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshGitServer{addr: l.Addr().String(), hostKey: hs.PublicKey(), root: root}
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c, cfg) }()
		}
	}()
	return s
}

func (s *sshGitServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for r := range creqs {
				if r.Type != "exec" || len(r.Payload) < 4 {
					r.Reply(false, nil)
					continue
				}
				cmdline := string(r.Payload[4:])
				prog, arg, _ := strings.Cut(cmdline, " ")
				if prog != "git-receive-pack" && prog != "git-upload-pack" {
					r.Reply(false, nil)
					return
				}
				r.Reply(true, nil)
				dir := filepath.Join(s.root, filepath.Clean("/"+strings.Trim(arg, "'")))
				cmd := exec.Command("git", strings.TrimPrefix(prog, "git-"), dir)
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+s.root)
				code := uint32(0)
				if err := cmd.Run(); err != nil {
					code = 1
				}
				ch.CloseWrite()
				st := make([]byte, 4)
				binary.BigEndian.PutUint32(st, code)
				ch.SendRequest("exit-status", false, st)
				return
			}
		}()
	}
}

func TestPushOverSSH(t *testing.T) {
	khDir := t.TempDir()
	known := filepath.Join(khDir, "known_hosts")
	empty := filepath.Join(khDir, "empty")
	changed := filepath.Join(khDir, "changed")
	os.WriteFile(empty, nil, 0o644)
	var srv *sshGitServer
	f := newFixture(t, func(p *Policy) {
		p.Repos[0].Remotes = map[string]Remote{
			"origin":  {URL: "ssh://git@127.0.0.1:1/proj.git", KnownHosts: known},
			"unknown": {URL: "ssh://git@127.0.0.1:1/proj.git", KnownHosts: empty},
			"changed": {URL: "ssh://git@127.0.0.1:1/proj.git", KnownHosts: changed},
		}
	})
	srv = newSSHGitServer(t, f.key.PublicKey())
	url := "ssh://git@" + srv.addr + "/proj.git"
	for n, r := range f.k.Policy().Repos[0].Remotes {
		r.URL = url
		f.k.Policy().Repos[0].Remotes[n] = r
	}
	os.WriteFile(known, []byte(knownhosts.Line([]string{srv.addr}, srv.hostKey)+"\n"), 0o644)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	os2, _ := ssh.NewSignerFromKey(other)
	os.WriteFile(changed, []byte(knownhosts.Line([]string{srv.addr}, os2.PublicKey())+"\n"), 0o644)
	ctx := context.Background()

	res, err := f.k.Push(ctx, f.launch, PushRequest{Remote: "origin"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := runErr(filepath.Join(srv.root, "proj.git"), "git", "rev-parse", "main")
	if err != nil || strings.TrimSpace(out) != res.New {
		t.Fatalf("server main = %q %v, want %s", out, err, res.New)
	}
	cases := []struct{ remote, want string }{
		{"unknown", `denied: remote "unknown": ssh host key of ` + srv.addr + ` is not in the known_hosts file policy names for it (unknown host refused)`},
		{"changed", `denied: remote "changed": ssh host key of ` + srv.addr + ` does not match the known_hosts file policy names for it (changed host key refused)`},
	}
	for _, tc := range cases {
		t.Run(tc.remote, func(t *testing.T) {
			_, err := f.k.Push(ctx, f.launch, PushRequest{Remote: tc.remote})
			if !errors.Is(err, ErrDenied) || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}
