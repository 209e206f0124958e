package server

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/bounded-systems/claude-box/netd/internal/egress"
)

// Counter keys. Labelled keys are written as Prometheus series so that the
// status map renders to Prometheus text without a schema.
const (
	CounterTunnelsOpen  = "tunnels_open"
	CounterTunnelsTotal = "tunnels_total"
	CounterBytesUp      = `bytes_total{direction="up"}`
	CounterBytesDown    = `bytes_total{direction="down"}`
)

// DecisionKey is the counter key of decisions with one verdict and reason.
func DecisionKey(verdict, reason string) string {
	return fmt.Sprintf("decisions_total{verdict=%q,reason=%q}", verdict, reason)
}

func (s *Server) count(d egress.Decision) {
	k := DecisionKey(d.Verdict.String(), d.Reason)
	s.mu.Lock()
	s.decisions[k]++
	s.mu.Unlock()
}

// Counters returns a snapshot of every counter, for GetStatus.
func (s *Server) Counters() map[string]int64 {
	s.mu.Lock()
	out := make(map[string]int64, len(s.decisions)+4)
	for k, v := range s.decisions {
		out[k] = v
	}
	out[CounterTunnelsOpen] = int64(s.open)
	s.mu.Unlock()
	out[CounterTunnelsTotal] = s.tunnelsTotal.Load()
	out[CounterBytesUp] = s.bytesUp.Load()
	out[CounterBytesDown] = s.bytesDown.Load()
	return out
}

// WritePrometheus renders counters as Prometheus text exposition, each
// metric prefixed with prefix (e.g. "netd_").
func WritePrometheus(w io.Writer, prefix string, counters map[string]int64) error {
	keys := make([]string, 0, len(counters))
	for k := range counters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	typed := map[string]bool{}
	for _, k := range keys {
		name, _, _ := strings.Cut(k, "{")
		if !typed[name] {
			typed[name] = true
			kind := "counter"
			if !strings.HasSuffix(name, "_total") {
				kind = "gauge"
			}
			if _, err := fmt.Fprintf(w, "# TYPE %s%s %s\n", prefix, name, kind); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "%s%s %d\n", prefix, k, counters[k]); err != nil {
			return err
		}
	}
	return nil
}
