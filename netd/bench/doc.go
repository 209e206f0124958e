// Package bench measures netd (relay → door → netd serve) against a direct
// connection and against stripe/smokescreen on loopback, in one run, and
// reports ratios. It is its own module so that the peer's dependencies
// never reach netd's go.mod. Run it with `make bench` or
// `cd netd/bench && GOWORK=off go test -bench . -benchtime 1x`.
package bench
