package test

import (
	"os"
	"regexp"
	"testing"

	"function/internal/proc"
)

// TestQuickstart runs the README's first command (with -once so it exits)
// and checks that it prints a Jira key and a Confluence URL from the
// emulator.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	bin, err := proc.Build(t.Context(), "", t.TempDir(), "./cmd/quickstart")
	if err != nil {
		t.Fatal(err)
	}
	out, err := proc.Run(t.Context(), proc.Options{
		Path: bin,
		Args: []string{"-once", "-listen", "127.0.0.1:0", "-emulator", "127.0.0.1:0"},
		Env:  []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()},
	})
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`listening on http://(127\.0\.0\.1:\d+)/`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no emulator address in:\n%s", out)
	}
	emu := m[1]
	if !regexp.MustCompile(`Jira issue:\s+OPS-1\s+http://` + regexp.QuoteMeta(emu) + `/browse/OPS-1`).MatchString(out) {
		t.Errorf("no Jira key in:\n%s", out)
	}
	if !regexp.MustCompile(`Confluence page:\s+http://` + regexp.QuoteMeta(emu) + `/wiki/spaces/INCIDENTS/pages/\d+/`).MatchString(out) {
		t.Errorf("no Confluence URL in:\n%s", out)
	}
	if !regexp.MustCompile(`ALLOW_UNAUTHENTICATED=true`).MatchString(out) {
		t.Errorf("the quick start must say it runs unauthenticated:\n%s", out)
	}
}
