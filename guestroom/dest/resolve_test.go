package dest

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// recordingLookup records the names it is asked for and knows none.
type recordingLookup struct {
	mu    sync.Mutex
	names []string
}

func (r *recordingLookup) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = append(r.names, network+" "+host)
	return []netip.Addr{netip.MustParseAddr("203.0.114.1")}, nil
}

// The name the allowlist matched is the only name looked up: it goes to
// the system resolver rooted, so resolv.conf's search domains (or the
// host name's domain) and ndots never turn x.anthropic.com into
// x.anthropic.com.corp.example, a name no entry admitted.
func TestGoResolverLooksUpTheRootedName(t *testing.T) {
	rec := &recordingLookup{}
	g := &GoResolver{r: rec}
	for _, host := range []string{"api.anthropic.com", "nx.anthropic.com", "intranet", "rooted.example.", "192.0.2.1"} {
		if _, err := g.LookupNetIP(context.Background(), host); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"ip api.anthropic.com.", "ip nx.anthropic.com.", "ip intranet.", "ip rooted.example.", "ip 192.0.2.1"}
	if strings.Join(rec.names, ",") != strings.Join(want, ",") {
		t.Fatalf("looked up %q, want %q", rec.names, want)
	}
}

// A rooted name resolves through the pure-Go resolver: a DNS server on
// loopback (the resolver's Dial is pointed at it; nothing leaves the host)
// is asked exactly the rooted name and its answer comes back.
func TestGoResolverRootedNameResolves(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var mu sync.Mutex
	var asked []string
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			name, qtype, resp := answerDNS(buf[:n], [4]byte{203, 0, 114, 7})
			mu.Lock()
			asked = append(asked, name+"/"+qtype)
			mu.Unlock()
			if resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	srv := pc.LocalAddr().String()
	g := &GoResolver{r: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", srv)
	}}}
	addrs, err := g.LookupNetIP(context.Background(), "up.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0] != netip.MustParseAddr("203.0.114.7") {
		t.Fatalf("addrs = %v", addrs)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, q := range asked {
		if !strings.HasPrefix(q, "up.example.com./") {
			t.Fatalf("dns server was asked %q, want only up.example.com.", asked)
		}
	}
}

// answerDNS answers one DNS query: an A record with a for type A, an empty
// answer for anything else. It returns the question's name and type.
func answerDNS(q []byte, a [4]byte) (name, qtype string, resp []byte) {
	if len(q) < 12 {
		return "", "", nil
	}
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return "", "", nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return "", "", nil
	}
	qt := binary.BigEndian.Uint16(q[i+1:])
	qEnd := i + 5
	name = strings.Join(labels, ".") + "."
	qtype = "other"
	if qt == 1 {
		qtype = "A"
	}
	resp = append([]byte(nil), q[:qEnd]...)
	resp[2] = 0x81                           // QR, RD
	resp[3] = 0x80                           // RA, NOERROR
	binary.BigEndian.PutUint16(resp[6:], 0)  // ANCOUNT
	binary.BigEndian.PutUint16(resp[8:], 0)  // NSCOUNT
	binary.BigEndian.PutUint16(resp[10:], 0) // ARCOUNT
	if qt == 1 {
		binary.BigEndian.PutUint16(resp[6:], 1)
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		resp = append(resp, a[:]...)
	}
	return name, qtype, resp
}
