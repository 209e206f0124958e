package guestroom_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
)

// catalog is the catalog the examples share: two doors and three rooms.
func catalog() guestroom.Catalog {
	c, err := guestroom.NewCatalog([]guestroom.Door{
		{
			Name: "web", Flag: "--web", Socket: "/run/doors/web.sock", Env: "WEB_SOCK",
			Grants: "egress to allowlisted hosts",
			Usage:  "HTTP(S) through the proxy in $HTTPS_PROXY",
			Absent: "no network; relaunch with --web",
		},
		{
			Name: "vault", Flag: "--vault", Socket: "/run/doors/vault.sock", Env: "VAULT_SOCK",
			Grants: "signed commits and pushes",
			Usage:  "run `vault commit -m MSG`",
			Absent: "commits stay local; relaunch with --vault",
		},
	}, guestroom.Rooms{
		"tool": nil,
		"net":  {"web"},
		"dev":  {"web", "vault"},
	})
	if err != nil {
		panic(err) // a fixed catalog; a real caller returns the error
	}
	return c
}

func ExampleParseDoorSpec() {
	for _, s := range []string{
		"vault",
		"vault:branch=main@/srv/vault.sock",
		"vault=/srv/vault.sock",
		"vault:branch:main",
		"../vault",
	} {
		spec, err := guestroom.ParseDoorSpec(s)
		if err != nil {
			fmt.Println("refused:", err)
			continue
		}
		fmt.Printf("%s -> name=%s caveats=%v host=%q\n", s, spec.Name, spec.Caveats, spec.HostSocket)
	}
	// Output:
	// vault -> name=vault caveats=[] host=""
	// vault:branch=main@/srv/vault.sock -> name=vault caveats=[branch=main] host="/srv/vault.sock"
	// vault=/srv/vault.sock -> name=vault caveats=[] host="/srv/vault.sock"
	// refused: bad door spec "vault:branch:main": caveat 1: "branch": a caveat in a door spec is key=value
	// refused: bad door spec "../vault": bad name "../vault": want lowercase letters, digits and '-', starting with a letter or digit
}

func ExampleCatalog_Resolve() {
	c := catalog()
	for _, name := range []string{"vault", "my-door"} {
		d, _ := c.Resolve(name)
		fmt.Println(d.Name, d.Socket, d.Env)
	}
	// Output:
	// vault /run/doors/vault.sock VAULT_SOCK
	// my-door /run/my-door.sock MY_DOOR_SOCK
}

func ExampleCatalog_Room() {
	_, err := catalog().Room("lab")
	fmt.Println(err)
	fmt.Println(errors.Is(err, guestroom.ErrUnknownRoom))
	// Output:
	// unknown room "lab": known rooms: dev, net, tool
	// true
}

func ExampleCatalog_Grant() {
	c := catalog()
	spec, _ := guestroom.ParseDoorSpec("vault:branch=main")
	granted, err := c.Grant([]string{"net"}, []guestroom.DoorSpec{spec})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, g := range granted {
		fmt.Println("granted", g.Door.Name, g.Caveats)
	}
	for _, d := range c.Denied(granted) {
		fmt.Println("denied", d.Name)
	}
	// Output:
	// granted web []
	// granted vault [branch=main]
}

func ExampleCatalog_Denied() {
	c := catalog()
	granted, _ := c.Grant([]string{"tool"}, nil)
	for _, d := range c.Denied(granted) {
		fmt.Println(d.Name+":", d.Absent)
	}
	// The network was opened another way: do not claim it is absent.
	fmt.Println(len(c.Denied(granted, "web")))
	// Output:
	// web: no network; relaunch with --web
	// vault: commits stay local; relaunch with --vault
	// 1
}

func ExampleCheckCaveats() {
	v := guestroom.Verifiers{
		"branch": func(value string, req guestroom.Request) error {
			if req["branch"] != value {
				return fmt.Errorf("branch %q is not %q", req["branch"], value)
			}
			return nil
		},
	}
	caveats := []guestroom.Caveat{{Key: "branch", Value: "main"}}
	fmt.Println(guestroom.CheckCaveats(caveats, v, guestroom.Request{"branch": "main"}))
	fmt.Println(guestroom.CheckCaveats(caveats, v, guestroom.Request{"branch": "prod"}))
	// A caveat nobody can interpret denies.
	caveats = append(caveats, guestroom.Caveat{Key: "tenant", Value: "x"})
	fmt.Println(guestroom.CheckCaveats(caveats, v, guestroom.Request{"branch": "main"}))
	// Output:
	// <nil>
	// caveat denies: branch=main: branch "prod" is not "main"
	// caveat has no verifier: tenant=x
}

