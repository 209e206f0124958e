package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// doorsLogsEnv is a HOME with a log file for each daemon (so no systemd is
// asked) and an Env that reads it.
func doorsLogsEnv(t *testing.T, logs map[string]string) (Env, *strings.Builder, *strings.Builder) {
	t.Helper()
	home := t.TempDir()
	dir := filepath.Join(home, ".claude-box", "log")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for d, text := range logs {
		if err := os.WriteFile(filepath.Join(dir, d+".log"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb strings.Builder
	env := Env{Getenv: func(k string) string { return map[string]string{"HOME": home}[k] }, Stdout: &out, Stderr: &errb}
	return env, &out, &errb
}

const (
	netdLog = `{"time":"2026-12-03T10:00:01Z","level":"INFO","msg":"audit","door":"net","method":"Tunnel","account":"work","launch":"l-1","peer":"uid=1000 pid=1","target":"api.test:443","allow":true,"reason":"ok","tunnel_id":"t1"}
{"time":"2026-12-03T10:00:03Z","level":"WARN","msg":"audit","door":"net","method":"Tunnel","account":"work","launch":"l-2","peer":"uid=1000 pid=1","target":"evil.test:443\u001b[2J","allow":false,"reason":"not_allowlisted"}
{"time":"2026-12-03T10:00:05Z","level":"INFO","msg":"tunnel_closed","door":"net","method":"Tunnel","account":"work","launch":"l-1","target":"api.test:443","tunnel_id":"t1","end":"client_closed","bytes_up":1,"bytes_down":2,"duration_ms":4000}
`
	keeperdLog = `{"time":"2026-12-03T10:00:02Z","level":"INFO","msg":"audit","door":"keeper","method":"Commit","account":"work","launch":"l-1","peer":"uid=1000 pid=2","target":"/src/proj","allow":true,"reason":"ok"}
{"time":"2026-12-03T10:00:04Z","level":"INFO","msg":"listening","socket":"/run/keeperd.sock"}
`
	scoutdLog = `{"time":"2026-12-03T10:00:06Z","level":"WARN","msg":"audit","door":"scout","method":"Fetch","account":"home","launch":"l-3","peer":"uid=1000 pid=3","target":"https://x.test/","allow":false,"reason":"not_allowlisted"}
`
)

func TestDoorsLogs(t *testing.T) {
	logs := map[string]string{"netd": netdLog, "keeperd": keeperdLog, "scoutd": scoutdLog}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"one timeline of all three", nil, `TIME                      DOOR     ACCOUNT  LAUNCH  VERDICT  REASON           TARGET
2026-12-03T10:00:01.000Z  netd     work     l-1     allow    ok               api.test:443
2026-12-03T10:00:02.000Z  keeperd  work     l-1     allow    ok               /src/proj
2026-12-03T10:00:03.000Z  netd     work     l-2     deny     not_allowlisted  evil.test:443\x1b[2J
2026-12-03T10:00:05.000Z  netd     work     l-1     closed   -                api.test:443  end=client_closed bytes_up=1 bytes_down=2 duration_ms=4000
2026-12-03T10:00:06.000Z  scoutd   home     l-3     deny     not_allowlisted  https://x.test/
`},
		{"newest two", []string{"-n", "2"}, `TIME                      DOOR    ACCOUNT  LAUNCH  VERDICT  REASON           TARGET
2026-12-03T10:00:05.000Z  netd    work     l-1     closed   -                api.test:443  end=client_closed bytes_up=1 bytes_down=2 duration_ms=4000
2026-12-03T10:00:06.000Z  scoutd  home     l-3     deny     not_allowlisted  https://x.test/
`},
		{"denied in netd and scoutd", []string{"--denied", "--door", "netd", "--door", "scoutd"}, `TIME                      DOOR    ACCOUNT  LAUNCH  VERDICT  REASON           TARGET
2026-12-03T10:00:03.000Z  netd    work     l-2     deny     not_allowlisted  evil.test:443\x1b[2J
2026-12-03T10:00:06.000Z  scoutd  home     l-3     deny     not_allowlisted  https://x.test/
`},
		{"one launch", []string{"--launch", "l-1", "--door", "keeperd"}, `TIME                      DOOR     ACCOUNT  LAUNCH  VERDICT  REASON  TARGET
2026-12-03T10:00:02.000Z  keeperd  work     l-1     allow    ok      /src/proj
`},
		{"one account as JSON, unchanged", []string{"--account", "home", "--json"}, strings.SplitAfter(scoutdLog, "\n")[0]},
		{"JSON lines in time order", []string{"--launch", "l-1", "--json"}, strings.SplitAfter(netdLog, "\n")[0] + strings.SplitAfter(keeperdLog, "\n")[0] + strings.SplitAfter(netdLog, "\n")[2]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, out, errb := doorsLogsEnv(t, logs)
			if err := Run(t.Context(), append([]string{"doors", "logs"}, tc.args...), env); err != nil {
				t.Fatalf("%v (stderr %q)", err, errb.String())
			}
			if out.String() != tc.want {
				t.Fatalf("stdout\n%s\nwant\n%s", out.String(), tc.want)
			}
			if errb.Len() != 0 {
				t.Fatalf("stderr %q", errb.String())
			}
		})
	}
}

