package keeper

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// gitAs runs git in dir with keeperd's environment env (HOME,
// XDG_CONFIG_HOME, GIT_CONFIG_*), so a twin repository sees the same host
// config keeperd does.
func gitAs(t testing.TB, dir string, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), "git", args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "XDG_CONFIG_HOME" || strings.HasPrefix(k, "GIT_") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "GIT_AUTHOR_NAME=Host User", "GIT_AUTHOR_EMAIL=host@example.com",
		"GIT_COMMITTER_NAME=Host User", "GIT_COMMITTER_EMAIL=host@example.com", "GIT_TERMINAL_PROMPT=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// plantSecrets writes what a global excludes file typically covers, plus a
// .gitignore negation that re-includes one of them.
func plantSecrets(t *testing.T, dir string) {
	t.Helper()
	for _, p := range []string{".env", "key.pem", "special.pem", "notes.txt", "sub/.env", "sub/deep/cert.pem", "sub/notes.txt"} {
		writeFile(t, filepath.Join(dir, p), "content of "+p+"\n")
	}
	writeFile(t, filepath.Join(dir, ".gitignore"), "*.log\nbuild/\n!special.pem\n")
}

const secretPatterns = ".env\n# keys\n*.pem\n"

// `keeper commit -a` leaves out what the host user's global excludes list,
// exactly as `git add -A` does with the same config on a twin repository,
// wherever the config puts them; a .gitignore negation re-includes.
func TestCommitAllAppliesGlobalExcludes(t *testing.T) {
	needTool(t, "git")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, base string, env map[string]string)
	}{
		{"XDG_CONFIG_HOME/git/ignore", func(t *testing.T, base string, env map[string]string) {
			env["XDG_CONFIG_HOME"] = filepath.Join(base, "xdg")
			writeFile(t, filepath.Join(base, "xdg", "git", "ignore"), secretPatterns)
			writeFile(t, filepath.Join(env["HOME"], ".config", "git", "ignore"), "notes.txt\n") // XDG_CONFIG_HOME wins
		}},
		{"~/.config/git/ignore", func(t *testing.T, base string, env map[string]string) {
			writeFile(t, filepath.Join(env["HOME"], ".config", "git", "ignore"), secretPatterns)
		}},
		{"~/.gitconfig core.excludesFile with ~", func(t *testing.T, base string, env map[string]string) {
			writeFile(t, filepath.Join(env["HOME"], ".gitconfig"), "[user]\n\tname = Me\n[core]\n\texcludesFile = ~/.gitignore_global ; mine\n")
			writeFile(t, filepath.Join(env["HOME"], ".gitignore_global"), secretPatterns)
			writeFile(t, filepath.Join(env["HOME"], ".config", "git", "ignore"), "notes.txt\n") // not read once set
		}},
		{"GIT_CONFIG_GLOBAL replaces ~/.gitconfig", func(t *testing.T, base string, env map[string]string) {
			env["GIT_CONFIG_GLOBAL"] = filepath.Join(base, "cfg", "global")
			writeFile(t, env["GIT_CONFIG_GLOBAL"], "[core]\n\texcludesfile = \""+filepath.Join(base, "cfg", "ignore")+"\"\n")
			writeFile(t, filepath.Join(base, "cfg", "ignore"), secretPatterns)
			writeFile(t, filepath.Join(env["HOME"], ".gitconfig"), "[core]\n\texcludesFile = ~/decoy\n")
			writeFile(t, filepath.Join(env["HOME"], "decoy"), "notes.txt\n")
		}},
		{"~/.gitconfig after ~/.config/git/config", func(t *testing.T, base string, env map[string]string) {
			writeFile(t, filepath.Join(env["HOME"], ".config", "git", "config"), "[core]\n\texcludesFile = ~/decoy\n")
			writeFile(t, filepath.Join(env["HOME"], "decoy"), "notes.txt\n")
			writeFile(t, filepath.Join(env["HOME"], ".gitconfig"), "[core] excludesFile = ~/real\n")
			writeFile(t, filepath.Join(env["HOME"], "real"), secretPatterns)
		}},
		{"include.path relative to the including file", func(t *testing.T, base string, env map[string]string) {
			writeFile(t, filepath.Join(env["HOME"], ".gitconfig"), "[core]\n\texcludesFile = ~/decoy\n[include]\n\tpath = .gitconfig.d/ignore.inc\n")
			writeFile(t, filepath.Join(env["HOME"], "decoy"), "notes.txt\n")
			writeFile(t, filepath.Join(env["HOME"], ".gitconfig.d", "ignore.inc"), "[core]\n\texcludesFile = ~/real\n")
			writeFile(t, filepath.Join(env["HOME"], "real"), secretPatterns)
		}},
		{"includeIf gitdir and onbranch", func(t *testing.T, base string, env map[string]string) {
			writeFile(t, filepath.Join(env["HOME"], ".gitconfig"), strings.Join([]string{
				`[includeIf "gitdir:proj/"]`, "\tpath = work.inc",
				`[includeIf "gitdir/i:OTHER/"]`, "\tpath = decoy.inc",
				`[includeIf "onbranch:release/**"]`, "\tpath = decoy.inc",
				`[includeIf "hasconfig:remote.*.url:https://example.com/**"]`, "\tpath = decoy.inc",
				`[includeIf "onbranch:main"]`, "\tpath = branch.inc", ""}, "\n"))
			writeFile(t, filepath.Join(env["HOME"], "work.inc"), "[core]\n\texcludesFile = ~/decoy\n")
			writeFile(t, filepath.Join(env["HOME"], "branch.inc"), "[core]\n\texcludesFile = ~/real\n")
			writeFile(t, filepath.Join(env["HOME"], "decoy.inc"), "[core]\n\texcludesFile = ~/decoy\n")
			writeFile(t, filepath.Join(env["HOME"], "decoy"), "notes.txt\n")
			writeFile(t, filepath.Join(env["HOME"], "real"), secretPatterns)
		}},
		{"system config", func(t *testing.T, base string, env map[string]string) {
			delete(env, "GIT_CONFIG_NOSYSTEM")
			env["GIT_CONFIG_SYSTEM"] = filepath.Join(base, "etc", "gitconfig")
			writeFile(t, env["GIT_CONFIG_SYSTEM"], "[core]\n\texcludesFile = "+filepath.Join(base, "etc", "ignore")+"\n")
			writeFile(t, filepath.Join(base, "etc", "ignore"), secretPatterns)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tc.setup(t, t.TempDir(), f.env)
			twin := twinRepo(t, f.repo)
			plantSecrets(t, f.repo)
			plantSecrets(t, twin)
			res, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(changedPaths(res.Files), ","), "a notes.txt,a special.pem,a sub/notes.txt,m .gitignore"; got != want {
				t.Fatalf("committed %q, want %q", got, want)
			}
			gitAs(t, twin, f.env, "add", "-A")
			if got, want := gitAs(t, f.repo, f.env, "ls-files", "-s"), gitAs(t, twin, f.env, "ls-files", "-s"); got != want {
				t.Fatalf("index after keeper commit -a:\n%s\nafter git add -A:\n%s", got, want)
			}
			if got, want := gitAs(t, f.repo, f.env, "ls-files", "-o", "-i", "--exclude-standard"), ".env\nkey.pem\nsub/.env\nsub/deep/cert.pem\n"; got != want {
				t.Fatalf("ignored, untracked after commit: %q, want %q", got, want)
			}
			if st := gitAs(t, f.repo, f.env, "status", "--porcelain"); st != "" {
				t.Fatalf("git status after commit:\n%s", st)
			}
			// keeper status agrees: nothing left to commit.
			s, err := f.k.Status(context.Background(), f.launch)
			if err != nil || len(s.Files) != 0 {
				t.Fatalf("status = %+v, %v", s, err)
			}
		})
	}
}