func ExampleAttenuates() {
	parent := []guestroom.Grant{{
		Door:    guestroom.Door{Name: "vault"},
		Caveats: []guestroom.Caveat{{Key: "branch", Value: "main"}},
	}}
	narrower := []guestroom.Grant{{
		Door:    guestroom.Door{Name: "vault"},
		Caveats: []guestroom.Caveat{{Key: "branch", Value: "main"}, {Key: "repo", Value: "site"}},
	}}
	wider := []guestroom.Grant{{Door: guestroom.Door{Name: "vault"}}, {Door: guestroom.Door{Name: "web"}}}
	fmt.Println(len(guestroom.Attenuates(parent, narrower)))
	for _, v := range guestroom.Attenuates(parent, wider) {
		fmt.Println(v)
	}
	// Output:
	// 0
	// door "vault" drops its parent's caveat branch=main
	// door "web" is not granted to the parent
}

func ExampleProvider_Grants() {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	p := guestroom.Provider{
		Lease: guestroom.Lease{
			Grants: []guestroom.Grant{{Door: guestroom.Door{Name: "web"}}},
			Expiry: start.Add(time.Hour),
		},
		Now: func() time.Time { return now },
	}
	gs, err := p.Grants()
	fmt.Println(len(gs), err)
	now = start.Add(time.Hour) // at the expiry: no longer before it
	gs, err = p.Grants()
	fmt.Println(len(gs), errors.Is(err, guestroom.ErrExpired))
	// Output:
	// 1 <nil>
	// 0 true
}

func ExampleKeyring_Verify() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // use crypto/rand for real keys
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := guestroom.SignGrant(guestroom.SignedGrant{
		Grant:     guestroom.Grant{Door: guestroom.Door{Name: "vault"}},
		Transport: "tcp://10.0.2.2:7001",
		Audience:  "vault-door",
		Expiry:    now.Add(time.Minute),
		Nonce:     "3f1c9a",
	}, "2030-01", priv)
	if err != nil {
		fmt.Println(err)
		return
	}
	ring := guestroom.Keyring{"2030-01": priv.Public().(ed25519.PublicKey)}
	fmt.Println(ring.Verify(g, "vault-door", now))
	fmt.Println(ring.Verify(g, "web-door", now))
	fmt.Println(ring.Verify(g, "vault-door", now.Add(time.Minute)))
	// Output:
	// <nil>
	// door "vault": grant is for another audience: for "vault-door", not "web-door"
	// door "vault": grant expired at 2030-01-01T00:01:00Z
}

func ExampleLaunch_Rulebook() {
	c := catalog()
	spec, _ := guestroom.ParseDoorSpec("vault:branch=main")
	granted, _ := c.Grant(nil, []guestroom.DoorSpec{spec})
	l := guestroom.Launch{Account: "work", Network: "none", Granted: granted, Denied: c.Denied(granted)}
	rb := l.Rulebook()
	_, cards, _ := strings.Cut(rb, "## GRANTED\n")
	fmt.Print(cards)
	// Output:
	// ### vault
	// Grants: signed commits and pushes
	// Usage: run `vault commit -m MSG`
	// Socket: /run/doors/vault.sock (in $VAULT_SOCK)
	// RESTRICTED to: branch=main
	//
	// ## DENIED
	//
	// - web: no network; relaunch with --web
}

func ExampleLaunch_ManifestJSON() {
	l := guestroom.Launch{
		Account: "work",
		Network: "none",
		Granted: []guestroom.Grant{{
			Door:    guestroom.Door{Name: "vault", Socket: "/run/doors/vault.sock", Env: "VAULT_SOCK"},
			Caveats: []guestroom.Caveat{{Key: "branch", Value: "main"}},
		}},
		Extra: map[string]string{"launch_id": "l-42"},
	}
	b, _ := l.ManifestJSON()
	m, _ := guestroom.ParseManifest(b)
	fmt.Println(m.Doors[0].Name, m.Doors[0].Env, m.Doors[0].Caveats, len(m.Denied), m.Extra["launch_id"])
	// Output:
	// vault VAULT_SOCK [branch=main] 0 l-42
}
