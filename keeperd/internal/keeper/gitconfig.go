package keeper

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Just enough of git's config format to find core.excludesFile the way git
// does: sections and subsections, quoting, escapes, continuation lines and
// comments, in file order, with include.path and includeIf.

// configEntry is one "section.subsection.key = value" line of a config file.
type configEntry struct {
	section, sub, key string // section and key lower-cased; sub as written
	value             string
	noValue           bool // "key" alone (boolean true)
}

// maxConfigSize bounds a config file keeperd reads; git's are a few KiB.
const maxConfigSize = 1 << 20

var errConfigSyntax = errors.New("bad config syntax")

// parseConfig parses git config text. It refuses what git refuses (an
// unterminated quote or section header, a bad key name), naming the line.
func parseConfig(text string) ([]configEntry, error) {
	var out []configEntry
	p := &configParser{s: strings.TrimPrefix(text, "\xef\xbb\xbf"), line: 1}
	section, sub := "", ""
	for {
		p.skipSpace(true)
		if p.eof() {
			return out, nil
		}
		c := p.s[p.i]
		switch {
		case c == '#' || c == ';':
			p.skipLine()
		case c == '[':
			var err error
			if section, sub, err = p.header(); err != nil {
				return nil, err
			}
		case isAlpha(c):
			if section == "" {
				return nil, p.errorf("key outside a section")
			}
			e, err := p.entry()
			if err != nil {
				return nil, err
			}
			e.section, e.sub = section, sub
			out = append(out, e)
		default:
			return nil, p.errorf("unexpected %q", c)
		}
	}
}

type configParser struct {
	s    string
	i    int
	line int
}

func (p *configParser) eof() bool { return p.i >= len(p.s) }

func (p *configParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", errConfigSyntax, p.line, fmt.Sprintf(format, args...))
}

// skipSpace skips blanks, and newlines too when nl is set.
func (p *configParser) skipSpace(nl bool) {
	for !p.eof() {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\f', '\v':
		case '\n':
			if !nl {
				return
			}
			p.line++
		default:
			return
		}
		p.i++
	}
}

