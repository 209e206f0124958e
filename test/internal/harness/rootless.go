package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RootlessUserName is the unprivileged host user the rootless tests run
// podman, the launcher and the door daemons as. ci/install.sh creates it;
// CLAUDE_BOX_E2E_ROOTLESS_USER names another.
const RootlessUserName = "claudebox-e2e"

// User is an unprivileged host user with subordinate uid and gid ranges:
// what rootless podman needs.
type User struct {
	Name string
	UID  int
	GID  int
}

// CheckRootlessUser finds the rootless test user ($CLAUDE_BOX_E2E_ROOTLESS_USER,
// else RootlessUserName) and checks that rootless podman can run as it: not
// root and not the box uid (a test must tell the host uid from the box's),
// a range in /etc/subuid and /etc/subgid, newuidmap and newgidmap installed.
func CheckRootlessUser() (User, error) {
	const fix = "run test/ci/install.sh as root"
	name := os.Getenv("CLAUDE_BOX_E2E_ROOTLESS_USER")
	if name == "" {
		name = RootlessUserName
	}
	if os.Geteuid() != 0 {
		return User{}, errors.New("the rootless tests start podman as another user: run the suite as root")
	}
	pw, err := user.Lookup(name)
	if err != nil {
		return User{}, fmt.Errorf("user %s (%s): %w", name, fix, err)
	}
	u := User{Name: name}
	if u.UID, err = strconv.Atoi(pw.Uid); err != nil {
		return User{}, fmt.Errorf("user %s: uid %q", name, pw.Uid)
	}
	if u.GID, err = strconv.Atoi(pw.Gid); err != nil {
		return User{}, fmt.Errorf("user %s: gid %q", name, pw.Gid)
	}
	if u.UID == 0 || u.UID == BoxUID {
		return User{}, fmt.Errorf("user %s has uid %d; the rootless tests need a uid other than 0 and the box's %d", name, u.UID, BoxUID)
	}
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := hasSubIDs(f, u); err != nil {
			return User{}, fmt.Errorf("%w (%s)", err, fix)
		}
	}
	for _, b := range []string{"newuidmap", "newgidmap"} {
		if _, err := exec.LookPath(b); err != nil {
			return User{}, fmt.Errorf("%s not installed (apt-get install -y uidmap): %w", b, err)
		}
	}
	return u, nil
}

// hasSubIDs checks that file (/etc/subuid or /etc/subgid) gives u a range
// of at least 65536 ids: the test image's owners go up to 65534.
func hasSubIDs(file string, u User) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("no subordinate ids for %s: %w", u.Name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 || (fields[0] != u.Name && fields[0] != strconv.Itoa(u.UID)) {
			continue
		}
		if n, err := strconv.Atoi(fields[2]); err == nil && n >= 65536 {
			return nil
		}
	}
	return fmt.Errorf("no range of 65536 subordinate ids for %s in %s", u.Name, file)
}

// SysProcAttr runs a child as u, with no supplementary groups, in a process
// group of its own (so that stopping it never signals the test).
func (u User) SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}},
	}
}

// Env is a minimal environment for a process of u: PATH, HOME,
// XDG_RUNTIME_DIR and the user's names; extra is appended.
func (u User) Env(home, runtimeDir string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"USER=" + u.Name,
		"LOGNAME=" + u.Name,
		"XDG_RUNTIME_DIR=" + runtimeDir,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
	}
	return append(env, extra...)
}

