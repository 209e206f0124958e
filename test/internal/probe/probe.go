// Package probe is what the in-box probe binary observes. Each check returns
// a Report; Run prints it as one line "PROBE <json>" so a test can find it in
// a box's output among anything else the entrypoint prints.
package probe

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Marker prefixes the report line.
const Marker = "PROBE "

// RulebookPath is where the test image's fake claude keeps the text it was
// given with --append-system-prompt.
const RulebookPath = "/tmp/rulebook.txt"

// Report is what a probe prints. Fields a check does not fill stay empty.
type Report struct {
	Launch     string            `json:"launch,omitempty"` // $CLAUDE_BOX_LAUNCH, always filled
	UID        int               `json:"uid"`
	GID        int               `json:"gid"`
	Status     map[string]string `json:"status,omitempty"`      // selected /proc/self/status fields
	PidsMax    string            `json:"pids_max,omitempty"`    // the pids cgroup limit as the box sees it
	Unshare    string            `json:"unshare,omitempty"`     // clone(CLONE_NEWUSER) outcome: "ok" or the error
	UnshareCmd string            `json:"unshare_cmd,omitempty"` // `unshare -U true` outcome: "ok" or its output and exit
	Mount      string            `json:"mount,omitempty"`       // mount(tmpfs) outcome: "ok" or the error
	Setuid     []string          `json:"setuid,omitempty"`      // setuid/setgid files found
	Env        map[string]string `json:"env,omitempty"`         // the environment
	Interfaces []string          `json:"interfaces,omitempty"`  // network interface names
	DNS        map[string]string `json:"dns,omitempty"`         // name -> addresses or error
	Dial       map[string]string `json:"dial,omitempty"`        // host:port -> "ok" or error
	Sockets    []string          `json:"sockets,omitempty"`     // unix sockets found on the filesystem
	Connect    map[string]string `json:"connect,omitempty"`     // socket path -> "ok" or error
	Write      map[string]string `json:"write,omitempty"`       // path -> "ok" or error
	Files      map[string]string `json:"files,omitempty"`       // path -> content or error
	HTTP       *HTTPResult       `json:"http,omitempty"`        // a request's outcome
	Forks      *ForkResult       `json:"forks,omitempty"`       // how far process creation went
	Mounts     []string          `json:"mounts,omitempty"`      // lines of /proc/self/mounts
}

// HTTPResult is the outcome of one HTTP(S) request.
type HTTPResult struct {
	URL    string `json:"url"`
	Status int    `json:"status"`
	Body   string `json:"body,omitempty"`
	Err    string `json:"err,omitempty"`
}

// ForkResult is how many processes a bounded fork loop could start.
type ForkResult struct {
	Started int    `json:"started"`
	Limit   int    `json:"limit"`
	Err     string `json:"err,omitempty"`
}

// Run dispatches a probe subcommand and prints its report.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: probe floor|net|sockets|write|read|https|forks|env|surface|wait [flags]")
	}
	var r Report
	r.UID, r.GID = os.Getuid(), os.Getgid()
	r.Launch = os.Getenv("CLAUDE_BOX_LAUNCH")
	fl := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fl.SetOutput(stderr)
	var dial, dns, paths multi
	url := fl.String("url", "", "URL to GET (https uses the environment's proxy and the system trust store)")
	limit := fl.Int("limit", 4096, "most processes the fork loop starts")
	fl.Var(&dial, "dial", "host:port to dial over TCP (repeatable)")
	fl.Var(&dns, "dns", "name to resolve (repeatable)")
	fl.Var(&paths, "path", "path to write, read or connect to (repeatable)")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "floor":
		floor(&r)
	case "net":
		network(ctx, &r, dial, dns)
	case "sockets":
		sockets(ctx, &r, paths)
	case "write":
		r.Write = map[string]string{}
		for _, p := range paths {
			r.Write[p] = errString(tryWrite(p))
		}
	case "read":
		r.Files = map[string]string{}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				r.Files[p] = "error: " + err.Error()
				continue
			}
			r.Files[p] = string(b)
		}
	case "https":
		r.HTTP = get(ctx, *url)
	case "forks":
		r.Forks = forks(ctx, *limit)
	case "env":
		r.Env = environ()
	case "wait":
		// Wait until every -dial address accepts a connection (5 s each).
		r.Dial = map[string]string{}
		for _, a := range dial {
			r.Dial[a] = errString(waitDial(ctx, a, 5*time.Second))
		}
	case "surface":
		// What a box can learn about its grants: its environment (with
		// $CLAUDE_BOX_CAPABILITIES), the sockets it holds, its network, and
		// the rulebook the fake claude saved.
		r.Env = environ()
		sockets(ctx, &r, paths)
		network(ctx, &r, dial, dns)
		r.Files = map[string]string{}
		if b, err := os.ReadFile(RulebookPath); err == nil {
			r.Files[RulebookPath] = string(b)
		} else {
			r.Files[RulebookPath] = "error: " + err.Error()
		}
	default:
		return fmt.Errorf("unknown probe %q", args[0])
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "%s%s\n", Marker, b)
	return err
}

