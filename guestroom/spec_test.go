package guestroom

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseDoorSpec(t *testing.T) {
	cv := func(k, v string) Caveat { return Caveat{Key: k, Value: v} }
	tests := []struct {
		name string
		in   string
		want DoorSpec
	}{
		{"name", "net", DoorSpec{Name: "net"}},
		{"host socket", "net@/run/x.sock", DoorSpec{Name: "net", HostSocket: "/run/x.sock"}},
		{"one caveat", "net:host=github.com", DoorSpec{Name: "net", Caveats: []Caveat{cv("host", "github.com")}}},
		{"caveats and socket", "keeper:branch=main:repo=a/b@/s/k.sock", DoorSpec{
			Name: "keeper", Caveats: []Caveat{cv("branch", "main"), cv("repo", "a/b")}, HostSocket: "/s/k.sock",
		}},
		{"value holds =", "x:q=a=b", DoorSpec{Name: "x", Caveats: []Caveat{cv("q", "a=b")}}},
		{"older form", "net=/run/x.sock", DoorSpec{Name: "net", HostSocket: "/run/x.sock"}},
		{"older form, path with colon", "net=/run/a:b.sock", DoorSpec{Name: "net", HostSocket: "/run/a:b.sock"}},
		{"socket path with @ and :", "net@/run/a@b:c", DoorSpec{Name: "net", HostSocket: "/run/a@b:c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDoorSpec(tt.in)
			if err != nil {
				t.Fatalf("ParseDoorSpec(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseDoorSpec(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			again, err := ParseDoorSpec(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip via %q = %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseDoorSpecRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "empty"},
		{"empty name", ":host=x", "empty door name"},
		{"empty name before @", "@/run/x.sock", "empty door name"},
		{"bad name", "Net", "bad name"},
		{"traversal", "../x", "bad name"},
		{"slash", "a/b", "bad name"},
		{"empty path", "net@", "empty host socket"},
		{"relative path", "net@run/x.sock", "not absolute"},
		{"unclean path", "net@/run/../x.sock", "not clean"},
		{"older form relative", "net=x.sock", "absolute host socket"},
		{"older form empty", "net=", "absolute host socket"},
		{"empty caveat", "net::host=x", "empty caveat"},
		{"trailing colon", "net:", "empty caveat"},
		{"trailing colon before @", "net:host=x:@/s", "empty caveat"},
		{"key:value in spec", "net:host:github.com", "key=value"},
		{"empty key", "net:=x", "empty key"},
		{"empty value", "net:host=", "empty value"},
		{"control char", "net:host=a\nb", "control character"},
		{"space in key", "net:ho st=a", "space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDoorSpec(tt.in)
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("ParseDoorSpec(%q) = %+v, %v; want ErrBadSpec", tt.in, got, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseDoorSpec(%q) err = %q, want it to mention %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseCaveat(t *testing.T) {
	tests := []struct {
		name, in, key, value string
		ok                   bool
	}{
		{"equals", "host=github.com", "host", "github.com", true},
		{"colon", "host:github.com", "host", "github.com", true},
		{"first separator wins (=)", "a=b:c", "a", "b:c", true},
		{"first separator wins (:)", "a:b=c", "a", "b=c", true},
		{"empty value", "a=", "a", "", true},
		{"empty key", "=b", "", "", false},
		{"no separator", "ab", "", "", false},
		{"empty", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCaveat(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseCaveat(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrBadCaveat) {
					t.Fatalf("err = %v, want ErrBadCaveat", err)
				}
				return
			}
			if c.Key != tt.key || c.Value != tt.value {
				t.Fatalf("ParseCaveat(%q) = %+v", tt.in, c)
			}
		})
	}
}

func FuzzParseDoorSpec(f *testing.F) {
	for _, s := range []string{
		"net", "net@/run/x.sock", "net:host=github.com", "keeper:branch=main:repo=a/b@/s/k.sock",
		"net=/run/x.sock", "net:", "net::a=b", "../x", "a/b", "net@", "net@rel", "x:q=a=b", "@/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseDoorSpec(s)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("ParseDoorSpec(%q) err %v is not ErrBadSpec", s, err)
			}
			return
		}
		if err := ValidateName(spec.Name); err != nil {
			t.Fatalf("ParseDoorSpec(%q) accepted name %q: %v", s, spec.Name, err)
		}
		if spec.HostSocket != "" {
			if err := checkAbsPath(spec.HostSocket); err != nil {
				t.Fatalf("ParseDoorSpec(%q) accepted host socket: %v", s, err)
			}
		}
		for _, c := range spec.Caveats {
			if c.Key == "" || c.Value == "" || strings.ContainsAny(c.Key+c.Value, ":@") {
				t.Fatalf("ParseDoorSpec(%q) accepted caveat %+v", s, c)
			}
		}
		again, err := ParseDoorSpec(spec.String())
		if err != nil || !reflect.DeepEqual(again, spec) {
			t.Fatalf("round trip %q -> %q -> %+v, %v; want %+v", s, spec.String(), again, err, spec)
		}
	})
}

func FuzzParseCaveat(f *testing.F) {
	for _, s := range []string{"host=github.com", "host:github.com", "a=b:c", "a:b=c", "=b", "ab", "", "a="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCaveat(s)
		if err != nil {
			if !errors.Is(err, ErrBadCaveat) {
				t.Fatalf("ParseCaveat(%q) err %v is not ErrBadCaveat", s, err)
			}
			return
		}
		if c.Key == "" || strings.ContainsAny(c.Key, "=:") {
			t.Fatalf("ParseCaveat(%q) = %+v: bad key", s, c)
		}
		if len(c.Key)+1+len(c.Value) != len(s) {
			t.Fatalf("ParseCaveat(%q) = %+v lost bytes", s, c)
		}
		again, err := ParseCaveat(c.String())
		if err != nil || again != c {
			t.Fatalf("round trip %q -> %q -> %+v, %v", s, c.String(), again, err)
		}
	})
}

func TestCaveatValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Caveat
		want string
	}{
		{"ok", cv("host", "github.com"), ""},
		{"empty value", cv("host", ""), ""},
		{"value with colon", cv("host", "example.com:8443"), ""},
		{"empty key", cv("", "x"), "empty key"},
		{"key with =", cv("a=b", "x"), "separator"},
		{"key with :", cv("a:b", "x"), "separator"},
		{"key with space", cv("a b", "x"), "space"},
		{"key with newline", cv("a\nb", "x"), "control"},
		{"value with newline", cv("a", "x\ny"), "control"},
		{"value with a line separator", cv("a", "x\u2028y"), "control"},
		{"value with NEL", cv("a", "x\u0085y"), "control"},
		{"key with a paragraph separator", cv("a\u2029b", "x"), "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrBadCaveat) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrBadCaveat mentioning %q", err, tt.want)
			}
		})
	}
}
