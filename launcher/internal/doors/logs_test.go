package doors

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// logLine is one record as a daemon writes it: slog's JSON handler.
func logLine(at time.Time, level slog.Level, msg string, attrs ...slog.Attr) string {
	var b bytes.Buffer
	r := slog.NewRecord(at, level, msg, 0)
	r.AddAttrs(attrs...)
	_ = slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(context.Background(), r)
	return b.String()
}

// auditLine is an audit record with the fixed fields in their order.
func auditLine(at time.Time, account, launch, target string, allow bool, reason string, extra ...slog.Attr) string {
	level := slog.LevelInfo
	if !allow {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("door", "net"), slog.String("method", "Tunnel"),
		slog.String("account", account), slog.String("launch", launch),
		slog.String("peer", "uid=1000 pid=4242"), slog.String("target", target),
		slog.Bool("allow", allow), slog.String("reason", reason),
	}
	return logLine(at, level, "audit", append(attrs, extra...)...)
}

// writeLog writes daemon's log file under home.
func writeLog(t *testing.T, home, daemon string, lines ...string) Service {
	t.Helper()
	s := Service{Daemon: daemon, Home: home}
	if err := os.MkdirAll(filepath.Dir(s.LogFile()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.LogFile(), []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// noRunner fails the test if a log file's path runs a command.
func noRunner(t *testing.T) Runner {
	return func(_ context.Context, name string, args ...string) ([]byte, error) {
		t.Errorf("ran %s %v; a log file needs no command", name, args)
		return nil, errors.New("no commands")
	}
}

func targets(recs []LogRecord) []string {
	var out []string
	for _, r := range recs {
		if r.fields == nil {
			out = append(out, r.Daemon+" text:"+string(r.Line))
			continue
		}
		out = append(out, r.Daemon+" "+r.str("target"))
	}
	return out
}

// A 50 MiB log is read from its end in bounded memory: the newest matches
// cost what they hold, and a filter that matches nothing reads the whole
// file without allocating per line.
func TestTailLogsBoundedMemory(t *testing.T) {
	home := t.TempDir()
	s := Service{Daemon: "netd", Home: home}
	if err := os.MkdirAll(filepath.Dir(s.LogFile()), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(s.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	const size = 50 << 20
	var written int64
	var want []string
	for i := 0; written < size; i++ {
		launch, allow := "l-other", true
		if i%100 == 0 {
			launch, allow = "l-want", i%200 == 0
		}
		target := fmt.Sprintf("host-%d.test:443", i)
		line := auditLine(t0.Add(time.Duration(i)*time.Millisecond), "work", launch, target, allow, "ok",
			slog.String("why", strings.Repeat("x", 200)))
		if launch == "l-want" {
			want = append(want, "netd "+target)
		}
		n, err := w.WriteString(line)
		if err != nil {
			t.Fatal(err)
		}
		written += int64(n)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want = want[len(want)-200:]

	cases := []struct {
		name string
		q    LogQuery
		want []string
	}{
		{"the last 200 of one launch", LogQuery{N: 200, Launch: "l-want"}, want},
		{"a launch with no records reads it all", LogQuery{N: 200, Launch: "l-none"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tail, err := TailLogs(t.Context(), []Service{s}, noRunner(t), tc.q)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if got := targets(tail.Records); !slices.Equal(got, tc.want) {
				t.Fatalf("got %d records (%.3q…), want %d (%.3q…)", len(got), got, len(tc.want), tc.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Fatalf("tailing a %d MiB log allocated %d KiB; want < 8 MiB", written>>20, alloc>>10)
			}
		})
	}
}

func TestTailLogsFilters(t *testing.T) {
	suppressed := logLine(t0.Add(7*time.Second), slog.LevelWarn, "audit_suppressed",
		slog.String("door", "net"), slog.String("method", "Tunnel"), slog.String("account", "work"),
		slog.String("launch", "l-1"), slog.String("peer", "uid=1000 pid=1"), slog.String("target", "flood.test:443"),
		slog.Bool("allow", false), slog.String("reason", "not_allowlisted"),
		slog.Int64("suppressed", 37), slog.Time("first", t0), slog.Time("last", t0.Add(time.Second)), slog.Bool("final", false))
	// A summary of informational allows (CheckTarget) is not a refusal.
	informational := logLine(t0.Add(7500*time.Millisecond), slog.LevelInfo, "audit_suppressed",
		slog.String("door", "net"), slog.String("method", "CheckTarget"), slog.String("account", "work"),
		slog.String("launch", "l-1"), slog.String("target", "info.test:443"), slog.Bool("allow", true),
		slog.String("reason", "ok"), slog.String("budget", "informational"), slog.Int64("suppressed", 500))
	closed := logLine(t0.Add(8*time.Second), slog.LevelInfo, "tunnel_closed",
		slog.String("door", "net"), slog.String("method", "Tunnel"), slog.String("account", "work"),
		slog.String("launch", "l-1"), slog.String("target", "api.test:443"), slog.String("end", "client_closed"),
		slog.Int64("bytes_up", 10), slog.Int64("bytes_down", 20))
	lines := []string{
		auditLine(t0, "work", "l-1", "api.test:443", true, "ok"),
		auditLine(t0.Add(time.Second), "work", "l-1", "evil.test:443", false, "not_allowlisted"),
		auditLine(t0.Add(2*time.Second), "home", "l-2", "home.test:443", true, "ok"),
		auditLine(t0.Add(3*time.Second), "home", "l-2", "bad.test:443", false, "not_allowlisted"),
		// A launch whose id has l-1 in it is not l-1.
		auditLine(t0.Add(4*time.Second), "work", "l-10", "ten.test:443", false, "not_allowlisted"),
		logLine(t0.Add(5*time.Second), slog.LevelInfo, "serving", slog.String("socket", "/run/netd.sock")),
		logLine(t0.Add(6*time.Second), slog.LevelError, "policy reload failed", slog.String("err", "bad policy"), slog.String("target", "policy.json")),
		suppressed,
		informational,
		"\n",
		closed,
		"panic: boom\n",
		// A line that looks like a record but is not JSON.
		`{"time":"x","level":"WARN","msg":"audit","target":"torn` + "\n",
	}
	cases := []struct {
		name string
		q    LogQuery
		want []string
	}{
		{"everything kept", LogQuery{}, []string{
			"netd api.test:443", "netd evil.test:443", "netd home.test:443", "netd bad.test:443", "netd ten.test:443",
			"netd policy.json", "netd flood.test:443", "netd info.test:443", "netd api.test:443", "netd text:panic: boom",
			`netd text:{"time":"x","level":"WARN","msg":"audit","target":"torn`,
		}},
		{"no text under json", LogQuery{SkipText: true}, []string{
			"netd api.test:443", "netd evil.test:443", "netd home.test:443", "netd bad.test:443", "netd ten.test:443",
			"netd policy.json", "netd flood.test:443", "netd info.test:443", "netd api.test:443",
		}},
		{"newest two", LogQuery{N: 2, SkipText: true}, []string{"netd info.test:443", "netd api.test:443"}},
		{"launch", LogQuery{Launch: "l-1"}, []string{"netd api.test:443", "netd evil.test:443", "netd flood.test:443", "netd info.test:443", "netd api.test:443"}},
		{"account", LogQuery{Account: "home"}, []string{"netd home.test:443", "netd bad.test:443"}},
		{"denied", LogQuery{Denied: true}, []string{"netd evil.test:443", "netd bad.test:443", "netd ten.test:443", "netd flood.test:443"}},
		{"denied in a launch", LogQuery{Denied: true, Launch: "l-2"}, []string{"netd bad.test:443"}},
		{"account and launch disagree", LogQuery{Account: "home", Launch: "l-1"}, nil},
		{"a value JSON escapes", LogQuery{Launch: `l"1`}, nil},
	}
	s := writeLog(t, t.TempDir(), "netd", lines...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tail, err := TailLogs(t.Context(), []Service{s}, noRunner(t), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := targets(tail.Records); !slices.Equal(got, tc.want) {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
			if len(tail.Notes) != 0 {
				t.Fatalf("notes %q", tail.Notes)
			}
		})
	}
}

func TestTailLogsMergesDaemonsInTimeOrder(t *testing.T) {
	home := t.TempDir()
	east := time.FixedZone("east", 2*60*60)
	netd := writeLog(t, home, "netd",
		auditLine(t0.Add(1*time.Second), "work", "l-1", "n1", true, "ok"),
		"goroutine 1 [running]:\n", // no time: stays after n1
		auditLine(t0.Add(4*time.Second), "work", "l-1", "n4", true, "ok"),
		auditLine(t0.Add(6*time.Second), "work", "l-1", "n6", false, "not_allowlisted"),
	)
	// keeperd writes local times: the merge is by instant, not by text.
	keeperd := writeLog(t, home, "keeperd",
		auditLine(t0.Add(2*time.Second).In(east), "work", "l-1", "k2", true, "ok"),
		auditLine(t0.Add(3*time.Second).In(east), "work", "l-1", "k3", true, "ok"),
		auditLine(t0.Add(4*time.Second).In(east), "work", "l-1", "k4", true, "ok"),
		auditLine(t0.Add(7*time.Second).In(east), "work", "l-1", "k7", true, "ok"),
	)
	tail, err := TailLogs(t.Context(), []Service{netd, keeperd}, noRunner(t), LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"netd n1", "netd text:goroutine 1 [running]:", "keeperd k2", "keeperd k3", "netd n4", "keeperd k4", "netd n6", "keeperd k7"}
	if got := targets(tail.Records); !slices.Equal(got, want) {
		t.Fatalf("merged\n%q\nwant\n%q", got, want)
	}
	// N bounds the timeline, not each log.
	tail, err = TailLogs(t.Context(), []Service{netd, keeperd}, noRunner(t), LogQuery{N: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targets(tail.Records), []string{"keeperd k4", "netd n6", "keeperd k7"}; !slices.Equal(got, want) {
		t.Fatalf("newest 3 %q, want %q", got, want)
	}
	var out bytes.Buffer
	if err := WriteLogs(&out, tail.Records); err != nil {
		t.Fatal(err)
	}
	wantOut := `TIME                      DOOR     ACCOUNT  LAUNCH  VERDICT  REASON           TARGET
2026-12-03T10:00:04.000Z  keeperd  work     l-1     allow    ok               k4
2026-12-03T10:00:06.000Z  netd     work     l-1     deny     not_allowlisted  n6
2026-12-03T10:00:07.000Z  keeperd  work     l-1     allow    ok               k7
`
	if out.String() != wantOut {
		t.Fatalf("human view\n%s\nwant\n%s", out.String(), wantOut)
	}
}

func TestWriteLogsKinds(t *testing.T) {
	lines := []string{
		auditLine(t0, "work", "l-1", "https://scout.test/x", true, "ok", slog.Int64("bytes", 512)),
		auditLine(t0.Add(time.Second), "work", "l-1", "up.test:443", true, "upstream_unreachable", slog.String("error", "dial: refused")),
		logLine(t0.Add(2*time.Second), slog.LevelWarn, "audit_suppressed",
			slog.String("account", "work"), slog.String("launch", "l-1"), slog.String("target", "flood.test:443"),
			slog.Bool("allow", false), slog.String("reason", "not_allowlisted"),
			slog.Int64("suppressed", 37), slog.String("first", "10:00:01"), slog.String("last", "10:00:02"), slog.Bool("final", true)),
		logLine(t0.Add(3*time.Second), slog.LevelInfo, "tunnel_closed",
			slog.String("account", "work"), slog.String("launch", "l-1"), slog.String("target", "api.test:443"),
			slog.String("end", "client_closed"), slog.Int64("bytes_up", 5120), slog.Int64("bytes_down", 88213), slog.Int64("duration_ms", 5321)),
		logLine(t0.Add(4*time.Second), slog.LevelError, "serve", slog.String("err", "listen: address in use"), slog.Int("attempt", 2)),
		"fatal error: out of \x1b[31mmemory\n",
	}
	tail, err := TailLogs(t.Context(), []Service{writeLog(t, t.TempDir(), "scoutd", lines...)}, noRunner(t), LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteLogs(&out, tail.Records); err != nil {
		t.Fatal(err)
	}
	want := `TIME                      DOOR    ACCOUNT  LAUNCH  VERDICT  REASON                TARGET
2026-12-03T10:00:00.000Z  scoutd  work     l-1     allow    ok                    https://scout.test/x  bytes=512
2026-12-03T10:00:01.000Z  scoutd  work     l-1     error    upstream_unreachable  up.test:443  error=dial: refused
2026-12-03T10:00:02.000Z  scoutd  work     l-1     deny     not_allowlisted       flood.test:443  suppressed=37 first=10:00:01 last=10:00:02 final
2026-12-03T10:00:03.000Z  scoutd  work     l-1     closed   -                     api.test:443  end=client_closed bytes_up=5120 bytes_down=88213 duration_ms=5321
2026-12-03T10:00:04.000Z  scoutd  -        -       error    serve                 -  attempt=2 err=listen: address in use
-                         scoutd  -        -       text     -                     fatal error: out of \x1b[31mmemory
`
	if out.String() != want {
		t.Fatalf("human view\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	tail, err = TailLogs(t.Context(), []Service{writeLog(t, t.TempDir(), "scoutd", lines...)}, noRunner(t), LogQuery{SkipText: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLogsJSON(&out, tail.Records); err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(lines[:5], ""); out.String() != want {
		t.Fatalf("json view\n%s\nwant the lines unchanged\n%s", out.String(), want)
	}
}

func TestPrintable(t *testing.T) {
	long := strings.Repeat("a", 10<<10)
	cases := []struct {
		name, in, want string
	}{
		{"plain", "api.anthropic.com:443", "api.anthropic.com:443"},
		{"ESC starts a sequence", "a\x1b[2Jb", `a\x1b[2Jb`},
		{"C0 controls", "a\tb\nc\rd\x00e\x07", `a\x09b\x0ac\x0dd\x00e\x07`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"C1 CSI U+009B", "a\u009b31mb", `a\u009b31mb`},
		{"C1 OSC and ST", "\u009d0;title\u009c", `\u009d0;title\u009c`},
		{"bidi override", "evil\u202egnp.exe", `evil\u202egnp.exe`},
		{"bidi embeddings", "\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`},
		{"bidi isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"zero width and line separator", "a\u200bb\u2028c\ufeff", `a\u200bb\u2028c\ufeff`},
		{"invalid UTF-8", "a\xffb\xc3", `a\xffb\xc3`},
		{"a lone C1 byte is invalid UTF-8", "a\x9bb", `a\x9bb`},
		{"a backslash cannot forge an escape", `a\x1bb`, `a\\x1bb`},
		{"printable non-ASCII kept", "münchen.test 東京 ✓", "münchen.test 東京 ✓"},
		{"a 10 KiB target is cut at 200 runes", long, strings.Repeat("a", 200) + "…"},
		{"exactly 200 runes is not cut", strings.Repeat("é", 200), strings.Repeat("é", 200)},
		{"201 runes is cut", strings.Repeat("é", 201), strings.Repeat("é", 200) + "…"},
		{"escapes count as one rune", strings.Repeat("\x1b", 201), strings.Repeat(`\x1b`, 200) + "…"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Printable(tc.in, 200); got != tc.want {
				t.Fatalf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// Every string of a record a guest could have chosen reaches the terminal
// escaped, whichever column it lands in.
func TestWriteLogsEscapesEveryField(t *testing.T) {
	hostile := "\x1b]0;pwned\x07\u009b2J\u202e\xff" + strings.Repeat("z", 10<<10)
	lines := []string{
		auditLine(t0, hostile, hostile, hostile, false, hostile, slog.String("error", hostile), slog.String("bytes", hostile)),
		logLine(t0, slog.LevelWarn, hostile, slog.String(hostile, hostile)),
		logLine(t0, slog.LevelInfo, "audit_suppressed", slog.String("first", hostile), slog.String("target", hostile)),
		logLine(t0, slog.LevelInfo, "tunnel_closed", slog.String("end", hostile)),
		hostile + "\n",
	}
	tail, err := TailLogs(t.Context(), []Service{writeLog(t, t.TempDir(), "netd", lines...)}, noRunner(t), LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tail.Records) != len(lines) {
		t.Fatalf("kept %d of %d", len(tail.Records), len(lines))
	}
	var out bytes.Buffer
	if err := WriteLogs(&out, tail.Records); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"\x1b", "\x07", "\u009b", "\u202e", "\xff", strings.Repeat("z", 201)} {
		if strings.Contains(out.String(), bad) {
			t.Fatalf("output holds %q:\n%q", bad, out.String())
		}
	}
	if n := strings.Count(out.String(), "\n"); n != len(lines)+1 {
		t.Fatalf("%d lines, want a header and one per record:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), `\x1b]0;pwned\x07\u009b2J\u202e\xff`) {
		t.Fatalf("escaped form missing:\n%s", out.String())
	}
}

// fakeSystemd answers systemctl as a running user manager and journalctl
// with out, recording every command.
type fakeSystemd struct {
	up    bool
	out   map[string]string // unit -> journal
	calls []string
}

func (f *fakeSystemd) run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	switch {
	case name == "systemctl" && f.up:
		return []byte("running\n"), nil
	case name == "systemctl":
		return []byte("Failed to connect to bus: No medium found\n"), errors.New("exit status 1")
	case name == "journalctl" && len(args) > 2:
		out, ok := f.out[args[2]]
		if !ok {
			return []byte("Failed to add match\n"), errors.New("exit status 1")
		}
		return []byte(out), nil
	}
	return nil, fmt.Errorf("unexpected %s", name)
}

func TestTailLogsFromJournal(t *testing.T) {
	home := t.TempDir()
	netd, keeperd := Service{Daemon: "netd", Home: home}, Service{Daemon: "keeperd", Home: home}
	sd := &fakeSystemd{up: true, out: map[string]string{
		"claude-box-netd.service": auditLine(t0, "work", "l-1", "a.test:443", true, "ok") +
			logLine(t0.Add(time.Second), slog.LevelInfo, "serving") +
			auditLine(t0.Add(2*time.Second), "work", "l-2", "b.test:443", false, "not_allowlisted") +
			auditLine(t0.Add(3*time.Second), "work", "l-1", "c.test:443", false, "not_allowlisted"),
	}}
	tail, err := TailLogs(t.Context(), []Service{netd, keeperd}, sd.run, LogQuery{N: 5, Launch: "l-1"})
	if err == nil || err.Error() != "keeperd journal: exit status 1" {
		t.Fatalf("keeperd's journal failed; err = %v", err)
	}
	if got, want := targets(tail.Records), []string{"netd a.test:443", "netd c.test:443"}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	wantCalls := []string{
		"systemctl --user is-system-running",
		"journalctl --user -u claude-box-netd.service -n 100 --no-pager -q -o cat",
		"journalctl --user -u claude-box-keeperd.service -n 100 --no-pager -q -o cat",
	}
	if !slices.Equal(sd.calls, wantCalls) {
		t.Fatalf("commands\n%q\nwant\n%q", sd.calls, wantCalls)
	}
	// The journal is asked for a bounded number of lines whatever N is.
	sd.calls = nil
	if _, err := TailLogs(t.Context(), []Service{netd}, sd.run, LogQuery{N: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	if got := sd.calls[len(sd.calls)-1]; got != "journalctl --user -u claude-box-netd.service -n 10000 --no-pager -q -o cat" {
		t.Fatalf("journalctl %q", got)
	}

	// Without a log file or a user manager there is nothing to read: a note.
	none := &fakeSystemd{}
	tail, err = TailLogs(t.Context(), []Service{netd}, none.run, LogQuery{})
	if err != nil || len(tail.Records) != 0 {
		t.Fatalf("no systemd: %v %v", tail.Records, err)
	}
	wantNote := "netd: no log (no " + netd.LogFile() + " and no systemd user manager)"
	if !slices.Equal(tail.Notes, []string{wantNote}) {
		t.Fatalf("notes %q, want %q", tail.Notes, wantNote)
	}
}

// A log that cannot be read is named; the others are still shown.
func TestTailLogsUnreadableLogNamed(t *testing.T) {
	home := t.TempDir()
	netd := writeLog(t, home, "netd", auditLine(t0, "work", "l-1", "a.test:443", true, "ok"))
	keeperd := Service{Daemon: "keeperd", Home: home}
	if err := os.Mkdir(keeperd.LogFile(), 0o700); err != nil {
		t.Fatal(err)
	}
	tail, err := TailLogs(t.Context(), []Service{keeperd, netd}, noRunner(t), LogQuery{})
	if err == nil || err.Error() != "keeperd log: "+keeperd.LogFile()+" is a directory" {
		t.Fatalf("err = %v", err)
	}
	if got, want := targets(tail.Records), []string{"netd a.test:443"}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
}

// tailLines yields exactly the file's non-empty lines, last first, whatever
// their lengths against the chunk, and skips (and counts) over-long ones.
func TestTailLinesMatchesSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{0, 1, tailChunk - 1, tailChunk, tailChunk + 1, maxLogLine - 1, maxLogLine, maxLogLine + 1, maxLogLine + tailChunk + 7, 3 * maxLogLine}
	for round := range 40 {
		var lines []string
		for range rng.IntN(12) {
			n := rng.IntN(300)
			if rng.IntN(3) == 0 {
				n = lengths[rng.IntN(len(lengths))]
			}
			lines = append(lines, strings.Repeat(string(rune('a'+rng.IntN(26))), n))
		}
		text := strings.Join(lines, "\n")
		if rng.IntN(2) == 0 {
			text += "\n"
		}
		var want []string
		wantSkipped := 0
		for _, l := range slices.Backward(strings.Split(text, "\n")) {
			switch {
			case len(l) > maxLogLine:
				wantSkipped++
			case l != "":
				want = append(want, l)
			}
		}
		var got []string
		skipped, err := tailLines(strings.NewReader(text), int64(len(text)), func(line []byte) bool {
			got = append(got, string(line))
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) || skipped != wantSkipped {
			t.Fatalf("round %d: lengths %v: got %d lines (skipped %d), want %d (skipped %d)", round, lens(lines), len(got), skipped, len(want), wantSkipped)
		}
	}
}

func lens(ss []string) []int {
	var out []int
	for _, s := range ss {
		out = append(out, len(s))
	}
	return out
}

func TestTailLogsNotesOverLongLines(t *testing.T) {
	s := writeLog(t, t.TempDir(), "netd",
		auditLine(t0, "work", "l-1", "a.test:443", true, "ok"),
		`{"msg":"audit","target":"`+strings.Repeat("x", maxLogLine)+"\"}\n",
		auditLine(t0.Add(time.Second), "work", "l-1", "b.test:443", true, "ok"))
	tail, err := TailLogs(t.Context(), []Service{s}, noRunner(t), LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targets(tail.Records), []string{"netd a.test:443", "netd b.test:443"}; !slices.Equal(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	if want := "netd: skipped 1 line(s) over 256 KiB in " + s.LogFile(); !slices.Equal(tail.Notes, []string{want}) {
		t.Fatalf("notes %q, want %q", tail.Notes, want)
	}
}

// FuzzWriteLogs: whatever a log line holds, the terminal view is valid
// UTF-8 of graphic runes and spaces, one line per record, no field longer
// than its cut.
func FuzzWriteLogs(f *testing.F) {
	f.Add(auditLine(t0, "work", "l-1", "a\x1b[2J\u009b\u202e\xff", false, "not_allowlisted"))
	f.Add(`{"msg":"audit","target":"\u001b\u0085\u2066","allow":false}`)
	f.Add("panic: \x1b]0;x\x07")
	f.Add(`{"level":"WARN","msg":"x","\u202e":{"a":["\u009b"]}}`)
	f.Fuzz(func(t *testing.T, line string) {
		line = strings.ReplaceAll(line, "\n", " ")
		s := writeLog(t, t.TempDir(), "netd", line+"\n")
		tail, err := TailLogs(t.Context(), []Service{s}, noRunner(t), LogQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := WriteLogs(&out, tail.Records); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		if !utf8.ValidString(text) {
			t.Fatalf("invalid UTF-8: %q", text)
		}
		for _, r := range text {
			if r != '\n' && r != ' ' && !unicode.IsGraphic(r) {
				t.Fatalf("rune %U reaches the terminal: %q", r, text)
			}
		}
		if n := strings.Count(text, "\n"); n != 1+len(tail.Records) {
			t.Fatalf("%d lines for %d records: %q", n, len(tail.Records), text)
		}
	})
}
