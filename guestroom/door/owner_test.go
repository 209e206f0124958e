package door

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestListenRefusesAnotherUsersDir: a socket directory owned by another
// user is refused even when its mode is private: its owner could replace
// the socket between bind and the chmod or chown that follows, and make the
// daemon change the mode or owner of a file it names.
func TestListenRefusesAnotherUsersDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory owned by another user")
	}
	dir := filepath.Join(shortDir(t), "theirs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(filepath.Join(dir, "x.sock"))
	if err == nil {
		_ = l.Close()
		t.Fatal("Listen in another user's directory succeeded")
	}
	if !strings.Contains(err.Error(), "owned by uid 4242") {
		t.Fatalf("err = %v, want it to name the owner", err)
	}
	if _, err := NewMinter(MinterConfig{Door: "test", Dir: dir}); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
		t.Fatalf("NewMinter in another user's directory: err = %v", err)
	}
}

// TestGrantAccessChangesOnlyTheSocket: granting the box user access to a
// minted socket never follows a link put in its place to another file.
func TestGrantAccessChangesOnlyTheSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: grantAccess chowns only as root")
	}
	dir := shortDir(t)
	target := filepath.Join(dir, "secret")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "L-1.sock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []int{4242, -1} {
		if err := grantAccess(link, uid); err == nil {
			t.Errorf("grantAccess(uid %d) on a symlink succeeded", uid)
		}
		fi, err := os.Stat(target)
		if err != nil {
			t.Fatal(err)
		}
		if fileUID(fi) != 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("grantAccess(uid %d) changed the link's target: uid %d mode %04o", uid, fileUID(fi), fi.Mode().Perm())
		}
	}
}
