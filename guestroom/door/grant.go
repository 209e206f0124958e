package door

import (
	"fmt"
	"time"

	"github.com/bounded-systems/claude-box/guestroom"
)

// GrantVerifier returns the verify function of SignedGrant for one door: the
// grant must decode, verify under ring for audience at now(), and name door.
// Its caveats are the caller's to enforce (see guestroom.Grant.Check).
func GrantVerifier(door string, ring guestroom.Keyring, audience string, now func() time.Time) func(string) error {
	return func(s string) error {
		g, err := guestroom.DecodeSignedGrant(s)
		if err != nil {
			return err
		}
		if err := ring.Verify(g, audience, now()); err != nil {
			return err
		}
		if g.Grant.Door.Name != door {
			return fmt.Errorf("grant is for door %q, not %q", g.Grant.Door.Name, door)
		}
		return nil
	}
}
