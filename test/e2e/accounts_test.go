package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestAccountsAreSeparate: what one account writes in its config dir is not
// visible to another, persists for its own account, and `claude-box ls`
// lists both with their labels.
func TestAccountsAreSeparate(t *testing.T) {
	w := newWorld(t)
	const note = "/home/claude/.config/claude/e2e-note.txt"
	w.ok(t, "e2e-work", "--", "sh", "-c", "echo work-only > "+note)

	other := w.ok(t, "e2e-personal", "--", "probe", "read", "-path", note).probe(t)
	if got := other.Files[note]; !strings.Contains(got, "no such file or directory") {
		t.Errorf("e2e-personal reads %s = %q, want no such file or directory", note, got)
	}
	same := w.ok(t, "e2e-work", "--", "probe", "read", "-path", note).probe(t)
	if got := same.Files[note]; got != "work-only\n" {
		t.Errorf("e2e-work reads its own %s = %q, want %q (the account volume persists)", note, got, "work-only\n")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vols, err := w.s.podman.CLI(ctx, "volume", "ls", "--format", "{{.Name}}")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"claude-e2e-work-config", "claude-e2e-personal-config"} {
		if !strings.Contains("\n"+string(vols)+"\n", "\n"+v+"\n") {
			t.Errorf("volume %s missing; volumes:\n%s", v, vols)
		}
	}

	w.ok(t, "name", "e2e-work", "Work", "laptop")
	w.ok(t, "name", "e2e-personal", "Own", "stuff")
	ls := w.ok(t, "ls").stdout
	for acct, label := range map[string]string{"e2e-work": "Work laptop", "e2e-personal": "Own stuff"} {
		found := false
		for _, line := range strings.Split(ls, "\n") {
			if strings.Contains(line, acct) && strings.Contains(line, label) {
				found = true
			}
		}
		if !found {
			t.Errorf("claude-box ls has no line with %s and its label %q:\n%s", acct, label, ls)
		}
	}
}
