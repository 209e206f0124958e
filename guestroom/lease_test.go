package guestroom

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestLease(t *testing.T) {
	expiry := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := Lease{Grants: []Grant{grant("web")}, Expiry: expiry}
	tests := []struct {
		name string
		l    Lease
		now  time.Time
		live bool
	}{
		{"before", l, expiry.Add(-time.Nanosecond), true},
		{"at expiry", l, expiry, false},
		{"after", l, expiry.Add(time.Second), false},
		{"no expiry", Lease{Grants: l.Grants}, expiry.Add(-time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.l.Live(tt.now); got != tt.live {
				t.Fatalf("Live = %v, want %v", got, tt.live)
			}
			got := tt.l.At(tt.now)
			if tt.live != (len(got) == 1) {
				t.Fatalf("At = %v, live %v", got, tt.live)
			}
			p := Provider{Lease: tt.l, Now: func() time.Time { return tt.now }}
			gs, err := p.Grants()
			if tt.live {
				if err != nil || len(gs) != 1 {
					t.Fatalf("Provider.Grants = %v, %v", gs, err)
				}
				return
			}
			if gs != nil || !errors.Is(err, ErrExpired) {
				t.Fatalf("Provider.Grants = %v, %v; want nothing and ErrExpired", gs, err)
			}
		})
	}
}

func TestProviderFailsClosed(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	lease := Lease{Grants: []Grant{grant("web", cv("host", "a")), grant("vault")}, Expiry: now.Add(time.Minute)}
	ceiling := Ceiling{"web": {cv("host", "a")}}
	tests := []struct {
		name    string
		p       Provider
		wantErr error
		want    string
	}{
		{"no clock", Provider{Lease: lease}, ErrNoClock, "no clock"},
		{"not confined", Provider{Lease: Lease{Grants: []Grant{grant("web")}, Expiry: lease.Expiry}, Ceiling: ceiling, Now: clock}, ErrNotConfined, `grant not confined: door "web" lacks host=a`},
		{"expired beats confined", Provider{Lease: Lease{Grants: []Grant{grant("web")}, Expiry: now}, Ceiling: ceiling, Now: clock}, ErrExpired, "lease expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs, err := tt.p.Grants()
			if gs != nil || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Grants = %v, %v; want nothing and %v", gs, err, tt.wantErr)
			}
			if got := err.Error(); len(got) < len(tt.want) || got[:len(tt.want)] != tt.want {
				t.Fatalf("err = %q, want prefix %q", got, tt.want)
			}
		})
	}
	p := Provider{Lease: lease, Ceiling: ceiling, Now: clock}
	gs, err := p.Grants()
	if err != nil || !reflect.DeepEqual(gs, lease.Grants) {
		t.Fatalf("confined live lease: %v, %v", gs, err)
	}
	gs[0].Door.Name = "changed"
	if lease.Grants[0].Door.Name != "web" {
		t.Fatal("Provider.Grants shares the lease's slice")
	}
}

func TestCeilingConfines(t *testing.T) {
	ceiling := Ceiling{"web": {cv("host", "a"), cv("port", "443")}}
	tests := []struct {
		name string
		g    Grant
		ok   bool
	}{
		{"keeps ceiling", grant("web", cv("port", "443"), cv("host", "a")), true},
		{"narrower still", grant("web", cv("host", "a"), cv("port", "443"), cv("path", "/x")), true},
		{"dropped ceiling caveat", grant("web", cv("host", "a")), false},
		{"widened ceiling caveat", grant("web", cv("host", "*"), cv("port", "443")), false},
		{"door without ceiling", grant("vault"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ceiling.Confines(tt.g)
			if (err == nil) != tt.ok {
				t.Fatalf("Confines = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrNotConfined) {
				t.Fatalf("err = %v, want ErrNotConfined", err)
			}
		})
	}
}
