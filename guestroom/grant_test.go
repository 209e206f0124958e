package guestroom

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func cv(k, v string) Caveat { return Caveat{Key: k, Value: v} }

func mustSpecs(t *testing.T, ss ...string) []DoorSpec {
	t.Helper()
	var out []DoorSpec
	for _, s := range ss {
		d, err := ParseDoorSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func TestCatalogGrant(t *testing.T) {
	type want struct {
		name    string
		host    string
		caveats []Caveat
	}
	tests := []struct {
		name  string
		rooms []string
		specs []string
		want  []want
	}{
		{"nothing", nil, nil, nil},
		{"empty room", []string{"tool"}, nil, nil},
		{"room in catalog order", []string{"dev"}, nil, []want{
			{"web", "/srv/doors/web.sock", nil}, {"vault", "", nil}, {"reader", "", nil},
		}},
		{"explicit door narrows a room door", []string{"read"}, []string{"reader:host=a.example"}, []want{
			{"reader", "", []Caveat{cv("host", "a.example")}},
		}},
		{"caveats merge append-only, deduplicated", nil, []string{"web:host=a", "web:host=b:host=a"}, []want{
			{"web", "/srv/doors/web.sock", []Caveat{cv("host", "a"), cv("host", "b")}},
		}},
		{"host socket override", nil, []string{"web@/tmp/w.sock", "web:host=a"}, []want{
			{"web", "/tmp/w.sock", []Caveat{cv("host", "a")}},
		}},
		{"same host socket twice", nil, []string{"web@/tmp/w.sock", "web@/tmp/w.sock"}, []want{
			{"web", "/tmp/w.sock", nil},
		}},
		{"generic doors after catalog doors, in request order", []string{"read"}, []string{"zeta", "alpha@/a.sock", "vault"}, []want{
			{"vault", "", nil}, {"reader", "", nil}, {"zeta", "", nil}, {"alpha", "/a.sock", nil},
		}},
	}
	c := testCatalog(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Grant(tt.rooms, mustSpecs(t, tt.specs...))
			if err != nil {
				t.Fatal(err)
			}
			var gotW []want
			for _, g := range got {
				gotW = append(gotW, want{g.Door.Name, g.Door.HostSocket, g.Caveats})
			}
			if !reflect.DeepEqual(gotW, tt.want) {
				t.Fatalf("Grant = %+v\nwant    %+v", gotW, tt.want)
			}
		})
	}
}