// Command is exec.CommandContext running as u with env, in dir.
func (u User) Command(ctx context.Context, env []string, dir, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = u.SysProcAttr()
	// The whole group: a podman CLI leaves helpers behind otherwise.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// Mkdir creates dir (and missing parents) with perm, giving every directory
// it creates to u.
func (u User) Mkdir(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := u.Mkdir(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(dir, perm); err != nil {
		return err
	}
	return os.Chown(dir, u.UID, u.GID)
}

// WriteFile writes a file owned by u.
func (u User) WriteFile(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(path, perm); err != nil {
		return err
	}
	return os.Chown(path, u.UID, u.GID)
}

// RootlessPodman is an isolated rootless podman API service running as an
// unprivileged user: its own HOME, XDG_RUNTIME_DIR, storage (in the user's
// user namespace: files owned by its subordinate ids), state, network
// config, volumes and socket, all under Dir. The embedded Podman is its
// client side: CLI runs the remote client (as root, which may connect to
// the user's socket), and Env points a launcher at it.
type RootlessPodman struct {
	*Podman
	// User runs the service.
	User User
	// Home is the service's HOME; RuntimeDir its XDG_RUNTIME_DIR.
	Home, RuntimeDir string
}

// StartRootlessPodman starts `podman system service` as u with its state
// under dir and waits until its API answers /_ping. dir's parent must be
// traversable by u; dir itself is created for u. Close stops the service,
// its pause process and removes dir.
func StartRootlessPodman(ctx context.Context, dir string, u User, opt PodmanOptions) (*RootlessPodman, error) {
	bin, err := CheckPodman()
	if err != nil {
		return nil, err
	}
	if opt.StorageDriver == "" {
		opt.StorageDriver = "vfs"
	}
	if opt.Timeout == 0 {
		opt.Timeout = 60 * time.Second
	}
	if err := u.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("rootless podman dir: %w", err)
	}
	r := &RootlessPodman{
		Podman:     &Podman{Dir: dir, Socket: filepath.Join(dir, "podman.sock"), Bin: bin, exited: make(chan struct{}), logPath: filepath.Join(dir, "service.log")},
		User:       u,
		Home:       filepath.Join(dir, "home"),
		RuntimeDir: filepath.Join(dir, "xdg"),
	}
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{r.Home, r.RuntimeDir, tmp} {
		if err := u.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("rootless podman dir: %w", err)
		}
	}
	// The same engine settings as the rootful service (see containersConf).
	confPath := filepath.Join(dir, "containers.conf")
	if err := u.WriteFile(confPath, []byte(containersConf), 0o600); err != nil {
		return nil, fmt.Errorf("write containers.conf: %w", err)
	}
	root, runroot := filepath.Join(dir, "root"), filepath.Join(dir, "run")
	storageConf := fmt.Sprintf("[storage]\ndriver = %q\ngraphroot = %q\nrunroot = %q\n", opt.StorageDriver, root, runroot)
	storagePath := filepath.Join(dir, "storage.conf")
	if err := u.WriteFile(storagePath, []byte(storageConf), 0o600); err != nil {
		return nil, fmt.Errorf("write storage.conf: %w", err)
	}
	// The client side (the remote CLI, run as root) needs no storage.
	r.env = append(cleanEnv(os.Environ()), "CONTAINERS_CONF="+confPath)
	r.global = globalFlags(dir, root, runroot, opt.StorageDriver)
	logf, err := os.Create(r.logPath)
	if err != nil {
		return nil, fmt.Errorf("podman service log: %w", err)
	}
	args := append(append([]string{}, r.global...), "system", "service", "--time=0", "unix://"+r.Socket)
	cmd := exec.Command(bin, args...)
	cmd.Env = u.Env(r.Home, r.RuntimeDir,
		"CONTAINERS_CONF="+confPath,
		"CONTAINERS_STORAGE_CONF="+storagePath,
		"TMPDIR="+tmp,
	)
	cmd.Dir = r.Home
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = u.SysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start rootless podman service as %s: %w", u.Name, err)
	}
	r.cmd = cmd
	go func() {
		r.waitErr = cmd.Wait()
		_ = logf.Close()
		close(r.exited)
	}()
	if err := r.waitReady(ctx, opt.Timeout); err != nil {
		r.stop()
		return nil, fmt.Errorf("rootless (as %s): %w", u.Name, err)
	}
	return r, nil
}

