package plan

import (
	"errors"
	"fmt"
	"regexp"
)

// DefaultAccount is the account a launch runs as when none is named.
const DefaultAccount = "personal"

// AccountRule is the rule an account name must match, as users are told it.
const AccountRule = `^[A-Za-z0-9._-]+$`

var accountRE = regexp.MustCompile(AccountRule)

// ErrBadAccount reports an account name that breaks AccountRule.
var ErrBadAccount = errors.New("bad account name")

// maxAccountLen keeps volume and container names far below podman's limits.
const maxAccountLen = 64

// ValidateAccount reports whether name may name an account.
func ValidateAccount(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty; it must match %s", ErrBadAccount, AccountRule)
	case len(name) > maxAccountLen:
		return fmt.Errorf("%w %q: longer than %d characters", ErrBadAccount, name, maxAccountLen)
	case name == "." || name == "..":
		return fmt.Errorf("%w %q: it must match %s and must not be %q or %q", ErrBadAccount, name, AccountRule, ".", "..")
	case !accountRE.MatchString(name):
		return fmt.Errorf("%w %q: it must match %s", ErrBadAccount, name, AccountRule)
	}
	return nil
}

// VolumePrefix and VolumeSuffix frame an account's config volume name.
const (
	VolumePrefix = "claude-"
	VolumeSuffix = "-config"
)

// VolumeName is the podman volume holding an account's claude config.
func VolumeName(account string) string { return VolumePrefix + account + VolumeSuffix }

// AccountFromVolume returns the account a volume name belongs to, if any.
func AccountFromVolume(volume string) (string, bool) {
	if len(volume) <= len(VolumePrefix)+len(VolumeSuffix) {
		return "", false
	}
	if volume[:len(VolumePrefix)] != VolumePrefix || volume[len(volume)-len(VolumeSuffix):] != VolumeSuffix {
		return "", false
	}
	a := volume[len(VolumePrefix) : len(volume)-len(VolumeSuffix)]
	if ValidateAccount(a) != nil {
		return "", false
	}
	return a, true
}