func TestDoorsLogsRefusals(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown door", []string{"--door", "nets"}, `doors logs: unknown --door "nets" (valid: netd, keeperd, scoutd)`},
		{"door names are the daemons'", []string{"--door", "netd", "--door", "keeper"}, `doors logs: unknown --door "keeper" (valid: netd, keeperd, scoutd)`},
		{"zero records", []string{"-n", "0"}, "doors logs: -n must be at least 1, got 0"},
		{"negative records", []string{"-n=-5"}, "doors logs: -n must be at least 1, got -5"},
		{"an argument", []string{"l-1"}, `doors logs takes no arguments, got "l-1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _ := doorsLogsEnv(t, map[string]string{"netd": netdLog, "keeperd": keeperdLog, "scoutd": scoutdLog})
			err := Run(t.Context(), append([]string{"doors", "logs"}, tc.args...), env)
			if ExitCode(err) != 2 {
				t.Fatalf("exit %d (%v), want 2", ExitCode(err), err)
			}
			if want := "claude-box: " + tc.want + " (see claude-box --help)\n"; Message(err) != want {
				t.Fatalf("message %q, want %q", Message(err), want)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout %q", out.String())
			}
		})
	}
	env, _, _ := doorsLogsEnv(t, nil)
	for _, args := range [][]string{{"-n", "x"}, {"--since", "1h"}} {
		err := Run(t.Context(), append([]string{"doors", "logs"}, args...), env)
		if ExitCode(err) != 2 || !strings.HasPrefix(Message(err), "claude-box: doors logs: ") {
			t.Fatalf("%q: exit %d (%q), want 2", args, ExitCode(err), Message(err))
		}
	}
}

// A log that cannot be read is named on stderr and the command fails; the
// others are still shown.
func TestDoorsLogsUnreadableLog(t *testing.T) {
	env, out, errb := doorsLogsEnv(t, map[string]string{"netd": netdLog, "scoutd": scoutdLog})
	keeperd := filepath.Join(env.Getenv("HOME"), ".claude-box", "log", "keeperd.log")
	if err := os.Mkdir(keeperd, 0o700); err != nil {
		t.Fatal(err)
	}
	err := Run(t.Context(), []string{"doors", "logs", "--denied"}, env)
	if ExitCode(err) != 1 || Message(err) != "" {
		t.Fatalf("exit %d, message %q; want 1 and the error on stderr", ExitCode(err), Message(err))
	}
	if want := "claude-box: doors logs: keeperd log: " + keeperd + " is a directory\n"; errb.String() != want {
		t.Fatalf("stderr %q, want %q", errb.String(), want)
	}
	if !strings.Contains(out.String(), "evil.test:443") || !strings.Contains(out.String(), "https://x.test/") {
		t.Fatalf("the readable logs are not shown:\n%s", out.String())
	}
}

// A bad flag on any subcommand is a usage error (exit 2) naming the
// command, as on the root.
func TestSubcommandFlagErrorsAreUsage(t *testing.T) {
	for _, args := range [][]string{
		{"doors", "status", "--bogus"},
		{"doors", "start", "--bogus"},
		{"ls", "--bogus"},
		{"doctor", "--bogus"},
	} {
		env, _, _ := doorsLogsEnv(t, nil)
		err := Run(t.Context(), args, env)
		want := "claude-box " + strings.Join(args[:len(args)-1], " ") + ": "
		if ExitCode(err) != 2 || !strings.Contains(Message(err), want) {
			t.Errorf("%q: exit %d (%q), want 2 naming %q", args, ExitCode(err), Message(err), want)
		}
	}
}
