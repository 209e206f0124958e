package accounts

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestLabelsFile(t *testing.T) {
	dir := t.TempDir()
	p, err := Path(func(k string) string { return map[string]string{"XDG_CONFIG_HOME": dir}[k] })
	if err != nil || p != filepath.Join(dir, "claude-box", "accounts.json") {
		t.Fatalf("path %q %v", p, err)
	}
	if p2, _ := Path(func(k string) string { return map[string]string{"HOME": "/h"}[k] }); p2 != "/h/.config/claude-box/accounts.json" {
		t.Fatalf("home path %q", p2)
	}
	if l, err := Load(p); err != nil || len(l) != 0 {
		t.Fatalf("missing file: %v %v", l, err)
	}
	if err := Set(p, "work", "Acme day job"); err != nil {
		t.Fatal(err)
	}
	if err := Set(p, "personal", "me"); err != nil {
		t.Fatal(err)
	}
	l, err := Load(p)
	if err != nil || l["work"].Desc != "Acme day job" || l["personal"].Desc != "me" {
		t.Fatalf("%v %v", l, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("temp files left behind: %v", ents)
	}
	rows := Union([]string{"work", "other"}, l)
	var names []string
	for _, r := range rows {
		names = append(names, r.Account)
	}
	if !slices.Equal(names, []string{"other", "personal", "work"}) || rows[2].Desc != "Acme day job" || !rows[0].Volume || rows[1].Volume {
		t.Fatalf("union %+v", rows)
	}
}

func TestCorruptFileIsNeverReplaced(t *testing.T) {
	for name, body := range map[string]string{"garbage": "{not json", "wrong shape": `{"work": "x"}`, "unknown field": `{"work": {"desc": "x", "evil": 1}}`} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "accounts.json")
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Set(p, "work", "x"); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			b, _ := os.ReadFile(p)
			if string(b) != body {
				t.Fatalf("corrupt file was rewritten: %q", b)
			}
		})
	}
}
