// Package accounts keeps the human labels of claude-box accounts in
// ${XDG_CONFIG_HOME:-~/.config}/claude-box/accounts.json, written
// atomically; a file that does not parse is reported, never replaced.
package accounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Entry is one account's metadata.
type Entry struct {
	Desc string `json:"desc"`
}

// Labels maps account name to its entry.
type Labels map[string]Entry

// ErrCorrupt reports a labels file that does not parse.
var ErrCorrupt = errors.New("accounts file is corrupt")

// Path is the labels file under the given environment.
func Path(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "claude-box", "accounts.json"), nil
	}
	h := getenv("HOME")
	if h == "" {
		return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set")
	}
	return filepath.Join(h, ".config", "claude-box", "accounts.json"), nil
}

// Load reads the labels file; a missing file is empty.
func Load(path string) (Labels, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Labels{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var l Labels
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%w: %s: %w (fix or move it away; claude-box will not overwrite it)", ErrCorrupt, path, err)
	}
	if l == nil {
		l = Labels{}
	}
	return l, nil
}

// Save writes the labels atomically (temp file, fsync, rename).
func Save(path string, l Labels) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".accounts-*.json")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Set labels one account, loading and saving the file; a corrupt file is
// left as it is and reported.
func Set(path, account, desc string) error {
	l, err := Load(path)
	if err != nil {
		return err
	}
	l[account] = Entry{Desc: desc}
	return Save(path, l)
}

// Row is one line of `claude-box ls`.
type Row struct {
	Account string
	Desc    string
	Volume  bool
}

// Union lists the accounts that have a volume or a label, sorted.
func Union(volumeAccounts []string, l Labels) []Row {
	byName := map[string]*Row{}
	for _, a := range volumeAccounts {
		byName[a] = &Row{Account: a, Volume: true}
	}
	for a, e := range l {
		r, ok := byName[a]
		if !ok {
			r = &Row{Account: a}
			byName[a] = r
		}
		r.Desc = e.Desc
	}
	out := make([]Row, 0, len(byName))
	for _, r := range byName {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Account < out[j].Account })
	return out
}
