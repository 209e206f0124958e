package door

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
)

// Binding is what a door was minted for. The guest API served on a minted or
// standing door reads it from the call's context; nothing a caller sends can
// change it.
type Binding struct {
	// DoorID identifies the minted door ("standing" for a standing door).
	DoorID string
	// LaunchID is the launch the door was minted for.
	LaunchID string
	// Account is the account the launch runs as.
	Account string
	// Caveats narrow what the door allows.
	Caveats []guestroom.Caveat
	// Bindings are door-specific values fixed at mint time, e.g. keeperd's "repo".
	Bindings map[string]string
	// ExpiresAt is when the door expires; zero when it has no TTL.
	ExpiresAt time.Time
}

func (b Binding) clone() Binding {
	b.Caveats = slices.Clone(b.Caveats)
	b.Bindings = maps.Clone(b.Bindings)
	return b
}

type bindingKey struct{}

func withBinding(ctx context.Context, b Binding) context.Context {
	return context.WithValue(ctx, bindingKey{}, b.clone())
}

// BindingFrom returns the binding of the door the call in ctx arrived on. It
// is absent on control sockets.
func BindingFrom(ctx context.Context) (Binding, bool) {
	b, ok := ctx.Value(bindingKey{}).(Binding)
	if !ok {
		return Binding{}, false
	}
	return b.clone(), true
}