// Without global excludes the same files are committed (the test above
// can fail), and the machine's own git config never reaches the fixture.
func TestCommitAllWithoutGlobalExcludes(t *testing.T) {
	f := newFixture(t, nil)
	plantSecrets(t, f.repo)
	res, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(changedPaths(res.Files), ","), "a .env,a key.pem,a notes.txt,a special.pem,a sub/.env,a sub/deep/cert.pem,a sub/notes.txt,m .gitignore"; got != want {
		t.Fatalf("committed %q, want %q", got, want)
	}
}

// A file named explicitly is committed even when excluded, exactly as a
// .gitignore'd one is (keeperd has no -f: naming a file is the request);
// a directory named explicitly is staged like -a below it.
func TestCommitPathsOfExcludedFiles(t *testing.T) {
	f := newFixture(t, nil)
	writeFile(t, filepath.Join(f.env["HOME"], ".config", "git", "ignore"), secretPatterns)
	plantSecrets(t, f.repo)
	writeFile(t, filepath.Join(f.repo, "debug.log"), "gitignored\n")
	res, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", Paths: []string{"sub"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(changedPaths(res.Files), ","), "a sub/notes.txt"; got != want {
		t.Fatalf("directory: committed %q, want %q", got, want)
	}
	res, err = f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", Paths: []string{"key.pem", "debug.log"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(changedPaths(res.Files), ","), "a debug.log,a key.pem"; got != want {
		t.Fatalf("named files: committed %q, want %q", got, want)
	}
}