// Parse finds the report line in a box's output.
func Parse(out string) (Report, error) {
	var r Report
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if rest, ok := strings.CutPrefix(line, Marker); ok {
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return r, fmt.Errorf("decode probe report: %w", err)
			}
			return r, nil
		}
	}
	return r, fmt.Errorf("no probe report in output: %q", out)
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// floor reads the identity and confinement the box runs under.
func floor(r *Report) {
	r.Status = map[string]string{}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch k {
			case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
				r.Status[k] = strings.TrimSpace(v)
			}
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"} {
		if b, err := os.ReadFile(p); err == nil {
			r.PidsMax = strings.TrimSpace(string(b))
			break
		}
	}
	// A multithreaded process (any Go program) always gets EINVAL from
	// unshare(CLONE_NEWUSER); a freshly cloned child asks instead, and so
	// does busybox's unshare applet.
	userns := exec.Command("/bin/true")
	userns.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	r.Unshare = errString(userns.Run())
	if out, err := exec.Command("unshare", "-U", "/bin/true").CombinedOutput(); err != nil {
		r.UnshareCmd = strings.TrimSpace(string(out)) + ": " + err.Error()
	} else {
		r.UnshareCmd = "ok"
	}
	dir, err := os.MkdirTemp("", "mnt")
	if err == nil {
		r.Mount = errString(unix.Mount("none", dir, "tmpfs", 0, ""))
		_ = unix.Unmount(dir, 0)
		_ = os.Remove(dir)
	} else {
		r.Mount = "mkdir: " + err.Error()
	}
	r.Setuid = setuidFiles()
	r.Env = environ()
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		r.Mounts = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

// skipDirs are pseudo filesystems the walks leave out.
var skipDirs = map[string]bool{"/proc": true, "/sys": true}

func setuidFiles() []string {
	var out []string
	_ = filepath.WalkDir("/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && skipDirs[p] {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err == nil && info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
				out = append(out, p)
			}
		}
		return nil
	})
	return out
}

func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// network lists interfaces, resolves names and dials addresses.
func network(ctx context.Context, r *Report, dial, dns []string) {
	ifs, err := net.Interfaces()
	if err == nil {
		for _, i := range ifs {
			r.Interfaces = append(r.Interfaces, i.Name)
		}
	}
	r.DNS = map[string]string{}
	for _, name := range dns {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(c, name)
		cancel()
		if err != nil {
			r.DNS[name] = "error: " + err.Error()
			continue
		}
		r.DNS[name] = strings.Join(addrs, ",")
	}
	r.Dial = map[string]string{}
	for _, a := range dial {
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			_ = c.Close()
		}
		r.Dial[a] = errString(err)
	}
}

// sockets lists every unix socket on the filesystem and tries to connect to
// each, and to every extra path named.
func sockets(ctx context.Context, r *Report, extra []string) {
	_ = filepath.WalkDir("/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && skipDirs[p] {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		// A socket bind-mounted over a file is a socket only to stat: the
		// directory entry still says what the mount point was.
		if info, err := os.Stat(p); err == nil && info.Mode()&fs.ModeSocket != 0 {
			r.Sockets = append(r.Sockets, p)
		}
		return nil
	})
	r.Connect = map[string]string{}
	for _, p := range append(append([]string{}, r.Sockets...), extra...) {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "unix", p)
		if err == nil {
			_ = c.Close()
		}
		r.Connect[p] = errString(err)
	}
	sort.Strings(r.Sockets)
}

func tryWrite(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString("probe\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// get performs a GET with the environment's proxy settings and the system
// trust store.
func get(ctx context.Context, url string) *HTTPResult {
	res := &HTTPResult{URL: url}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	resp, err := client.Do(req)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	res.Body = string(b)
	return res
}

// forks starts sleeping children until process creation fails or limit is
// reached, then kills them all. A box without a pids limit stops at limit
// instead of taking the host down.
func forks(ctx context.Context, limit int) *ForkResult {
	res := &ForkResult{Limit: limit}
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	for len(cmds) < limit {
		c := exec.CommandContext(ctx, "/bin/sleep", "60")
		if err := c.Start(); err != nil {
			res.Err = err.Error()
			break
		}
		cmds = append(cmds, c)
	}
	res.Started = len(cmds)
	return res
}

// waitDial polls addr until it accepts a TCP connection or timeout passes.
func waitDial(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
