// Command smokepeer runs stripe/smokescreen as a standalone CONNECT proxy on
// a loopback address with loopback upstreams allowed and no egress ACL: the
// peer whose RSS the netd benchmark measures.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/stripe/smokescreen/pkg/smokescreen"
	"github.com/stripe/smokescreen/pkg/smokescreen/conntrack"
	"github.com/stripe/smokescreen/pkg/smokescreen/metrics"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "smokepeer: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return fmt.Errorf("usage: smokepeer 127.0.0.1:PORT")
	}
	conf := smokescreen.NewConfig()
	conf.Log.SetOutput(io.Discard)
	if err := conf.SetAllowRanges([]string{"127.0.0.0/8"}); err != nil {
		return err
	}
	conf.ConnectTimeout = 10 * time.Second
	conf.AllowMissingRole = true
	conf.ConnTracker = conntrack.NewTracker(conf.IdleTimeout, metrics.NewNoOpMetricsClient(), conf.Log, atomic.Value{}, nil)
	l, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		return err
	}
	fmt.Println("listening", l.Addr())
	return http.Serve(l, smokescreen.BuildProxy(conf))
}