// The repository's own core.excludesFile overrides the global one, as in
// git, when it names a file inside the repository or the very file the
// user's config names; one naming any other host file is refused.
func TestRepoExcludesFile(t *testing.T) {
	needTool(t, "git")
	for _, tc := range []struct {
		name      string
		value     func(home string) string
		committed string
	}{
		{"relative, in the worktree", func(string) string { return ".myignore" }, "a .env,a .myignore,a notes.txt,a special.pem,a sub/.env,a sub/notes.txt,m .gitignore"},
		{"in the git dir", func(string) string { return ".git/info/more" }, "a .env,a notes.txt,a special.pem,a sub/.env,a sub/notes.txt,m .gitignore"},
		{"the global file, by another name", func(string) string { return "~/.config/git/../git/ignore" }, "a .myignore,a notes.txt,a special.pem,a sub/notes.txt,m .gitignore"},
		{"empty: no excludes at all", func(string) string { return "" }, "a .env,a .myignore,a key.pem,a notes.txt,a special.pem,a sub/.env,a sub/deep/cert.pem,a sub/notes.txt,m .gitignore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			writeFile(t, filepath.Join(f.env["HOME"], ".config", "git", "ignore"), secretPatterns)
			run(t, f.repo, "git", "config", "core.excludesFile", tc.value(f.env["HOME"]))
			twin := twinRepo(t, f.repo)
			for _, dir := range []string{f.repo, twin} {
				plantSecrets(t, dir)
				writeFile(t, filepath.Join(dir, ".myignore"), "*.pem\n")
				writeFile(t, filepath.Join(dir, ".git", "info", "more"), "*.pem\n.myignore\n")
			}
			res, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(changedPaths(res.Files), ","); got != tc.committed {
				t.Fatalf("committed %q, want %q", got, tc.committed)
			}
			gitAs(t, twin, f.env, "add", "-A")
			if got, want := gitAs(t, f.repo, f.env, "ls-files", "-s"), gitAs(t, twin, f.env, "ls-files", "-s"); got != want {
				t.Fatalf("index after keeper commit -a:\n%s\nafter git add -A:\n%s", got, want)
			}
		})
	}
}

