package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseLaunch(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		account string
		claude  []string
		check   func(t *testing.T, a LaunchArgs)
	}{
		{name: "empty", args: nil, account: "personal"},
		{name: "account", args: []string{"work"}, account: "work"},
		{name: "pass through in order", args: []string{"work", "--resume", "--net", "-p", "hi there", "--model", "opus"}, account: "work",
			claude: []string{"--resume", "-p", "hi there", "--model", "opus"},
			check:  func(t *testing.T, a LaunchArgs) { must(t, a.Net, "net") }},
		{name: "no account, flags first", args: []string{"--room", "dev", "--continue"}, account: "personal", claude: []string{"--continue"},
			check: func(t *testing.T, a LaunchArgs) { must(t, slices.Equal(a.Rooms, []string{"dev"}), "rooms") }},
		{name: "double dash ends our flags", args: []string{"work", "--keeper", "--", "--net", "--help", "x"}, account: "work",
			claude: []string{"--net", "--help", "x"},
			check:  func(t *testing.T, a LaunchArgs) { must(t, a.Keeper && !a.Net && !a.Help, "keeper only") }},
		{name: "equals forms", args: []string{"--repo=/r", "--writable=src", "--writable", "docs", "--net=false", "--scout=true"}, account: "personal",
			check: func(t *testing.T, a LaunchArgs) {
				must(t, a.Repo == "/r" && slices.Equal(a.Writable, []string{"src", "docs"}) && !a.Net && a.Scout, "values")
			}},
		{name: "doors repeat", args: []string{"--door", "scout:host=github.com", "--door", "vault@/srv/v.sock"}, account: "personal",
			check: func(t *testing.T, a LaunchArgs) {
				must(t, slices.Equal(a.Doors, []string{"scout:host=github.com", "vault@/srv/v.sock"}), "doors")
			}},
		{name: "help", args: []string{"work", "--help"}, account: "work", check: func(t *testing.T, a LaunchArgs) { must(t, a.Help, "help") }},
		{name: "positional prompt after account", args: []string{"work", "fix the bug"}, account: "work", claude: []string{"fix the bug"}},
		{name: "single dash flags pass", args: []string{"-c"}, account: "personal", claude: []string{"-c"}},
		{name: "unsafe flags", args: []string{"--net-open", "--repo", ".", "--repo-rw"}, account: "personal",
			check: func(t *testing.T, a LaunchArgs) { must(t, a.NetOpen && a.RepoRW, "unsafe") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := ParseLaunch(c.args)
			if err != nil {
				t.Fatal(err)
			}
			if a.Account != c.account {
				t.Errorf("account %q, want %q", a.Account, c.account)
			}
			if !slices.Equal(a.Claude, c.claude) {
				t.Errorf("claude args %q, want %q", a.Claude, c.claude)
			}
			if c.check != nil {
				c.check(t, a)
			}
		})
	}
}

func must(t *testing.T, ok bool, what string) {
	t.Helper()
	if !ok {
		t.Errorf("%s: not as expected", what)
	}
}

func TestParseLaunchRefusals(t *testing.T) {
	cases := []struct {
		name string
		args []string
		why  string
	}{
		{"bad account", []string{"a/b"}, `must match ^[A-Za-z0-9._-]+$`},
		{"spaces", []string{"my account"}, "must match"},
		{"reserved", []string{"doors"}, "is a subcommand"},
		{"missing value", []string{"--repo"}, "--repo needs a value"},
		{"bad bool", []string{"--net=maybe"}, "want true or false"},
		{"bad pids", []string{"--pids-limit", "-3"}, "positive number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseLaunch(c.args)
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("got %v, want usage error containing %q", err, c.why)
			}
			if ExitCode(err) != 2 {
				t.Fatalf("exit code %d, want 2", ExitCode(err))
			}
		})
	}
}

func TestExitCodesAndMessages(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(&ExitError{Code: 7}) != 7 || ExitCode(errors.New("x")) != 125 {
		t.Fatal("exit codes")
	}
	if Message(&ExitError{Code: 3}) != "" {
		t.Fatal("a box's own exit prints nothing")
	}
	m := Message(Hinted(errors.New("door netd at /s: not running"), "claude-box doors start"))
	if m != "claude-box: door netd at /s: not running\nhint: claude-box doors start\n" {
		t.Fatalf("message %q", m)
	}
}

func TestSubcommandsDoNotExit(t *testing.T) {
	var out, errb strings.Builder
	dir := t.TempDir()
	env := Env{Getenv: func(k string) string { return map[string]string{"HOME": dir}[k] }, Stdout: &out, Stderr: &errb}
	err := Run(t.Context(), []string{"doors", "status"}, env)
	if ExitCode(err) != 1 || Message(err) != "" || strings.Contains(errb.String(), "exit status") {
		t.Fatalf("doors status with no daemons: %v %q %q", err, Message(err), errb.String())
	}
	if !strings.Contains(out.String(), "netd: not running") || !strings.Contains(out.String(), "claude-box doors start") {
		t.Fatalf("status output:\n%s", out.String())
	}
	out.Reset()
	if err := Run(t.Context(), []string{"name", "work", "Acme", "day", "job"}, env); err != nil {
		t.Fatal(err)
	}
	if err := Run(t.Context(), []string{"name", "bad/acct", "x"}, env); ExitCode(err) != 2 {
		t.Fatalf("bad account label: %v", err)
	}
	if err := Run(t.Context(), []string{"--help"}, env); err != nil || !strings.Contains(out.String(), "Examples:") {
		t.Fatalf("help: %v\n%s", err, out.String())
	}
}

// FuzzParseLaunch: any command line either parses or is a usage error, and
// what claude receives is the input minus what claude-box consumed, in order.
func FuzzParseLaunch(f *testing.F) {
	f.Add("work\x00--resume\x00--net\x00-p\x00hi")
	f.Add("--\x00--net")
	f.Add("--repo\x00.\x00--writable=src\x00x")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		a, err := ParseLaunch(args)
		if err != nil {
			if !errors.Is(err, ErrUsage) || ExitCode(err) != 2 {
				t.Fatalf("non-usage error %v", err)
			}
			return
		}
		// claude's args are a subsequence of the input.
		i := 0
		for _, c := range a.Claude {
			for i < len(args) && args[i] != c {
				i++
			}
			if i == len(args) {
				t.Fatalf("claude arg %q not in input order %q", c, args)
			}
			i++
		}
	})
}
