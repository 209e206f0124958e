package guestroom

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// testDoors is a small catalog that names no real product.
func testDoors() []Door {
	return []Door{
		{
			Name: "web", Flag: "--web", Socket: "/run/doors/web.sock", Env: "WEB_SOCK",
			HostSocket: "/srv/doors/web.sock",
			Grants:     "egress to allowlisted hosts",
			Usage:      "HTTP(S) through the proxy at 127.0.0.1:3128",
			Absent:     "no network at all; relaunch with --web",
		},
		{
			Name: "vault", Flag: "--vault", Socket: "/run/doors/vault.sock", Env: "VAULT_SOCK",
			Grants: "signed commits and pushes",
			Usage:  "run `vault commit -m MSG`",
			Absent: "commits stay local and unsigned; relaunch with --vault",
		},
		{
			Name: "reader", Flag: "--reader", Socket: "/run/doors/reader.sock", Env: "READER_SOCK",
			Grants: "fetching URLs and repository snapshots as content",
			Usage:  "run `reader fetch URL`",
			Absent: "no external reads; relaunch with --reader",
		},
	}
}

func testRooms() Rooms {
	return Rooms{
		"tool": nil,
		"read": {"reader"},
		"dev":  {"vault", "web", "reader"},
	}
}

func testCatalog(t *testing.T) Catalog {
	t.Helper()
	c, err := NewCatalog(testDoors(), testRooms())
	if err != nil {
		t.Fatalf("NewCatalog: %v", err)
	}
	return c
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "net", true},
		{"dash", "my-door", true},
		{"leading digit", "9p", true},
		{"empty", "", false},
		{"dot dot", "../x", false},
		{"slash", "a/b", false},
		{"leading dash", "-x", false},
		{"upper", "Net", false},
		{"space", "a b", false},
		{"underscore", "a_b", false},
		{"dot", "a.b", false},
		{"nul", "a\x00", false},
		{"newline", "a\n", false},
		{"too long", strings.Repeat("a", 65), false},
		{"longest", strings.Repeat("a", 64), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateName(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadName) {
				t.Fatalf("ValidateName(%q) = %v, want ErrBadName", tt.in, err)
			}
		})
	}
}

func TestGenericDoor(t *testing.T) {
	tests := []struct {
		name, in, socket, env string
	}{
		{"plain", "mail", "/run/mail.sock", "MAIL_SOCK"},
		{"dashed", "my-door", "/run/my-door.sock", "MY_DOOR_SOCK"},
		{"leading digit", "9p", "/run/9p.sock", "DOOR_9P_SOCK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := GenericDoor(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Socket != tt.socket || d.Env != tt.env || d.Name != tt.in {
				t.Fatalf("GenericDoor(%q) = %+v, want socket %q env %q", tt.in, d, tt.socket, tt.env)
			}
			if err := d.validate(); err != nil {
				t.Fatalf("generic door does not validate: %v", err)
			}
			if !strings.Contains(d.Absent, "--door "+tt.in) {
				t.Fatalf("Absent %q does not say how to get the door", d.Absent)
			}
		})
	}
	for _, bad := range []string{"", "../x", "a/b"} {
		if _, err := GenericDoor(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("GenericDoor(%q) = %v, want ErrBadName", bad, err)
		}
	}
}

func TestCatalogResolve(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		name    string
		in      string
		socket  string
		wantErr error
	}{
		{"preset", "vault", "/run/doors/vault.sock", nil},
		{"generic", "mail", "/run/mail.sock", nil},
		{"traversal", "../x", "", ErrBadName},
		{"slash", "a/b", "", ErrBadName},
		{"empty", "", "", ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := c.Resolve(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Resolve(%q) err = %v, want %v", tt.in, err, tt.wantErr)
			}
			if d.Socket != tt.socket {
				t.Fatalf("Resolve(%q).Socket = %q, want %q", tt.in, d.Socket, tt.socket)
			}
		})
	}
	if got := names(c.Doors()); !reflect.DeepEqual(got, []string{"web", "vault", "reader"}) {
		t.Fatalf("Doors() order = %v", got)
	}
}