// Close removes every container the service runs, stops it and the pause
// process that holds its user namespace, and removes Dir (as root: the
// storage holds files owned by the user's subordinate ids).
func (r *RootlessPodman) Close() error {
	err := r.Podman.Close()
	r.stop()
	if rmErr := os.RemoveAll(r.Dir); rmErr != nil && err == nil {
		err = fmt.Errorf("remove rootless podman dir: %w", rmErr)
	}
	return err
}

// stop stops the service and kills its pause process.
func (r *RootlessPodman) stop() {
	r.stopService()
	// Rootless, the service re-executes itself inside the user namespace;
	// that child can outlive its parent (a client's open events stream keeps
	// its graceful shutdown waiting). It is in the group the harness made.
	if r.cmd != nil && r.cmd.Process != nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
	// Rootless podman keeps a pause process in the user namespace it
	// created, after the service exits; its pid file is under the service's
	// tmpdir or runtime dir.
	_ = filepath.WalkDir(r.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() && p == filepath.Join(r.Dir, "root") {
			return fs.SkipDir // the image and container storage
		}
		if d.Name() != "pause.pid" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			return nil
		}
		// Only a process of the service's user: a stale file must not
		// point the kill at anything else.
		if st, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			if s, ok := st.Sys().(*syscall.Stat_t); ok && int(s.Uid) == r.User.UID {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return nil
	})
}

// TransferImage copies ref from one service to another (podman save, then
// load, through their APIs by the remote client) and returns it as dst
// knows it. dir holds the archive meanwhile.
func TransferImage(ctx context.Context, src, dst *Podman, ref, dir string) (Image, error) {
	img := Image{Ref: ref}
	if _, err := dst.CLI(ctx, "image", "exists", ref); err != nil {
		tmp, err := os.MkdirTemp(dir, "image-")
		if err != nil {
			return Image{}, fmt.Errorf("transfer image: %w", err)
		}
		defer os.RemoveAll(tmp)
		archive := filepath.Join(tmp, "image.tar")
		if _, err := src.CLI(ctx, "save", "--quiet", "--format", "docker-archive", "-o", archive, ref); err != nil {
			return Image{}, fmt.Errorf("transfer image: %w", err)
		}
		if _, err := dst.CLI(ctx, "load", "--quiet", "-i", archive); err != nil {
			return Image{}, fmt.Errorf("transfer image: %w", err)
		}
	}
	out, err := dst.CLI(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err != nil {
		return Image{}, fmt.Errorf("inspect transferred image: %w", err)
	}
	img.ID = strings.TrimSpace(string(out))
	if _, h, ok := strings.Cut(ref, ":"); ok {
		img.Hash = h
	}
	return img, nil
}

// StartDaemonAs is StartDaemon with the daemon running as u: its HOME (and
// so its control socket and minted doors) belong to u. The test's cleanup
// stops it.
func StartDaemonAs(tb testing.TB, cfg DaemonConfig, u User) *Daemon {
	tb.Helper()
	run := filepath.Join(cfg.Home, ".claude-box", "run")
	if err := u.Mkdir(run, 0o700); err != nil {
		tb.Fatalf("%s: run dir: %v", cfg.Name, err)
	}
	d := &Daemon{Name: cfg.Name, Socket: filepath.Join(run, cfg.Name+".sock"), Home: cfg.Home,
		LogPath: filepath.Join(cfg.Home, cfg.Name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(d.LogPath)
	if err != nil {
		tb.Fatalf("%s: log: %v", cfg.Name, err)
	}
	args := append([]string{"serve", "--socket", d.Socket}, cfg.Args...)
	cmd := exec.Command(cfg.Bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + cfg.Home, "USER=" + u.Name, "LOGNAME=" + u.Name}, cfg.Env...)
	if cfg.CAFile != "" {
		cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+cfg.CAFile)
	}
	cmd.Dir = cfg.Home
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = u.SysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		tb.Fatalf("%s: start as %s: %v", cfg.Name, u.Name, err)
	}
	d.cmd = cmd
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(d.exited)
	}()
	tb.Cleanup(d.Stop)
	if err := d.waitReady(30 * time.Second); err != nil {
		tb.Fatal(err)
	}
	return d
}
