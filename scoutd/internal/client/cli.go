package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/bounded-systems/claude-box/guestroom/door"
	scoutv1 "github.com/bounded-systems/claude-box/proto/claudebox/scout/v1"
	"github.com/bounded-systems/claude-box/scoutd/internal/extract"
)

// DefaultDoor is where a box finds the scout door.
const DefaultDoor = "/run/doors/scoutd.sock"

// EnvDoor names the door socket, overriding DefaultDoor.
const EnvDoor = "SCOUTD_SOCK"

const (
	callTimeout   = 2 * time.Minute
	statusTimeout = 10 * time.Second
	streamTimeout = 30 * time.Minute
)

const usage = `usage: scout [--door PATH] [--json] COMMAND ...

commands:
  fetch URL [-o FILE] [--max-bytes N]      read a URL (https, allowlisted hosts)
  repo URL[@REF] DIR [--max-bytes N] [--max-files N]
                                           write a repository's tree at REF into DIR
  issue OWNER/REPO#N [--comments]          read a GitHub issue
  pr OWNER/REPO#N [--diff] [--comments]    read a GitHub pull request
  status                                   show the door's policy and limits

The door is --door, else $SCOUTD_SOCK, else /run/doors/scoutd.sock.
Output to a terminal has its control characters escaped; --json is for tools.
`

// IO is what the command reads and writes.
type IO struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment; nil means no environment.
	Getenv func(string) string
	// Terminal reports whether w is a terminal; nil means "check os.File".
	Terminal func(w io.Writer) bool
}

// Run runs the scout command with args (without the program name).
func Run(ctx context.Context, args []string, o IO) error {
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Terminal == nil {
		o.Terminal = isTerminal
	}
	g := flag.NewFlagSet("scout", flag.ContinueOnError)
	g.SetOutput(io.Discard)
	doorPath := g.String("door", "", "door socket")
	asJSON := g.Bool("json", false, "JSON output")
	if err := g.Parse(args); err != nil {
		_, _ = io.WriteString(o.Stderr, usage)
		return err
	}
	rest := g.Args()
	if len(rest) == 0 {
		_, _ = io.WriteString(o.Stderr, usage)
		return errors.New("no command")
	}
	cmd, rest := rest[0], rest[1:]
	if cmd == "help" || cmd == "-h" || cmd == "--help" {
		_, _ = io.WriteString(o.Stdout, usage)
		return nil
	}
	addr := *doorPath
	if addr == "" {
		addr = o.Getenv(EnvDoor)
	}
	if addr == "" {
		addr = DefaultDoor
	}
	cc, err := door.Dial(addr, doorOpts(o.Getenv)...)
	if err != nil {
		return err
	}
	defer func() { _ = cc.Close() }()
	cl := New(cc)
	if p := RawPath(addr); p != "" {
		// A unix door: fetches take the raw fast path.
		cl = cl.WithRaw(p)
	}
	c := &command{c: cl, o: o, json: *asJSON, addr: addr}
	switch cmd {
	case "fetch":
		err = c.fetch(ctx, rest)
	case "repo":
		err = c.repo(ctx, rest)
	case "issue":
		err = c.issue(ctx, rest, false)
	case "pr":
		err = c.issue(ctx, rest, true)
	case "status":
		err = c.status(ctx, rest)
	default:
		_, _ = io.WriteString(o.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	return c.explain(err)
}

type command struct {
	c    *Client
	o    IO
	json bool
	addr string
}

// parse parses flags anywhere among the arguments and returns the
// positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (c *command) fetch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	out := fs.String("o", "", "write the body to FILE")
	maxBytes := fs.Int64("max-bytes", 0, "lower the body ceiling")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: scout fetch URL [-o FILE]")
	}
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	req := &scoutv1.FetchRequest{Url: pos[0], MaxBytes: *maxBytes}
	if *out != "" {
		return c.fetchToFile(ctx, req, *out)
	}
	// Nothing reaches stdout before the trailer proves the body complete.
	var buf bytes.Buffer
	res, err := c.c.Fetch(ctx, req, &buf)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(&scoutv1.FetchResponse{Head: res.Head, Chunk: buf.Bytes(), Trailer: res.Trailer})
	}
	if res.Head.GetStatus() >= 400 {
		_, _ = fmt.Fprintf(c.o.Stderr, "scout: %s answered HTTP %d\n", escape(res.Head.GetFinalUrl()), res.Head.GetStatus())
	}
	return c.write(buf.Bytes())
}

