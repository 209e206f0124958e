package extract

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type ent struct {
	name, link, body string
	typ              byte
	mode             int64
}

func file(name, body string) ent  { return ent{name: name, body: body, typ: tar.TypeReg, mode: 0o644} }
func dir(name string) ent         { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) ent { return ent{name: name, link: to, typ: tar.TypeSymlink} }
func hardlink(name, to string) ent {
	return ent{name: name, link: to, typ: tar.TypeLink}
}

func mktar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("header %q: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox returns (parent, dir): dir is the extraction target, parent also
// holds a sentinel file that nothing may touch.
func sandbox(t *testing.T) (string, string) {
	t.Helper()
	parent := t.TempDir()
	d := filepath.Join(parent, "out")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "sentinel"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return parent, d
}

func TestExtractRoundTrip(t *testing.T) {
	_, d := sandbox(t)
	data := mktar(t,
		dir("./a/"),
		file("a/b.txt", "hello"),
		ent{name: "bin/run", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o4755},
		symlink("a/link", "b.txt"),
		symlink("up", "a/../a/b.txt"),
		symlink("chain", "a/link"),
		hardlink("a/hard", "a/b.txt"),
		file("deep/x/y/z", ""),
	)
	st, err := Extract(bytes.NewReader(data), d, Limits{})
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	if st.Entries != 8 || st.Bytes != 15 {
		t.Errorf("stats = %+v, want 8 entries, 15 bytes", st)
	}
	for name, want := range map[string]string{"a/b.txt": "hello", "a/link": "hello", "up": "hello", "chain": "hello", "a/hard": "hello", "bin/run": "#!/bin/sh\n"} {
		got, err := os.ReadFile(filepath.Join(d, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	fi, err := os.Stat(filepath.Join(d, "bin/run"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/run mode = %v, want 0755 without setuid", fi.Mode())
	}
}

func TestExtractRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ents   []ent
		limits Limits
		reason string
	}{
		{"absolute name", []ent{file("/etc/evil", "x")}, Limits{}, ReasonAbsolute},
		{"dot dot", []ent{file("../evil", "x")}, Limits{}, ReasonDotDot},
		{"dot dot inside", []ent{file("a/../../evil", "x")}, Limits{}, ReasonDotDot},
		{"dot dot that cleans inside", []ent{file("a/../b", "x")}, Limits{}, ReasonDotDot},
		{"backslash", []ent{file(`a\..\b`, "x")}, Limits{}, ReasonBadName},
		{"absolute symlink", []ent{symlink("l", "/etc/passwd")}, Limits{}, ReasonEscapingSymlink},
		{"escaping symlink", []ent{symlink("l", "../sentinel")}, Limits{}, ReasonEscapingSymlink},
		{"deep escaping symlink", []ent{symlink("a/b/l", "../../../x")}, Limits{}, ReasonEscapingSymlink},
		{"symlink via symlink", []ent{symlink("a", "."), symlink("b", "a/..")}, Limits{}, ReasonEscapingSymlink},
		{"symlink via later symlink", []ent{symlink("b", "a/../.."), dir("x"), symlink("a", "x")}, Limits{}, ReasonEscapingSymlink},
		// On a file system that folds names (a macOS worktree), "l" is "L"
		// and "é" composed is "é" decomposed: a target through a name that
		// folds to a link's goes through that link, whatever the order.
		{"symlink via a link of another case", []ent{dir("l"), symlink("p", "l/../sentinel"), symlink("L", ".")}, Limits{}, ReasonEscapingSymlink},
		{"symlink via a link of another case, deeper", []ent{dir("a/l"), symlink("a/p", "l/../x"), symlink("A/L", "..")}, Limits{}, ReasonEscapingSymlink},
		{"symlink via a link of another normalization", []ent{symlink("p", "e\u0301/../x"), symlink("\u00e9", ".")}, Limits{}, ReasonEscapingSymlink},
		{"symlink via a link that folds (sharp s)", []ent{symlink("p", "strasse/../x"), symlink("STRA\u00dfE", ".")}, Limits{}, ReasonEscapingSymlink},
		{"file through symlink", []ent{dir("sub"), symlink("l", "sub"), file("l/x", "x")}, Limits{}, ReasonThroughSymlink},
		{"file through escaping symlink", []ent{symlink("l", ".."), file("l/sentinel", "x")}, Limits{}, ReasonThroughSymlink},
		{"overwrite symlink", []ent{symlink("l", "x"), file("l", "x")}, Limits{}, ReasonDuplicate},
		{"hardlink outside", []ent{hardlink("h", "../sentinel")}, Limits{}, ReasonEscapingLink},
		{"hardlink absolute", []ent{hardlink("h", "/etc/passwd")}, Limits{}, ReasonEscapingLink},
		{"hardlink to symlink", []ent{symlink("l", "x"), hardlink("h", "l")}, Limits{}, ReasonEscapingLink},
		{"hardlink to missing", []ent{hardlink("h", "nothing")}, Limits{}, ReasonEscapingLink},
		{"duplicate file", []ent{file("a", "1"), file("a", "2")}, Limits{}, ReasonDuplicate},
		{"char device", []ent{{name: "dev", typ: tar.TypeChar}}, Limits{}, ReasonSpecialFile},
		{"block device", []ent{{name: "dev", typ: tar.TypeBlock}}, Limits{}, ReasonSpecialFile},
		{"fifo", []ent{{name: "p", typ: tar.TypeFifo}}, Limits{}, ReasonSpecialFile},
		{"too many files", []ent{file("a", ""), file("b", ""), file("c", "")}, Limits{MaxEntries: 2}, ReasonTooManyFiles},
		{"too large", []ent{file("a", "12345"), file("b", "123456")}, Limits{MaxBytes: 10}, ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, d := sandbox(t)
			_, err := Extract(bytes.NewReader(mktar(t, tc.ents...)), d, tc.limits)
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, ErrRefused) {
				t.Fatalf("err = %v, want refusal %s", err, tc.reason)
			}
			if re.Reason != tc.reason {
				t.Fatalf("reason = %s (%v), want %s", re.Reason, err, tc.reason)
			}
			checkContained(t, parent, d)
		})
	}
}

func TestExtractRefusesPreexistingSymlink(t *testing.T) {
	parent, d := sandbox(t)
	if err := os.Symlink(parent, filepath.Join(d, "evil")); err != nil {
		t.Fatal(err)
	}
	_, err := Extract(bytes.NewReader(mktar(t, file("evil/sentinel", "pwned"))), d, Limits{})
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != ReasonThroughSymlink {
		t.Fatalf("err = %v, want %s", err, ReasonThroughSymlink)
	}
	checkContained(t, parent, d)
}

func TestExtractTruncated(t *testing.T) {
	_, d := sandbox(t)
	data := mktar(t, file("a", strings.Repeat("x", 2000)))
	_, err := Extract(bytes.NewReader(data[:1024]), d, Limits{})
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != ReasonBadArchive {
		t.Fatalf("err = %v, want %s", err, ReasonBadArchive)
	}
}

// checkContained asserts the sentinel beside dir is untouched and that every
// symlink under dir resolves (when it resolves at all) inside dir.
func checkContained(t testing.TB, parent, d string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(parent, "sentinel"))
	if err != nil || string(got) != "keep" {
		t.Fatalf("sentinel = %q, %v", got, err)
	}
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Fatalf("parent has %d entries, want 2 (out, sentinel)", len(ents))
	}
	realDir, err := filepath.EvalSymlinks(d)
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if rel, _ := filepath.Rel(d, p); rel == "evil" {
			return nil // planted by the test itself
		}
		res, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or looping: harmless
		}
		if res != realDir && !strings.HasPrefix(res, realDir+string(filepath.Separator)) {
			t.Errorf("symlink %s resolves outside: %s", p, res)
		}
		return nil
	})
}

func FuzzExtract(f *testing.F) {
	f.Add(mktar(f, file("a", "x"), symlink("l", "a"), hardlink("h", "a")))
	f.Add(mktar(f, symlink("a", "."), symlink("b", "a/..")))
	f.Add(mktar(f, symlink("l", ".."), file("l/x", "x")))
	f.Add(mktar(f, dir("d"), symlink("d/l", "../x"), file("x", "y")))
	f.Add(mktar(f, hardlink("h", "../sentinel")))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		d := filepath.Join(parent, "out")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(parent, "sentinel"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = Extract(bytes.NewReader(data), d, Limits{MaxEntries: 64, MaxBytes: 1 << 16})
		checkContained(t, parent, d)
	})
}
