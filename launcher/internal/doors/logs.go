package doors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of doors logs.
const (
	// DefaultLogRecords is how many records doors logs shows by default.
	DefaultLogRecords = 200
	// tailChunk is how much of a log file is read at a time, from its end.
	tailChunk = 64 << 10
	// maxLogLine is the longest line kept; a longer one is skipped whole.
	// Audit records are a few KiB at most (the daemons cut what a guest
	// chose at 1 KiB), so only a corrupt log has longer lines.
	maxLogLine = 256 << 10
	// journalPerRecord lines of the journal are asked for per record
	// wanted, up to maxJournalLines: journalctl cannot filter on JSON
	// fields, so a narrow filter may find fewer records than asked.
	journalPerRecord = 20
	maxJournalLines  = 10000
	// maxCell is the most runes of one field a human line shows.
	maxCell = 200
)

// Record messages doors logs keeps (besides the daemons' own warnings and
// errors).
const (
	msgAudit           = "audit"
	msgAuditSuppressed = "audit_suppressed"
	msgTunnelClosed    = "tunnel_closed"
)

// LogQuery says which records of the daemons' logs to show.
type LogQuery struct {
	// N is how many records to show, the newest; DefaultLogRecords when
	// zero or less.
	N int
	// Launch keeps only records whose launch field is Launch.
	Launch string
	// Account keeps only records whose account field is Account.
	Account string
	// Denied keeps only refusals: audit records with allow false, and
	// audit_suppressed records of refusals (allow false; the summaries of
	// informational and unaudited calls carry allow true).
	Denied bool
	// SkipText drops lines that are not JSON objects (a crash's stack
	// trace, say); otherwise they are kept when no filter is set.
	SkipText bool
}

func (q LogQuery) filtered() bool { return q.Launch != "" || q.Account != "" || q.Denied }

// LogRecord is one line of a daemon's log that a LogQuery kept.
type LogRecord struct {
	// Daemon is the daemon whose log it is in.
	Daemon string
	// Line is the line as written, without its newline.
	Line []byte
	// Time is the record's time; zero for a line that carries none.
	Time time.Time
	// fields are the record's fields; nil for a line that is not JSON.
	fields map[string]json.RawMessage
	// at orders the record among other daemons': Time, or for a line
	// without one the time of the record before it in the same log.
	at time.Time
}

// LogTail is what TailLogs found.
type LogTail struct {
	// Records are the newest matching records of all the logs, at most
	// N, oldest first: one timeline.
	Records []LogRecord
	// Notes say what was not there (a daemon without a log) or not shown
	// (over-long lines).
	Notes []string
}

// TailLogs collects the newest records of each daemon's log that q keeps:
// the log file when there is one (read backwards from its end, in bounded
// memory whatever its size), else the daemon's journal when a systemd user
// manager runs. Kept are audit, audit_suppressed and tunnel_closed records
// and the daemons' own warnings and errors (level WARN or above). A log
// that cannot be read is an error naming it; the others are still read.
func TailLogs(ctx context.Context, svcs []Service, run Runner, q LogQuery) (LogTail, error) {
	if q.N <= 0 {
		q.N = DefaultLogRecords
	}
	m := newMatcher(q)
	var (
		tail    LogTail
		errs    []error
		sources [][]LogRecord
		sd      *bool
	)
	systemd := func() bool {
		if sd == nil {
			v := HasSystemd(ctx, run)
			sd = &v
		}
		return *sd
	}
	for _, s := range svcs {
		recs, note, err := tailService(ctx, s, run, systemd, m)
		if err != nil {
			errs = append(errs, err)
		}
		if note != "" {
			tail.Notes = append(tail.Notes, note)
		}
		sources = append(sources, recs)
	}
	tail.Records = mergeRecords(sources, q.N)
	return tail, errors.Join(errs...)
}