func (c *command) fetchToFile(ctx context.Context, req *scoutv1.FetchRequest, path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	res, err := c.c.Fetch(ctx, req, f)
	cerr := f.Close()
	if err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if c.json {
		return c.printJSON(&scoutv1.FetchResponse{Head: res.Head, Trailer: res.Trailer})
	}
	_, _ = fmt.Fprintf(c.o.Stderr, "scout: %s: HTTP %d, %d bytes, sha256 %s\n", escape(path), res.Head.GetStatus(), res.Trailer.GetSize(), res.Trailer.GetSha256())
	return nil
}

// SplitRepoRef splits "URL@REF" at an "@" after the URL's host.
func SplitRepoRef(s string) (string, string) {
	hostStart := 0
	if i := strings.Index(s, "://"); i >= 0 {
		hostStart = i + 3
	}
	pathStart := strings.IndexByte(s[hostStart:], '/')
	if pathStart < 0 {
		return s, ""
	}
	pathStart += hostStart
	if i := strings.LastIndexByte(s, '@'); i > pathStart {
		return s[:i], s[i+1:]
	}
	return s, ""
}

func (c *command) repo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("repo", flag.ContinueOnError)
	maxBytes := fs.Int64("max-bytes", 0, "lower the ceiling on file bytes")
	maxFiles := fs.Int64("max-files", 0, "lower the ceiling on entries")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("usage: scout repo URL[@REF] DIR")
	}
	url, ref := SplitRepoRef(pos[0])
	dir := pos[1]
	created, err := prepareDir(dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	res, err := c.c.Snapshot(ctx, &scoutv1.SnapshotRequest{Url: url, Ref: ref, MaxBytes: *maxBytes, MaxFiles: *maxFiles}, dir,
		extract.Limits{MaxBytes: *maxBytes, MaxEntries: *maxFiles})
	if err != nil {
		cleanDir(dir, created)
		return err
	}
	if c.json {
		return c.printJSON(res.Trailer)
	}
	_, _ = fmt.Fprintf(c.o.Stderr, "scout: %s at %s: %d entries, %d bytes into %s\n", escape(url), res.Trailer.GetCommit(), res.Stats.Entries, res.Stats.Bytes, escape(dir))
	return nil
}

// prepareDir makes dir if it does not exist and refuses a non-empty one.
func prepareDir(dir string) (created bool, err error) {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, fmt.Errorf("create %s: %w", dir, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("%s: %w", dir, err)
	case len(ents) > 0:
		return false, fmt.Errorf("%s is not empty: name a new or empty directory", dir)
	}
	return false, nil
}

// cleanDir removes a failed snapshot: the directory if this run made it,
// else what it put inside.
func cleanDir(dir string, created bool) {
	if created {
		_ = os.RemoveAll(dir)
		return
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// ParseIssueRef parses "OWNER/REPO#N".
func ParseIssueRef(s string) (string, int64, error) {
	repo, num, ok := strings.Cut(s, "#")
	if !ok {
		return "", 0, fmt.Errorf("%q: want OWNER/REPO#N", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return "", 0, fmt.Errorf("%q: want OWNER/REPO#N with N a positive number", s)
	}
	return repo, n, nil
}

func (c *command) issue(ctx context.Context, args []string, pr bool) error {
	fs := flag.NewFlagSet("issue", flag.ContinueOnError)
	comments := fs.Bool("comments", false, "include comments")
	diff := fs.Bool("diff", false, "include the diff (pr only)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: scout issue|pr OWNER/REPO#N")
	}
	repo, n, err := ParseIssueRef(pos[0])
	if err != nil {
		return err
	}
	if !pr {
		if *diff {
			return errors.New("--diff is for pull requests")
		}
		resp, err := c.c.Issue(ctx, &scoutv1.GetIssueRequest{Repo: repo, Number: n, Comments: *comments})
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(resp)
		}
		return c.write([]byte(renderIssue(resp.GetIssue(), "")))
	}
	resp, err := c.c.PullRequest(ctx, &scoutv1.GetPullRequestRequest{Repo: repo, Number: n, Comments: *comments, Diff: *diff})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	extra := fmt.Sprintf("head: %s (%s)\nbase: %s\nmerged: %v  draft: %v\n", resp.GetHead(), resp.GetHeadSha(), resp.GetBase(), resp.GetMerged(), resp.GetDraft())
	out := renderIssue(resp.GetIssue(), extra)
	if resp.GetDiff() != "" {
		out += "\n--- diff ---\n" + resp.GetDiff()
	}
	return c.write([]byte(out))
}

func renderIssue(is *scoutv1.Issue, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s\n", is.GetNumber(), is.GetTitle())
	fmt.Fprintf(&b, "state: %s  author: %s  created: %s  updated: %s\n", is.GetState(), is.GetAuthor(), is.GetCreatedAt(), is.GetUpdatedAt())
	if len(is.GetLabels()) > 0 {
		fmt.Fprintf(&b, "labels: %s\n", strings.Join(is.GetLabels(), ", "))
	}
	if is.GetHtmlUrl() != "" {
		fmt.Fprintf(&b, "url: %s\n", is.GetHtmlUrl())
	}
	b.WriteString(extra)
	b.WriteString("\n")
	b.WriteString(is.GetBody())
	if !strings.HasSuffix(is.GetBody(), "\n") {
		b.WriteString("\n")
	}
	for _, c := range is.GetComments() {
		fmt.Fprintf(&b, "\n--- %s at %s ---\n%s\n", c.GetAuthor(), c.GetCreatedAt(), c.GetBody())
	}
	return b.String()
}

func (c *command) status(ctx context.Context, args []string) error {
	if len(args) != 0 {
		return errors.New("usage: scout status")
	}
	resp, err := c.c.Status(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "door: %s (account %s, launch %s, scoutd %s)\n", c.addr, resp.GetAccount(), resp.GetLaunchId(), resp.GetVersion())
	fmt.Fprintf(&b, "policy: %s\n", resp.GetPolicySummary())
	if len(resp.GetCaveats()) > 0 {
		fmt.Fprintf(&b, "caveats: %s\n", strings.Join(resp.GetCaveats(), " "))
	}
	fmt.Fprintf(&b, "limits: body %d bytes, decoded %d bytes, %d ms per request, snapshot %d bytes / %d files\n",
		resp.GetMaxBytes(), resp.GetMaxDecodedBytes(), resp.GetTimeoutMs(), resp.GetMaxSnapshotBytes(), resp.GetMaxFiles())
	return c.write([]byte(b.String()))
}

// write writes text to stdout, escaped when stdout is a terminal.
func (c *command) write(p []byte) error {
	if c.o.Terminal(c.o.Stdout) {
		p = []byte(Escape(p))
	}
	_, err := c.o.Stdout.Write(p)
	return err
}

func (c *command) printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	// protojson's spacing is deliberately unstable; tools get a fixed form.
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	out.WriteByte('\n')
	_, err = c.o.Stdout.Write(out.Bytes())
	return err
}