func (p *configParser) skipLine() {
	for !p.eof() && p.s[p.i] != '\n' {
		p.i++
	}
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isKeyChar(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' || c == '-' }

// header parses [section], [section "sub"] or the old [section.sub].
func (p *configParser) header() (string, string, error) {
	p.i++ // '['
	start := p.i
	for !p.eof() && (isKeyChar(p.s[p.i]) || p.s[p.i] == '.') {
		p.i++
	}
	name := strings.ToLower(p.s[start:p.i])
	if name == "" || p.eof() {
		return "", "", p.errorf("bad section header")
	}
	if p.s[p.i] == ']' {
		p.i++
		if section, sub, ok := strings.Cut(name, "."); ok {
			return section, sub, nil
		}
		return name, "", nil
	}
	if strings.Contains(name, ".") {
		return "", "", p.errorf("bad section header")
	}
	p.skipSpace(false)
	if p.eof() || p.s[p.i] != '"' {
		return "", "", p.errorf("bad section header")
	}
	p.i++
	var sub strings.Builder
	for {
		if p.eof() || p.s[p.i] == '\n' {
			return "", "", p.errorf("unterminated subsection")
		}
		c := p.s[p.i]
		p.i++
		if c == '"' {
			break
		}
		if c == '\\' {
			if p.eof() || p.s[p.i] == '\n' {
				return "", "", p.errorf("unterminated subsection")
			}
			c = p.s[p.i]
			p.i++
		}
		sub.WriteByte(c)
	}
	if p.eof() || p.s[p.i] != ']' {
		return "", "", p.errorf("bad section header")
	}
	p.i++
	return name, sub.String(), nil
}

// entry parses "key", "key = value" and the value's quoting, escapes,
// continuation lines and trailing comment.
func (p *configParser) entry() (configEntry, error) {
	start := p.i
	for !p.eof() && isKeyChar(p.s[p.i]) {
		p.i++
	}
	key := p.s[start:p.i]
	e := configEntry{key: strings.ToLower(key)}
	p.skipSpace(false)
	if p.eof() || p.s[p.i] == '\n' || p.s[p.i] == '#' || p.s[p.i] == ';' {
		e.noValue = true
		p.skipLine()
		return e, nil
	}
	if p.s[p.i] != '=' {
		return e, p.errorf("bad key %q", key)
	}
	p.i++
	p.skipSpace(false)
	// As git's parse_value: blanks are held back and written as one
	// space each only when more of the value follows; a comment runs to
	// the end of the line.
	var v strings.Builder
	quoted, comment, spaces := false, false, 0
	for {
		if p.eof() || p.s[p.i] == '\n' {
			if quoted && !comment {
				return e, p.errorf("unterminated quote")
			}
			e.value = v.String()
			return e, nil
		}
		c := p.s[p.i]
		p.i++
		if c == '\r' && !p.eof() && p.s[p.i] == '\n' {
			continue
		}
		switch {
		case comment:
			continue
		case !quoted && (c == ' ' || c == '\t' || c == '\r'):
			if v.Len() > 0 {
				spaces++
			}
			continue
		case !quoted && (c == '#' || c == ';'):
			comment = true
			continue
		}
		for ; spaces > 0; spaces-- {
			v.WriteByte(' ')
		}
		switch c {
		case '\\':
			if p.eof() {
				return e, p.errorf("bad escape")
			}
			d := p.s[p.i]
			p.i++
			if d == '\r' && !p.eof() && p.s[p.i] == '\n' {
				d = '\n'
				p.i++
			}
			switch d {
			case '\n':
				p.line++
				continue
			case 'n':
				d = '\n'
			case 't':
				d = '\t'
			case 'b':
				d = '\b'
			case '\\', '"':
			default:
				return e, p.errorf("bad escape")
			}
			v.WriteByte(d)
		case '"':
			quoted = !quoted
		default:
			v.WriteByte(c)
		}
	}
}

// configReader reads git config files the way git does for one
// repository: in order, following include.path and the includeIf
// conditions keeperd can evaluate (gitdir:, gitdir/i:, onbranch:).
type configReader struct {
	home    string
	gitDirs []string // the repository's git dir, as found and with symlinks resolved
	branch  string   // the current branch's short name, "" when detached
}

// maxIncludeDepth is git's limit on nested includes.
const maxIncludeDepth = 10

// read parses the file at path and calls set for every core.excludesFile,
// in order. A missing file is skipped, as git skips it.
func (r *configReader) read(path string, depth int, set func(value, from string)) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%w: git config includes nest deeper than %d", ErrPrecondition, maxIncludeDepth)
	}
	b, err := readHostFile(path, maxConfigSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return hostFileError("git config file", err)
	}
	entries, err := parseConfig(string(b))
	if err != nil {
		return fmt.Errorf("%w: the host's git config cannot be parsed (%v); fix it on the host", ErrPrecondition, err)
	}
	for _, e := range entries {
		switch {
		case e.section == "core" && e.sub == "" && e.key == "excludesfile" && !e.noValue:
			set(e.value, path)
		case e.key == "path" && !e.noValue && e.value != "" &&
			(e.section == "include" && e.sub == "" || e.section == "includeif" && r.matches(e.sub, path)):
			p, ok := expandPath(e.value, r.home)
			if !ok {
				continue
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(path), p)
			}
			if err := r.read(p, depth+1, set); err != nil {
				return err
			}
		}
	}
	return nil
}

// matches evaluates an includeIf condition. hasconfig:remote.*.url: and
// any other condition are not evaluated and do not match.
func (r *configReader) matches(cond, from string) bool {
	switch {
	case strings.HasPrefix(cond, "gitdir:"):
		return r.gitdirMatches(strings.TrimPrefix(cond, "gitdir:"), from, false)
	case strings.HasPrefix(cond, "gitdir/i:"):
		return r.gitdirMatches(strings.TrimPrefix(cond, "gitdir/i:"), from, true)
	case strings.HasPrefix(cond, "onbranch:"):
		pat := strings.TrimPrefix(cond, "onbranch:")
		if r.branch == "" || pat == "" {
			return false
		}
		if strings.HasSuffix(pat, "/") {
			pat += "**"
		}
		return wildmatch(pat, r.branch, false)
	}
	return false
}