// tailService collects the newest records of one daemon, oldest first.
func tailService(ctx context.Context, s Service, run Runner, systemd func() bool, m *matcher) ([]LogRecord, string, error) {
	path := s.LogFile()
	f, err := os.Open(path)
	switch {
	case err == nil:
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, "", fmt.Errorf("%s log: %w", s.Daemon, err)
		}
		if fi.IsDir() {
			return nil, "", fmt.Errorf("%s log: %s is a directory", s.Daemon, path)
		}
		recs, skipped, err := m.collect(s.Daemon, f, fi.Size())
		if err != nil {
			return recs, "", fmt.Errorf("%s log: %w", s.Daemon, err)
		}
		return recs, skippedNote(s.Daemon, path, skipped), nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("%s log: %w", s.Daemon, err)
	case !systemd():
		return nil, fmt.Sprintf("%s: no log (no %s and no systemd user manager)", s.Daemon, path), nil
	}
	out, err := run(ctx, "journalctl", "--user", "-u", s.Unit(), "-n", strconv.Itoa(journalLines(m.q.N)), "--no-pager", "-q", "-o", "cat")
	if err != nil {
		return nil, "", fmt.Errorf("%s journal: %w", s.Daemon, err)
	}
	recs, skipped, err := m.collect(s.Daemon, bytes.NewReader(out), int64(len(out)))
	if err != nil {
		return recs, "", fmt.Errorf("%s journal: %w", s.Daemon, err)
	}
	return recs, skippedNote(s.Daemon, "its journal", skipped), nil
}

// journalLines is how many journal lines to ask for to find n records.
func journalLines(n int) int {
	if n > maxJournalLines/journalPerRecord {
		return maxJournalLines
	}
	return n * journalPerRecord
}

func skippedNote(daemon, where string, skipped int) string {
	if skipped == 0 {
		return ""
	}
	return fmt.Sprintf("%s: skipped %d line(s) over %d KiB in %s", daemon, skipped, maxLogLine>>10, where)
}

// tailLines calls fn with each non-empty line of the size bytes of r, last
// first, without its newline, until fn returns false. The line is valid
// only during the call. It holds at most tailChunk+maxLogLine bytes
// whatever the size; a line longer than maxLogLine is skipped and counted.
func tailLines(r io.ReaderAt, size int64, fn func(line []byte) bool) (skipped int, err error) {
	buf := make([]byte, tailChunk+maxLogLine)
	// buf[start:] holds the bytes from pos to the end of the line being
	// assembled (its start not read yet); it never holds a newline.
	start, pos := len(buf), size
	// dropping: the line being assembled is over-long and is skipped.
	dropping := false
	emit := func(line []byte) bool {
		if dropping || len(line) > maxLogLine {
			dropping = false
			skipped++
			return true
		}
		if len(line) == 0 {
			return true
		}
		return fn(line)
	}
	for pos > 0 {
		n := int64(tailChunk)
		if pos < n {
			n = pos
		}
		start -= int(n)
		pos -= n
		if _, err := r.ReadAt(buf[start:start+int(n)], pos); err != nil && !errors.Is(err, io.EOF) {
			return skipped, err
		}
		seg := buf[start:]
		for {
			i := bytes.LastIndexByte(seg, '\n')
			if i < 0 {
				break
			}
			if !emit(seg[i+1:]) {
				return skipped, nil
			}
			seg = seg[:i]
		}
		switch {
		case dropping:
			start = len(buf)
		case len(seg) > maxLogLine:
			dropping = true
			start = len(buf)
		default:
			start = len(buf) - copy(buf[len(buf)-len(seg):], seg)
		}
	}
	if dropping || start < len(buf) {
		emit(buf[start:])
	}
	return skipped, nil
}

// matcher decides which lines a LogQuery keeps. Most lines of a long log
// are not kept, so it refuses them on their bytes before parsing any.
type matcher struct {
	q LogQuery
	// launch and account are the filter values to look for in a line's
	// bytes before parsing it; nil when JSON would escape them.
	launch, account []byte
}

func newMatcher(q LogQuery) *matcher {
	return &matcher{q: q, launch: literal(q.Launch), account: literal(q.Account)}
}

// literal is s as it appears inside a JSON string, when that is s itself.
func literal(s string) []byte {
	if s == "" {
		return nil
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return nil
		}
	}
	return []byte(s)
}

