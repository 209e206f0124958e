package probe

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunPrintsOneParsableReport(t *testing.T) {
	var out, errw bytes.Buffer
	if err := Run(context.Background(), []string{"read", "-path", "/nonexistent/e2e"}, &out, &errw); err != nil {
		t.Fatalf("run: %v (%s)", err, errw.String())
	}
	noisy := "entrypoint says hello\n" + out.String() + "trailing noise\n"
	r, err := Parse(noisy)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Files["/nonexistent/e2e"]; !strings.Contains(got, "no such file or directory") {
		t.Errorf("read of a missing file = %q", got)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, out := range map[string]string{
		"no report": "hello\n",
		"bad json":  Marker + "{not json\n",
	} {
		if _, err := Parse(out); err == nil {
			t.Errorf("%s: Parse accepted %q", name, out)
		}
	}
}

func TestRunRefusesUnknownProbe(t *testing.T) {
	var out, errw bytes.Buffer
	if err := Run(context.Background(), []string{"nope"}, &out, &errw); err == nil || !strings.Contains(err.Error(), `unknown probe "nope"`) {
		t.Fatalf("err = %v, want unknown probe", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q for an unknown probe", out.String())
	}
}