// Refusals: a repository config naming another host file, and global
// excludes keeperd cannot use. Every error names no host path (the box
// reads it), and nothing is committed.
func TestExcludesFileRefusals(t *testing.T) {
	needTool(t, "git")
	const used = "the host user's excludes file (core.excludesFile) cannot be used"
	const outside = "the repository's git config sets core.excludesFile to a file outside the repository; keeperd reads no host file that repository config names: set it in your global git config (git config --global core.excludesFile …) or move the file into the repository"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *fixture, home string)
		want  string
	}{
		{"repository config names a host file", func(t *testing.T, f *fixture, home string) {
			other := filepath.Join(t.TempDir(), "host-file")
			writeFile(t, other, "notes.txt\n")
			run(t, f.repo, "git", "config", "core.excludesFile", other)
		}, "failed precondition: " + outside},
		{"repository config names a host file and the global config sets none", func(t *testing.T, f *fixture, home string) {
			writeFile(t, filepath.Join(home, ".gitconfig"), "[core]\n\texcludesFile =\n")
			other := filepath.Join(t.TempDir(), "host-file")
			writeFile(t, other, "notes.txt\n")
			run(t, f.repo, "git", "config", "core.excludesFile", other)
		}, "failed precondition: " + outside},
		{"repository config names a missing host file", func(t *testing.T, f *fixture, home string) {
			// Refused like an existing one: the answer must not tell the box
			// whether a host path exists.
			run(t, f.repo, "git", "config", "core.excludesFile", filepath.Join(t.TempDir(), "no-such-file"))
		}, "failed precondition: " + outside},
		{"repository config includes another file", func(t *testing.T, f *fixture, home string) {
			inc := filepath.Join(t.TempDir(), "inc")
			writeFile(t, inc, "[core]\n\texcludesFile = /nonexistent\n")
			run(t, f.repo, "git", "config", "include.path", inc)
		}, "failed precondition: the repository's git config uses include or includeIf, which keeperd does not follow, so it cannot tell which excludes git applies: move those settings into your global git config, or commit on the host"},
		{"repository config has an includeIf", func(t *testing.T, f *fixture, home string) {
			run(t, f.repo, "git", "config", "includeIf.gitdir:/nowhere/.path", "/nonexistent")
		}, "failed precondition: the repository's git config uses include or includeIf, which keeperd does not follow, so it cannot tell which excludes git applies: move those settings into your global git config, or commit on the host"},
		{"repository config names another user's home", func(t *testing.T, f *fixture, home string) {
			run(t, f.repo, "git", "config", "core.excludesFile", "~root/.no-such-file")
		}, "failed precondition: " + outside},
		{"repository config names a symlink out of the repository", func(t *testing.T, f *fixture, home string) {
			other := filepath.Join(t.TempDir(), "host-file")
			writeFile(t, other, "notes.txt\n")
			if err := os.Symlink(other, filepath.Join(f.repo, ".git", "ign")); err != nil {
				t.Fatal(err)
			}
			run(t, f.repo, "git", "config", "core.excludesFile", ".git/ign")
		}, "failed precondition: " + used + " (it cannot be read); fix it on the host"},
		{"global relative path the box made a symlink out", func(t *testing.T, f *fixture, home string) {
			other := filepath.Join(t.TempDir(), "host-file")
			writeFile(t, other, "notes.txt\n")
			writeFile(t, filepath.Join(home, ".gitconfig"), "[core]\n\texcludesFile = rel.ign\n")
			if err := os.Symlink(other, filepath.Join(f.repo, "rel.ign")); err != nil {
				t.Fatal(err)
			}
		}, "failed precondition: " + used + " (it cannot be read); fix it on the host"},
		{"a directory", func(t *testing.T, f *fixture, home string) {
			if err := os.MkdirAll(filepath.Join(home, ".config", "git", "ignore"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "failed precondition: " + used + " (it is not a regular file); fix it on the host"},
		{"a FIFO", func(t *testing.T, f *fixture, home string) {
			if err := os.MkdirAll(filepath.Join(home, ".config", "git"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(filepath.Join(home, ".config", "git", "ignore"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "failed precondition: " + used + " (it is not a regular file); fix it on the host"},
		{"over 4 MiB", func(t *testing.T, f *fixture, home string) {
			writeFile(t, filepath.Join(home, ".config", "git", "ignore"), strings.Repeat("x\n", maxExcludesSize/2+1))
		}, "failed precondition: " + used + " (it is too large); fix it on the host"},
		{"global config git cannot parse", func(t *testing.T, f *fixture, home string) {
			writeFile(t, filepath.Join(home, ".gitconfig"), "[user]\n\tname = Me\n[core\n")
		}, "failed precondition: the host's git config cannot be parsed (bad config syntax: line 3: bad section header); fix it on the host"},
		{"include loop", func(t *testing.T, f *fixture, home string) {
			writeFile(t, filepath.Join(home, ".gitconfig"), "[include]\n\tpath = ~/.gitconfig\n")
		}, "failed precondition: git config includes nest deeper than 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			home := f.env["HOME"]
			tc.setup(t, f, home)
			plantSecrets(t, f.repo)
			head := run(t, f.repo, "git", "rev-parse", "HEAD")
			_, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
			if !errors.Is(err, ErrPrecondition) || err.Error() != tc.want {
				t.Fatalf("commit: %v\nwant: %s", err, tc.want)
			}
			if _, serr := f.k.Status(context.Background(), f.launch); serr == nil || serr.Error() != tc.want {
				t.Fatalf("status: %v", serr)
			}
			if strings.Contains(err.Error(), home) || strings.Contains(err.Error(), f.repo) || strings.Contains(err.Error(), os.TempDir()) {
				t.Fatalf("error names a host path: %v", err)
			}
			if got := run(t, f.repo, "git", "rev-parse", "HEAD"); got != head {
				t.Fatal("HEAD moved")
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // section.sub.key=value ("key!" for no value)
		err        string
	}{
		{"plain", "[core]\n\texcludesFile = /x/y\n", []string{"core..excludesfile=/x/y"}, ""},
		{"case and header on the key line", "[Core] ExcludesFile=a\n", []string{"core..excludesfile=a"}, ""},
		{"subsection keeps case and escapes", "[includeIf \"gitdir:~/Work/\\\"q\\\"/\"]\npath = x\n", []string{`includeif.gitdir:~/Work/"q"/.path=x`}, ""},
		{"old subsection syntax", "[branch.Main]\nremote = o\n", []string{"branch.main.remote=o"}, ""},
		{"quotes, escapes, inner spaces", "[a]\nk = \"  sp  \" x\\ty  \\\"z\\\\ # c\n", []string{"a..k=  sp   x\ty  \"z\\"}, ""},
		{"comment chars inside quotes", "[a]\nk = \"a;b#c\" ; comment\n", []string{"a..k=a;b#c"}, ""},
		{"continuation", "[a]\nk = one\\\n two\n", []string{"a..k=one two"}, ""},
		{"crlf", "[a]\r\nk = v\r\n", []string{"a..k=v"}, ""},
		{"no value and comments", "# top\n; also\n[a]\nflag\nflag2 # c\n", []string{"a..flag!", "a..flag2!"}, ""},
		{"bom", "\xef\xbb\xbf[a]\nk=v\n", []string{"a..k=v"}, ""},
		{"order kept across sections", "[a]\nk=1\n[b]\nk=2\n[a]\nk=3\n", []string{"a..k=1", "b..k=2", "a..k=3"}, ""},
		{"empty quoted", "[a]\nk = \"\"\n", []string{"a..k="}, ""},
		{"unterminated quote", "[a]\nk = \"x\n", nil, "line 2: unterminated quote"},
		{"bad escape", "[a]\nk = \\q\n", nil, "line 2: bad escape"},
		{"key outside section", "k = v\n", nil, "line 1: key outside a section"},
		{"bad header", "[a \"x\" y]\n", nil, "line 1: bad section header"},
		{"bad key", "[a]\nk v\n", nil, `line 2: bad key "k"`},
		{"unterminated subsection", "[a \"x\n", nil, "line 1: unterminated subsection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := parseConfig(tc.text)
			if tc.err != "" {
				if err == nil || !errors.Is(err, errConfigSyntax) || !strings.HasSuffix(err.Error(), tc.err) {
					t.Fatalf("err = %v, want …%s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				s := e.section + "." + e.sub + "." + e.key
				if e.noValue {
					s += "!"
				} else {
					s += "=" + e.value
				}
				got = append(got, s)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// parseConfig agrees with git config --list on what it accepts.
func TestParseConfigAgainstGit(t *testing.T) {
	needTool(t, "git")
	text := "[core]\n\texcludesFile = \"~/a b\" ; c\n[includeIf \"gitdir:~/x/\"]\n\tpath = p\n[branch.Dev]\n\tk = one\\\n two \\\"q\\\"\\t.\n[x \"Sub\"] y = 1 # z\n\tflag\n"
	p := filepath.Join(t.TempDir(), "cfg")
	writeFile(t, p, text)
	want := run(t, filepath.Dir(p), "git", "config", "--file", p, "--list")
	es, err := parseConfig(text)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, e := range es {
		name := e.section
		if e.sub != "" {
			name += "." + e.sub
		}
		got.WriteString(name + "." + e.key)
		if !e.noValue {
			got.WriteString("=" + e.value)
		}
		got.WriteString("\n")
	}
	if got.String() != want {
		t.Fatalf("ours:\n%s\ngit config --list:\n%s", got.String(), want)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("[core]\n\texcludesFile = \"~/x\" ; c\n[includeIf \"gitdir:~/w/\"]\npath = a\\\nb\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseConfig(s)
	})
}

func TestWildmatch(t *testing.T) {
	for _, tc := range []struct {
		pat, name string
		fold      bool
		want      bool
	}{
		{"/home/u/work/**", "/home/u/work/proj/.git", false, true},
		{"/home/u/work/**", "/home/u/other/.git", false, false},
		{"**/proj/**", "/tmp/x/proj/.git", false, true},
		{"**/proj/**", "/tmp/x/myproj/.git", false, false},
		{"**/PROJ/**", "/tmp/x/proj/.git", true, true},
		{"**/PROJ/**", "/tmp/x/proj/.git", false, false},
		{"/a/*/.git", "/a/b/.git", false, true},
		{"/a/*/.git", "/a/b/c/.git", false, false},
		{"/a/?/.git", "/a/b/.git", false, true},
		{"/a/[bc]/.git", "/a/c/.git", false, true},
		{"/a/[!bc]/.git", "/a/c/.git", false, false},
		{"release/**", "release/1.0", false, true},
		{"main", "main", false, true},
		{"main", "mainline", false, false},
		{"a.b", "axb", false, false},
		{"[unclosed", "[unclosed", false, true},
	} {
		if got := wildmatch(tc.pat, tc.name, tc.fold); got != tc.want {
			t.Errorf("wildmatch(%q, %q, %v) = %v, want %v", tc.pat, tc.name, tc.fold, got, tc.want)
		}
	}
}

// userConfigFiles lists git's order for each environment.
func TestUserConfigFiles(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"HOME": "/h"}, []string{"/etc/gitconfig", "/h/.config/git/config", "/h/.gitconfig"}},
		{map[string]string{"HOME": "/h", "XDG_CONFIG_HOME": "/x", "GIT_CONFIG_NOSYSTEM": "true"}, []string{"/x/git/config", "/h/.gitconfig"}},
		{map[string]string{"HOME": "/h", "GIT_CONFIG_GLOBAL": "/g", "GIT_CONFIG_SYSTEM": "/s", "GIT_CONFIG_NOSYSTEM": "0"}, []string{"/s", "/g"}},
		{map[string]string{"GIT_CONFIG_NOSYSTEM": "1"}, nil},
	} {
		got := userConfigFiles(func(k string) string { return tc.env[k] })
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("env %v: %q, want %q", tc.env, got, tc.want)
		}
	}
}

// An excludes file keeperd may not read refuses the request (git warns and
// goes on without it; keeperd will not commit what it would leave out).
func TestExcludesFileUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root, which reads a mode 0000 file")
	}
	f := newFixture(t, nil)
	p := filepath.Join(f.env["HOME"], ".config", "git", "ignore")
	writeFile(t, p, secretPatterns)
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	plantSecrets(t, f.repo)
	_, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
	want := "failed precondition: the host user's excludes file (core.excludesFile) cannot be used (permission denied); fix it on the host"
	if !errors.Is(err, ErrPrecondition) || err.Error() != want {
		t.Fatalf("commit: %v\nwant: %s", err, want)
	}
}

// A repository core.excludesFile naming an unknown user's home is refused
// (git dies on it) with the same words as any other host path, so the box
// learns no user names; the global excludes are not silently dropped.
func TestRepoExcludesFileUnknownUser(t *testing.T) {
	f := newFixture(t, nil)
	writeFile(t, filepath.Join(f.env["HOME"], ".config", "git", "ignore"), secretPatterns)
	cfg := filepath.Join(f.repo, ".git", "config")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, string(b)+"[core]\n\texcludesFile = ~no-such-user-keeperd/x\n")
	plantSecrets(t, f.repo)
	_, err = f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true})
	want := "failed precondition: the repository's git config sets core.excludesFile to a file outside the repository; keeperd reads no host file that repository config names: set it in your global git config (git config --global core.excludesFile …) or move the file into the repository"
	if !errors.Is(err, ErrPrecondition) || err.Error() != want {
		t.Fatalf("commit: %v\nwant: %s", err, want)
	}
}

// /dev/null is how git users switch a config file or the excludes file
// off (GIT_CONFIG_GLOBAL=/dev/null, core.excludesFile = /dev/null): git
// reads it as empty, and so does keeperd, rather than refusing every
// commit because it is not a regular file.
func TestDevNullConfigAndExcludes(t *testing.T) {
	needTool(t, "git")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, env map[string]string)
	}{
		{"GIT_CONFIG_GLOBAL=/dev/null", func(t *testing.T, env map[string]string) {
			env["GIT_CONFIG_GLOBAL"] = os.DevNull
			writeFile(t, filepath.Join(env["HOME"], ".gitconfig"), "[core]\n\texcludesFile = ~/decoy\n")
			writeFile(t, filepath.Join(env["HOME"], "decoy"), "notes.txt\n")
			writeFile(t, filepath.Join(env["HOME"], ".config", "git", "ignore"), secretPatterns)
		}},
		{"GIT_CONFIG_SYSTEM=/dev/null", func(t *testing.T, env map[string]string) {
			delete(env, "GIT_CONFIG_NOSYSTEM")
			env["GIT_CONFIG_SYSTEM"] = os.DevNull
			writeFile(t, filepath.Join(env["HOME"], ".config", "git", "ignore"), secretPatterns)
		}},
		{"core.excludesFile = /dev/null", func(t *testing.T, env map[string]string) {
			writeFile(t, filepath.Join(env["HOME"], ".gitconfig"), "[core]\n\texcludesFile = /dev/null\n")
			writeFile(t, filepath.Join(env["HOME"], ".config", "git", "ignore"), "notes.txt\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tc.setup(t, f.env)
			twin := twinRepo(t, f.repo)
			plantSecrets(t, f.repo)
			plantSecrets(t, twin)
			if _, err := f.k.Commit(context.Background(), f.launch, CommitRequest{Message: "m", All: true}); err != nil {
				t.Fatal(err)
			}
			gitAs(t, twin, f.env, "add", "-A")
			if got, want := gitAs(t, f.repo, f.env, "ls-files", "-s"), gitAs(t, twin, f.env, "ls-files", "-s"); got != want {
				t.Fatalf("index after keeper commit -a:\n%s\nafter git add -A:\n%s", got, want)
			}
		})
	}
}
