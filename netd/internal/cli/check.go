package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/guestroom/door"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	"github.com/bounded-systems/claude-box/netd/internal/server"
	doorv1 "github.com/bounded-systems/claude-box/proto/claudebox/door/v1"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

// errDenied reports a check whose verdict is not allow.
var errDenied = errors.New("not allowed")

// checkTarget turns what a user types into a target and verb: a URL, a
// host:port, or a bare host (port 443).
func checkTarget(s string) (string, egress.Verb) {
	if strings.Contains(s, "://") {
		if u, err := dest.ParseURL(s); err == nil && u.Scheme == "https" {
			return u.Target.String(), egress.VerbConnect
		}
		return s, egress.VerbHTTP
	}
	if _, err := dest.ParseHostPort(s); err != nil {
		if t, err2 := dest.ParseAuthority(s, dest.PortHTTPS); err2 == nil {
			return t.String(), egress.VerbConnect
		}
	}
	return s, egress.VerbConnect
}

func check(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	var pf policyFlags
	pf.register(fs)
	doorPath := fs.String("door", "", "ask the netd serving this door `PATH` instead of evaluating the flags locally")
	if ok, err := parse(fs, args); !ok {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: check takes one HOST[:PORT] or URL", errUsage)
	}
	target, verb := checkTarget(fs.Arg(0))
	if *doorPath != "" {
		return checkRemote(ctx, *doorPath, target, verb, stdout)
	}
	src := egress.Source{File: pf.config, Flags: egress.Spec{Allow: pf.allow, Profiles: pf.profile, Resolve: pf.resolve, AllowPrivate: pf.allowPrivate}}
	pol, err := src.Load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	d := egress.NewEngine(pol, egress.Options{}).Check(ctx, egress.Request{Target: target, Verb: verb})
	fmt.Fprintf(stdout, "%s %s: %s (rule %s)\n", d.Verdict, displayTarget(d.Target, target), d.Reason, d.Rule)
	for _, a := range d.Addrs {
		c, why := dest.Classify(a)
		if why != "" {
			fmt.Fprintf(stdout, "  address %s: %s (%s)\n", a, c, why)
		} else {
			fmt.Fprintf(stdout, "  address %s: %s\n", a, c)
		}
	}
	if d.Verdict != egress.Allow {
		if d.Err != nil {
			fmt.Fprintf(stdout, "  why: %v\n", d.Err)
		}
		return fmt.Errorf("%s: %w (%s)", displayTarget(d.Target, target), errDenied, d.Reason)
	}
	return nil
}

func displayTarget(t dest.Target, asked string) string {
	if t.Host == "" {
		return fmt.Sprintf("%q", asked)
	}
	return t.String()
}

func checkRemote(ctx context.Context, path, target string, verb egress.Verb, stdout io.Writer) error {
	cc, err := door.Dial(path)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pv := netv1.Verb_VERB_CONNECT
	if verb == egress.VerbHTTP {
		pv = netv1.Verb_VERB_HTTP
	}
	resp, err := netv1.NewEgressServiceClient(cc).CheckTarget(ctx, &netv1.CheckTargetRequest{Target: target, Verb: pv})
	if err != nil {
		return door.Unavailable(path, err)
	}
	v := resp.GetVerdict()
	name := strings.ToLower(strings.TrimPrefix(v.GetDecision().String(), "DECISION_"))
	fmt.Fprintf(stdout, "%s %s:%d: %s (rule %s)\n", name, v.GetHost(), v.GetPort(), v.GetReason(), v.GetRule())
	for _, a := range resp.GetAddresses() {
		fmt.Fprintf(stdout, "  address %s\n", a)
	}
	if v.GetDecision() != netv1.Decision_DECISION_ALLOW {
		fmt.Fprintf(stdout, "  %s\n", v.GetMessage())
		return fmt.Errorf("%s: %w (%s)", target, errDenied, v.GetReason())
	}
	return nil
}

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	sock := fs.String("socket", defaultSocket(), "control socket `PATH` (env "+EnvSocket+")")
	prom := fs.Bool("prometheus", false, "print the counters in Prometheus text format")
	if ok, err := parse(fs, args); !ok {
		return err
	}
	cc, err := door.Dial(*sock)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := doorv1.NewControlServiceClient(cc).GetStatus(ctx, &doorv1.GetStatusRequest{})
	if err != nil {
		return fmt.Errorf("%w\nhint: start it with 'netd serve' (socket %s)", door.Unavailable(*sock, err), *sock)
	}
	if *prom {
		return server.WritePrometheus(stdout, "netd_", st.GetCounters())
	}
	fmt.Fprintf(stdout, "door %s, version %s, up %s\npolicy: %s\n", st.GetDoor(), st.GetVersion(),
		st.GetUptime().AsDuration().Round(time.Second), st.GetPolicySummary())
	fmt.Fprintf(stdout, "launches: %d\n", len(st.GetLaunches()))
	for _, l := range st.GetLaunches() {
		fmt.Fprintf(stdout, "  %s account=%s door=%s socket=%s\n", l.GetLaunchId(), l.GetAccount(), l.GetDoorId(), l.GetSocketPath())
	}
	fmt.Fprintln(stdout, "counters:")
	return server.WritePrometheus(prefixWriter{stdout}, "  ", st.GetCounters())
}

// prefixWriter drops the # TYPE lines of the Prometheus rendering for the
// human status view.
type prefixWriter struct{ w io.Writer }

func (p prefixWriter) Write(b []byte) (int, error) {
	if strings.HasPrefix(string(b), "# ") {
		return len(b), nil
	}
	return p.w.Write(b)
}