// The bytes a kept record has. The daemons log through slog's JSON
// handler, which writes keys and values without spaces and escapes every
// quote inside a value, so these cannot appear inside a field a guest chose.
const (
	markAudit      = `"msg":"audit` // audit and audit_suppressed
	markClosed     = `"msg":"tunnel_closed"`
	markWarn       = `"level":"WARN`
	markError      = `"level":"ERROR`
	markDenied     = `"allow":false`
	markSuppressed = `"msg":"audit_suppressed"`
)

// collect returns the newest m.q.N records of one log, oldest first.
func (m *matcher) collect(daemon string, r io.ReaderAt, size int64) ([]LogRecord, int, error) {
	var recs []LogRecord
	skipped, err := tailLines(r, size, func(line []byte) bool {
		if rec, ok := m.match(line); ok {
			rec.Daemon = daemon
			recs = append(recs, rec)
		}
		return len(recs) < m.q.N
	})
	slices.Reverse(recs)
	// A line without a time (a stack trace) sorts after the record before it.
	var last time.Time
	for i := range recs {
		if !recs[i].Time.IsZero() {
			last = recs[i].Time
		}
		recs[i].at = last
	}
	return recs, skipped, err
}

// match parses line when the query keeps it.
func (m *matcher) match(line []byte) (LogRecord, bool) {
	body := bytes.TrimSpace(line)
	if len(body) == 0 {
		return LogRecord{}, false
	}
	if body[0] != '{' {
		return m.text(line)
	}
	if !bytes.Contains(body, []byte(markAudit)) && !bytes.Contains(body, []byte(markClosed)) &&
		!bytes.Contains(body, []byte(markWarn)) && !bytes.Contains(body, []byte(markError)) {
		return LogRecord{}, false
	}
	if m.launch != nil && !bytes.Contains(body, m.launch) ||
		m.account != nil && !bytes.Contains(body, m.account) ||
		m.q.Denied && !bytes.Contains(body, []byte(markDenied)) {
		return LogRecord{}, false
	}
	line = bytes.Clone(line)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil || fields == nil {
		return m.text(line)
	}
	rec := LogRecord{Line: line, fields: fields}
	msg := rec.str("msg")
	switch level := rec.str("level"); {
	case msg == msgAudit || msg == msgAuditSuppressed || msg == msgTunnelClosed:
	case strings.HasPrefix(level, "WARN") || strings.HasPrefix(level, "ERROR"):
	default:
		return LogRecord{}, false
	}
	if m.q.Launch != "" && rec.str("launch") != m.q.Launch ||
		m.q.Account != "" && rec.str("account") != m.q.Account {
		return LogRecord{}, false
	}
	if m.q.Denied && !((msg == msgAudit || msg == msgAuditSuppressed) && string(fields["allow"]) == "false") {
		return LogRecord{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, rec.str("time")); err == nil {
		rec.Time = t
	}
	return rec, true
}

// text keeps a line that is not a JSON record when no filter could apply.
func (m *matcher) text(line []byte) (LogRecord, bool) {
	if m.q.SkipText || m.q.filtered() {
		return LogRecord{}, false
	}
	return LogRecord{Line: bytes.Clone(line)}, true
}

// mergeRecords merges each daemon's records (oldest first) into one
// timeline and keeps its newest n. A daemon's own order is kept; ties go
// to the daemon listed first.
func mergeRecords(sources [][]LogRecord, n int) []LogRecord {
	var out []LogRecord
	for {
		best := -1
		for i, src := range sources {
			if len(src) > 0 && (best < 0 || src[0].at.Before(sources[best][0].at)) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		out = append(out, sources[best][0])
		sources[best] = sources[best][1:]
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// str is a string field of the record; "" when absent or not a string.
func (r LogRecord) str(key string) string {
	var s string
	if v, ok := r.fields[key]; ok {
		_ = json.Unmarshal(v, &s)
	}
	return s
}

// value is any field of the record for a person to read: a string's text,
// else the field's JSON; "" when absent.
func (r LogRecord) value(key string) string {
	v, ok := r.fields[key]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// WriteLogsJSON writes each record's line unchanged, one per line: JSON
// Lines for a program. JSON escapes C0 controls, but not C1 controls or
// bidi overrides a guest may have put in a field: read it with a program
// (jq), not straight on a terminal.
func WriteLogsJSON(w io.Writer, recs []LogRecord) error {
	for _, r := range recs {
		if _, err := fmt.Fprintf(w, "%s\n", r.Line); err != nil {
			return err
		}
	}
	return nil
}

// WriteLogs writes records for a person, one line each, under a header:
//
//	TIME  DOOR  ACCOUNT  LAUNCH  VERDICT  REASON  TARGET [k=v…]
//
// TIME is UTC; DOOR the daemon; VERDICT allow, deny, error (a failure after
// an allow), closed (tunnel_closed), warn or error (the daemon's own), or
// text (a line that is not JSON, whole in TARGET). Every field is escaped
// by Printable and cut at 200 runes: what a guest sent cannot move the
// cursor, recolour or reorder the operator's terminal.
func WriteLogs(w io.Writer, recs []LogRecord) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tDOOR\tACCOUNT\tLAUNCH\tVERDICT\tREASON\tTARGET")
	for _, r := range recs {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	return tw.Flush()
}

// cells are the record's columns; the last is its target and extras.
func (r LogRecord) cells() []string {
	when := "-"
	if !r.Time.IsZero() {
		when = r.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	if r.fields == nil {
		return []string{when, cell(r.Daemon), "-", "-", "text", "-", cell(string(r.Line))}
	}
	msg, level := r.str("msg"), r.str("level")
	verdict, reason := "", r.value("reason")
	var extra []string
	add := func(keys ...string) {
		for _, k := range keys {
			if v := r.value(k); v != "" {
				extra = append(extra, Printable(k, maxCell)+"="+cell(v))
			}
		}
	}
	switch msg {
	case msgAudit:
		switch {
		case strings.HasPrefix(level, "ERROR") || r.value("error") != "":
			verdict = "error"
		case string(r.fields["allow"]) == "true":
			verdict = "allow"
		default:
			verdict = "deny"
		}
		add("bytes", "error")
	case msgAuditSuppressed:
		verdict = "deny"
		add("suppressed", "first", "last")
		if string(r.fields["final"]) == "true" {
			extra = append(extra, "final")
		}
	case msgTunnelClosed:
		verdict = "closed"
		add("end", "bytes_up", "bytes_down", "duration_ms")
	default:
		verdict = "warn"
		if strings.HasPrefix(level, "ERROR") {
			verdict = "error"
		}
		reason = msg
		var keys []string
		for k := range r.fields {
			switch k {
			case "time", "level", "msg", "account", "launch", "target":
			default:
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		add(keys...)
	}
	last := cell(r.value("target"))
	if len(extra) > 0 {
		last += "  " + strings.Join(extra, " ")
	}
	return []string{when, cell(r.Daemon), cell(r.value("account")), cell(r.value("launch")), cell(verdict), cell(reason), last}
}

// cell is s for a terminal column: escaped, cut, "-" when empty.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return Printable(s, maxCell)
}

// Printable makes s safe to print on a terminal and cuts it at max runes
// (marking a cut with "…"). It escapes what a terminal could act on
// instead of show: C0 controls and DEL as \xNN (ESC is \x1b), C1 controls
// (U+0080–U+009F, which some terminals take as CSI and friends) and every
// other rune that is not graphic — bidi overrides and isolates (U+202A–
// U+202E, U+2066–U+2069), zero-width and format characters, line and
// paragraph separators — as \uNNNN, each byte of invalid UTF-8 as \xNN,
// and a backslash as \\, so an escape in the input cannot pass for one of
// ours.
func Printable(s string, max int) string {
	var b strings.Builder
	runes := 0
	for i := 0; i < len(s); {
		if runes == max {
			b.WriteString("…")
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f || !unicode.IsGraphic(r):
			if r > 0xffff {
				fmt.Fprintf(&b, `\U%08x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
		i += size
		runes++
	}
	return b.String()
}
