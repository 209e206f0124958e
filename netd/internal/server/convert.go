package server

import (
	"net/netip"

	"github.com/bounded-systems/claude-box/guestroom/dest"
	"github.com/bounded-systems/claude-box/netd/internal/egress"
	netv1 "github.com/bounded-systems/claude-box/proto/claudebox/net/v1"
)

func fromVerb(v netv1.Verb) egress.Verb {
	switch v {
	case netv1.Verb_VERB_CONNECT:
		return egress.VerbConnect
	case netv1.Verb_VERB_HTTP:
		return egress.VerbHTTP
	}
	return 0
}

func verbName(v netv1.Verb) string {
	switch v {
	case netv1.Verb_VERB_CONNECT:
		return "CONNECT"
	case netv1.Verb_VERB_HTTP:
		return "HTTP"
	}
	return "unspecified"
}

func toDecision(v egress.Verdict) netv1.Decision {
	switch v {
	case egress.Allow:
		return netv1.Decision_DECISION_ALLOW
	case egress.BadTarget:
		return netv1.Decision_DECISION_BAD_TARGET
	case egress.Unreachable:
		return netv1.Decision_DECISION_UNREACHABLE
	case egress.Timeout:
		return netv1.Decision_DECISION_TIMEOUT
	case egress.Limited:
		return netv1.Decision_DECISION_LIMITED
	}
	return netv1.Decision_DECISION_DENY
}

func toVerdict(d egress.Decision) *netv1.Verdict {
	return &netv1.Verdict{
		Decision: toDecision(d.Verdict),
		Reason:   d.Reason,
		Message:  d.Message(),
		Host:     d.Target.Host,
		Port:     uint32(d.Target.Port),
		Rule:     d.Rule,
	}
}

func describeAddr(a netip.Addr) string {
	c, why := dest.Classify(a)
	if why != "" {
		return a.String() + " (" + string(c) + ", " + why + ")"
	}
	return a.String() + " (" + string(c) + ")"
}
