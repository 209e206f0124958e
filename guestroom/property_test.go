package guestroom

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// The algebra of caveats over a small universe, so that random cases
// collide often: three keys, three values, verifiers that admit a request
// whose fact equals the caveat's value (or any fact for "*").

var errDenied = errors.New("fact differs from caveat")

var (
	propKeys   = []string{"host", "branch", "path"}
	propValues = []string{"a", "b", "*"}
	propDoors  = []string{"web", "vault", "reader"}
)

func genCaveat() *rapid.Generator[Caveat] {
	return rapid.Custom(func(t *rapid.T) Caveat {
		return Caveat{
			Key:   rapid.SampledFrom(propKeys).Draw(t, "key"),
			Value: rapid.SampledFrom(propValues).Draw(t, "value"),
		}
	})
}

func genCaveats() *rapid.Generator[[]Caveat] {
	return rapid.SliceOfN(genCaveat(), 0, 5)
}

// genVerifiers interprets a random subset of the keys; the rest are
// uninterpretable and must deny.
func genVerifiers() *rapid.Generator[Verifiers] {
	return rapid.Custom(func(t *rapid.T) Verifiers {
		v := Verifiers{}
		for _, k := range propKeys {
			if rapid.Bool().Draw(t, "interprets "+k) {
				v[k] = func(value string, req Request) error {
					if value == "*" || req[k] == value {
						return nil
					}
					return errDenied
				}
			}
		}
		return v
	})
}

func genRequest() *rapid.Generator[Request] {
	return rapid.Custom(func(t *rapid.T) Request {
		req := Request{}
		for _, k := range propKeys {
			if rapid.Bool().Draw(t, "has "+k) {
				req[k] = rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, k)
			}
		}
		return req
	})
}

func genGrants() *rapid.Generator[[]Grant] {
	return rapid.Custom(func(t *rapid.T) []Grant {
		var gs []Grant
		for _, d := range propDoors {
			if rapid.Bool().Draw(t, "grant "+d) {
				gs = append(gs, Grant{Door: Door{Name: d}, Caveats: genCaveats().Draw(t, d+" caveats")})
			}
		}
		return gs
	})
}

// mutate derives a child from parent: it may drop doors, append caveats,
// drop or replace caveats, and add doors the parent lacks.
func mutate(t *rapid.T, parent []Grant) []Grant {
	var child []Grant
	for _, p := range parent {
		if rapid.Bool().Draw(t, "keep door") {
			g := Grant{Door: p.Door, Caveats: slices.Clone(p.Caveats)}
			if len(g.Caveats) > 0 && rapid.IntRange(0, 3).Draw(t, "drop?") == 0 {
				i := rapid.IntRange(0, len(g.Caveats)-1).Draw(t, "drop")
				g.Caveats = slices.Delete(g.Caveats, i, i+1)
			}
			if len(g.Caveats) > 0 && rapid.IntRange(0, 3).Draw(t, "replace?") == 0 {
				i := rapid.IntRange(0, len(g.Caveats)-1).Draw(t, "replace")
				g.Caveats[i] = genCaveat().Draw(t, "replacement")
			}
			g.Caveats = append(g.Caveats, rapid.SliceOfN(genCaveat(), 0, 2).Draw(t, "appended")...)
			child = append(child, g)
		}
	}
	if rapid.IntRange(0, 3).Draw(t, "extra door?") == 0 {
		child = append(child, Grant{Door: Door{Name: "extra"}, Caveats: genCaveats().Draw(t, "extra caveats")})
	}
	return child
}

// TestPropertyAddingCaveatNeverAllows: CheckCaveats is monotonic; inserting
// a caveat anywhere never turns a deny into an allow.
func TestPropertyAddingCaveatNeverAllows(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cs := genCaveats().Draw(t, "caveats")
		extra := genCaveat().Draw(t, "extra")
		at := rapid.IntRange(0, len(cs)).Draw(t, "at")
		v := genVerifiers().Draw(t, "verifiers")
		req := genRequest().Draw(t, "request")
		more := slices.Insert(slices.Clone(cs), at, extra)
		if CheckCaveats(cs, v, req) != nil && CheckCaveats(more, v, req) == nil {
			t.Fatalf("adding %s to %v turned a deny into an allow for %v", extra, cs, req)
		}
	})
}

// TestPropertyAttenuationNeverWidens: whenever Attenuates reports no
// violation, every request a child door admits is admitted by the parent's
// door too.
func TestPropertyAttenuationNeverWidens(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		parent := genGrants().Draw(t, "parent")
		child := mutate(t, parent)
		v := genVerifiers().Draw(t, "verifiers")
		req := genRequest().Draw(t, "request")
		if len(Attenuates(parent, child)) > 0 {
			return
		}
		for _, c := range child {
			if CheckCaveats(c.Caveats, v, req) != nil {
				continue
			}
			i := slices.IndexFunc(parent, func(p Grant) bool { return p.Door.Name == c.Door.Name })
			if i < 0 {
				t.Fatalf("child door %q is not in the parent, yet no violation", c.Door.Name)
			}
			if err := CheckCaveats(parent[i].Caveats, v, req); err != nil {
				t.Fatalf("child %v admits %v, parent %v denies it (%v), yet no violation", c, req, parent[i], err)
			}
		}
	})
}

// TestPropertyAppendOnlyAttenuates: appending caveats to parent doors (and
// dropping whole doors) always attenuates.
func TestPropertyAppendOnlyAttenuates(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		parent := genGrants().Draw(t, "parent")
		var child []Grant
		for _, p := range parent {
			if rapid.Bool().Draw(t, "keep") {
				child = append(child, Grant{Door: p.Door, Caveats: append(slices.Clone(p.Caveats), genCaveats().Draw(t, "more")...)})
			}
		}
		if vs := Attenuates(parent, child); len(vs) > 0 {
			t.Fatalf("append-only child %v of %v reported %v", child, parent, vs)
		}
	})
}

// TestPropertyDroppingIsReported: a child that loses one of its parent's
// caveats is always reported, naming that caveat.
func TestPropertyDroppingIsReported(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cs := rapid.SliceOfNDistinct(genCaveat(), 1, 5, func(c Caveat) Caveat { return c }).Draw(t, "caveats")
		i := rapid.IntRange(0, len(cs)-1).Draw(t, "drop")
		parent := []Grant{{Door: Door{Name: "web"}, Caveats: cs}}
		child := []Grant{{Door: Door{Name: "web"}, Caveats: slices.Delete(slices.Clone(cs), i, i+1)}}
		vs := Attenuates(parent, child)
		want := Violation{Door: "web", Kind: CaveatDropped, Caveat: cs[i]}
		if len(vs) != 1 || vs[0] != want {
			t.Fatalf("Attenuates = %v, want [%v]", vs, want)
		}
	})
}