// explain turns a door error into "<what>: <why>" plus a hint line.
func (c *command) explain(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		// Local failures can repeat what the door sent (an OS error names
		// the path a snapshot carried): escaped like every other message.
		return &escapedError{err}
	}
	switch st.Code() {
	case codes.Unavailable:
		if reasonOf(st) == "" {
			return fmt.Errorf("%w\nhint: the scout door is not mounted or scoutd is not running; relaunch the box with --scout (host: scoutd serve)", door.Unavailable(c.addr, errors.New(st.Message())))
		}
	case codes.PermissionDenied, codes.InvalidArgument, codes.ResourceExhausted, codes.DeadlineExceeded, codes.NotFound:
	}
	msg := escape(st.Message())
	if r := reasonOf(st); r != "" && !strings.HasPrefix(msg, r) {
		msg = r + ": " + msg
	}
	return &Error{Code: st.Code(), Reason: reasonOf(st), Msg: msg}
}

// Error is a door refusal or failure, as the command reports it.
type Error struct {
	Code   codes.Code
	Reason string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// escapedError is err with its message escaped for a terminal.
type escapedError struct{ err error }

func (e *escapedError) Error() string { return escape(e.err.Error()) }
func (e *escapedError) Unwrap() error { return e.err }

func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return ""
}

func escape(s string) string { return Escape([]byte(s)) }

// Escape renders p with every control character (except newline and tab),
// DEL, C1 control and invalid UTF-8 byte written as a \xNN or \u escape, so
// that nothing a page says can drive the terminal.
func Escape(p []byte) string {
	var b strings.Builder
	b.Grow(len(p))
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, p[0])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r == 0x2028 || r == 0x2029 || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			// line separators and bidi overrides
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(p[:size])
		}
		p = p[size:]
	}
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// EnvDoorToken carries the bearer token of a loopback TCP door
// (DOORS_TCP=1); a unix door needs none.
const EnvDoorToken = "SCOUTD_DOOR_TOKEN"

func doorOpts(getenv func(string) string) []grpc.DialOption {
	opts := DialOptions()
	if t := getenv(EnvDoorToken); t != "" {
		opts = append(opts, door.WithBearer(t))
	}
	return opts
}

// DialOptions are the gRPC options of a scout client: flow-control windows
// large enough that a body streams at the speed of the socket rather than
// of the default 64 KiB window's round trips.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(8 << 20),
		grpc.WithInitialConnWindowSize(16 << 20),
		grpc.WithReadBufferSize(256 << 10),
	}
}