func TestCatalogGrantRefuses(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		name    string
		rooms   []string
		specs   []DoorSpec
		wantErr error
		want    string
	}{
		{"unknown room", []string{"dev", "lab"}, nil, ErrUnknownRoom, `unknown room "lab": known rooms: dev, read, tool`},
		{"bad door name", nil, []DoorSpec{{Name: "../x"}}, ErrBadName, `bad name "../x"`},
		{"relative host socket", nil, []DoorSpec{{Name: "web", HostSocket: "w.sock"}}, nil, "not absolute"},
		{"two host sockets", nil, []DoorSpec{{Name: "web", HostSocket: "/a.sock"}, {Name: "web", HostSocket: "/b.sock"}}, ErrConflict, `door "web" at both /a.sock and /b.sock`},
		{"bad caveat", nil, []DoorSpec{{Name: "web", Caveats: []Caveat{cv("", "x")}}}, ErrBadCaveat, `grant door "web": bad caveat`},
		{"default then other host socket", nil, []DoorSpec{{Name: "web", HostSocket: "/srv/doors/web.sock"}, {Name: "web", HostSocket: "/b.sock"}}, ErrConflict, "at both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Grant(tt.rooms, tt.specs)
			if err == nil {
				t.Fatalf("Grant = %+v, want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCatalogDenied(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		name     string
		rooms    []string
		specs    []string
		suppress []string
		want     []string
	}{
		{"nothing granted", nil, nil, nil, []string{"web", "vault", "reader"}},
		{"all granted", []string{"dev"}, nil, nil, nil},
		{"catalog order", nil, []string{"vault"}, nil, []string{"web", "reader"}},
		{"suppressed", []string{"read"}, nil, []string{"web"}, []string{"vault"}},
		{"generic grant denies nothing extra", nil, []string{"mail"}, nil, []string{"web", "vault", "reader"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := c.Grant(tt.rooms, mustSpecs(t, tt.specs...))
			if err != nil {
				t.Fatal(err)
			}
			if got := names(c.Denied(g, tt.suppress...)); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Denied = %v, want %v", got, tt.want)
			}
		})
	}
}

func grant(name string, caveats ...Caveat) Grant {
	return Grant{Door: Door{Name: name}, Caveats: caveats}
}

func TestAttenuates(t *testing.T) {
	parent := []Grant{grant("web", cv("host", "a")), grant("vault", cv("branch", "main"), cv("repo", "r"))}
	tests := []struct {
		name  string
		child []Grant
		want  []Violation
	}{
		{"identical", parent, nil},
		{"nothing", nil, nil},
		{"subset of doors", []Grant{parent[0]}, nil},
		{"caveat appended", []Grant{grant("web", cv("host", "a"), cv("port", "443"))}, nil},
		{"caveats reordered", []Grant{grant("vault", cv("repo", "r"), cv("branch", "main"))}, nil},
		{"absent in parent", []Grant{grant("reader")}, []Violation{{Door: "reader", Kind: AbsentInParent}}},
		{"caveat dropped", []Grant{grant("web")}, []Violation{{Door: "web", Kind: CaveatDropped, Caveat: cv("host", "a")}}},
		{"caveat widened", []Grant{grant("web", cv("host", "*"))}, []Violation{{Door: "web", Kind: CaveatDropped, Caveat: cv("host", "a")}}},
		{"every violation", []Grant{grant("reader"), grant("vault"), grant("web", cv("host", "a"))}, []Violation{
			{Door: "reader", Kind: AbsentInParent},
			{Door: "vault", Kind: CaveatDropped, Caveat: cv("branch", "main")},
			{Door: "vault", Kind: CaveatDropped, Caveat: cv("repo", "r")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Attenuates(parent, tt.child)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Attenuates = %+v, want %+v", got, tt.want)
			}
			err := CheckAttenuates(parent, tt.child)
			if (err == nil) != (len(tt.want) == 0) {
				t.Fatalf("CheckAttenuates = %v", err)
			}
			if err != nil {
				if !errors.Is(err, ErrWidened) {
					t.Fatalf("CheckAttenuates err %v does not match ErrWidened", err)
				}
				var v Violation
				if !errors.As(err, &v) || v != tt.want[0] {
					t.Fatalf("errors.As(%v) = %+v, want %+v", err, v, tt.want[0])
				}
			}
		})
	}
}

func TestAttenuatesDuplicateParent(t *testing.T) {
	parent := []Grant{grant("web", cv("host", "a")), grant("web", cv("port", "1"))}
	got := Attenuates(parent, []Grant{grant("web", cv("host", "a"))})
	want := []Violation{{Door: "web", Kind: CaveatDropped, Caveat: cv("port", "1")}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Attenuates = %+v, want %+v", got, want)
	}
}

func TestViolationText(t *testing.T) {
	tests := []struct {
		name string
		v    Violation
		want string
	}{
		{"absent", Violation{Door: "x", Kind: AbsentInParent}, `door "x" is not granted to the parent`},
		{"dropped", Violation{Door: "x", Kind: CaveatDropped, Caveat: cv("k", "v")}, `door "x" drops its parent's caveat k=v`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
	if AbsentInParent.String() != "absent in parent" || CaveatDropped.String() != "caveat dropped" || ViolationKind(9).String() != "ViolationKind(9)" {
		t.Fatal("ViolationKind.String")
	}
}

func TestGrantCheck(t *testing.T) {
	v := Verifiers{"host": func(value string, req Request) error {
		if req["host"] != value {
			return errors.New("other host")
		}
		return nil
	}}
	tests := []struct {
		name    string
		g       Grant
		req     Request
		wantErr error
		want    string
	}{
		{"unrestricted", grant("web"), Request{"host": "x"}, nil, ""},
		{"admitted", grant("web", cv("host", "a")), Request{"host": "a"}, nil, ""},
		{"denied", grant("web", cv("host", "a")), Request{"host": "b"}, ErrCaveatDenied, `door "web": caveat denies: host=a: other host`},
		{"missing fact", grant("web", cv("host", "a")), Request{}, ErrCaveatDenied, `door "web": caveat denies: host=a: other host`},
		{"uninterpretable", grant("web", cv("host", "a"), cv("port", "1")), Request{"host": "a"}, ErrUninterpretable, `door "web": caveat has no verifier: port=1`},
		{"nil verifier", grant("web", cv("host", "a")), Request{"host": "a"}, ErrUninterpretable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vv := v
			if tt.name == "nil verifier" {
				vv = Verifiers{"host": nil}
			}
			err := tt.g.Check(vv, tt.req)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.wantErr)
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Fatalf("Check = %q, want %q", err, tt.want)
			}
		})
	}
}