func TestNewCatalogRefuses(t *testing.T) {
	good := testDoors()[0]
	mod := func(f func(*Door)) Door { d := good; f(&d); return d }
	tests := []struct {
		name  string
		doors []Door
		rooms Rooms
		want  string
	}{
		{"bad name", []Door{mod(func(d *Door) { d.Name = "../x" })}, nil, "bad name"},
		{"relative socket", []Door{mod(func(d *Door) { d.Socket = "run/x.sock" })}, nil, "not absolute"},
		{"unclean socket", []Door{mod(func(d *Door) { d.Socket = "/run/../x.sock" })}, nil, "not clean"},
		{"empty socket", []Door{mod(func(d *Door) { d.Socket = "" })}, nil, "empty path"},
		{"bad env", []Door{mod(func(d *Door) { d.Env = "web-sock" })}, nil, "not an environment variable"},
		{"relative host socket", []Door{mod(func(d *Door) { d.HostSocket = "x.sock" })}, nil, "host socket"},
		{"duplicate", []Door{good, good}, nil, "listed twice"},
		{"multi-line text", []Door{mod(func(d *Door) { d.Usage = "a\n## DENIED" })}, nil, "control character"},
		{"bad room name", []Door{good}, Rooms{"A": {"web"}}, "room: bad name"},
		{"room names unknown door", []Door{good}, Rooms{"dev": {"web", "nope"}}, `door "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCatalog(tt.doors, tt.rooms)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewCatalog err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCatalogIsACopy(t *testing.T) {
	doors, rooms := testDoors(), testRooms()
	c, err := NewCatalog(doors, rooms)
	if err != nil {
		t.Fatal(err)
	}
	doors[0].Name = "changed"
	rooms["dev"][0] = "changed"
	got := c.Doors()
	got[1].Socket = "/changed"
	if d, _ := c.Door("web"); d.Name != "web" {
		t.Fatal("catalog shares its doors with the caller")
	}
	if d, _ := c.Door("vault"); d.Socket != "/run/doors/vault.sock" {
		t.Fatal("Doors() shares the catalog's slice")
	}
	if r, _ := c.Room("dev"); r[0] != "vault" {
		t.Fatal("catalog shares its rooms with the caller")
	}
	rs := c.Rooms()
	if !reflect.DeepEqual(rs, testRooms()) {
		t.Fatalf("Rooms() = %v", rs)
	}
	rs["dev"][0] = "changed"
	if r, _ := c.Room("dev"); r[0] != "vault" {
		t.Fatal("Rooms() shares the catalog's rooms")
	}
}

func TestRoom(t *testing.T) {
	c := testCatalog(t)
	got, err := c.Room("dev")
	if err != nil || !reflect.DeepEqual(got, []string{"vault", "web", "reader"}) {
		t.Fatalf("Room(dev) = %v, %v", got, err)
	}
	_, err = c.Room("lab")
	if !errors.Is(err, ErrUnknownRoom) {
		t.Fatalf("Room(lab) err = %v, want ErrUnknownRoom", err)
	}
	if want := `unknown room "lab": known rooms: dev, read, tool`; err.Error() != want {
		t.Fatalf("Room(lab) err = %q, want %q", err, want)
	}
	var empty Catalog
	if _, err := empty.Room("dev"); !errors.Is(err, ErrUnknownRoom) || !strings.Contains(err.Error(), "no rooms") {
		t.Fatalf("zero catalog Room err = %v", err)
	}
	if d, err := empty.Resolve("x"); err != nil || d.Socket != "/run/x.sock" {
		t.Fatalf("zero catalog Resolve = %v, %v", d, err)
	}
}

func names(ds []Door) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}