// gitdirMatches applies git's rules for a gitdir: pattern: "~/" is the
// home directory, "./" the including file's directory, a relative pattern
// matches at any depth ("**/" before it) and a trailing "/" matches
// everything below.
func (r *configReader) gitdirMatches(pat, from string, fold bool) bool {
	switch {
	case strings.HasPrefix(pat, "~/"):
		if r.home == "" {
			return false
		}
		pat = r.home + pat[1:]
	case strings.HasPrefix(pat, "./"):
		pat = filepath.Dir(from) + pat[1:]
	case !filepath.IsAbs(pat):
		pat = "**/" + pat
	}
	if strings.HasSuffix(pat, "/") {
		pat += "**"
	}
	for _, d := range r.gitDirs {
		if wildmatch(pat, d, fold) {
			return true
		}
	}
	return false
}

// wildmatch matches name against a git wildmatch pattern with WM_PATHNAME:
// "*" and "?" stop at "/", "**/" spans directories, and a pattern that
// does not compile matches nothing.
func wildmatch(pat, name string, fold bool) bool {
	var re strings.Builder
	if fold {
		re.WriteString("(?i)")
	}
	re.WriteString("^")
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch c {
		case '*':
			if i+1 < len(pat) && pat[i+1] == '*' && (i == 0 || pat[i-1] == '/') {
				switch {
				case i+2 == len(pat):
					re.WriteString(".*")
					i++
					continue
				case pat[i+2] == '/':
					re.WriteString("(?:.*/)?")
					i += 2
					continue
				}
			}
			for i+1 < len(pat) && pat[i+1] == '*' {
				i++
			}
			re.WriteString("[^/]*")
		case '?':
			re.WriteString("[^/]")
		case '[':
			j := i + 1
			if j < len(pat) && (pat[j] == '!' || pat[j] == '^') {
				j++
			}
			if j < len(pat) && pat[j] == ']' {
				j++
			}
			for j < len(pat) && pat[j] != ']' {
				j++
			}
			if j >= len(pat) {
				re.WriteString(regexp.QuoteMeta("["))
				continue
			}
			class := pat[i+1 : j]
			if class != "" && (class[0] == '!' || class[0] == '^') {
				class = "^" + class[1:]
			}
			re.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i = j
		case '\\':
			if i+1 < len(pat) {
				i++
				c = pat[i]
			}
			re.WriteString(regexp.QuoteMeta(string(c)))
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	m, err := regexp.Compile(re.String())
	if err != nil {
		return false
	}
	return m.MatchString(name)
}

// expandPath expands a leading "~/" or "~user/" as git does for a path
// value. It fails (as git does) when the home directory is unknown.
func expandPath(p, home string) (string, bool) {
	if !strings.HasPrefix(p, "~") {
		return p, true
	}
	name, rest, _ := strings.Cut(p[1:], "/")
	dir := home
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			return "", false
		}
		dir = u.HomeDir
	}
	if dir == "" {
		return "", false
	}
	return filepath.Join(dir, rest), true
}

// readHostFile reads a host file keeperd's own user chose (a git config or
// excludes file), following symlinks as git does but never blocking on a
// FIFO, refusing anything but a regular file and anything over max bytes.
// The null device reads as empty: it is how git users switch a config or
// excludes file off (GIT_CONFIG_GLOBAL=/dev/null).
func readHostFile(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode()&fs.ModeCharDevice != 0 {
		if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
			return []byte{}, nil
		}
	}
	return readRegular(f, max)
}

var (
	errNotRegular = errors.New("not a regular file")
	errTooLarge   = errors.New("too large")
)

func readRegular(f *os.File, max int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	if fi.Size() > max {
		return nil, errTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errTooLarge
	}
	return b, nil
}

// hostFileError describes a host file that cannot be used without naming
// its path (the box reads the error).
func hostFileError(what string, err error) error {
	why := "it cannot be read"
	switch {
	case errors.Is(err, fs.ErrPermission):
		why = "permission denied"
	case errors.Is(err, errNotRegular):
		why = "it is not a regular file"
	case errors.Is(err, errTooLarge):
		why = "it is too large"
	}
	return fmt.Errorf("%w: the host user's %s cannot be used (%s); fix it on the host", ErrPrecondition, what, why)
}
