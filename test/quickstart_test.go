package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestQuickstart runs the README's first command (with -once so it exits)
// and checks that it prints a Jira key and a Confluence URL from the
// emulator.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "quickstart")
	build := exec.Command("go", "build", "-o", bin, "./cmd/quickstart")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-once", "-listen", "127.0.0.1:0", "-emulator", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`listening on http://(127\.0\.0\.1:\d+)/`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no emulator address in:\n%s", out)
	}
	emu := string(m[1])
	if !regexp.MustCompile(`Jira issue:\s+OPS-1\s+http://` + regexp.QuoteMeta(emu) + `/browse/OPS-1`).Match(out) {
		t.Errorf("no Jira key in:\n%s", out)
	}
	if !regexp.MustCompile(`Confluence page:\s+http://` + regexp.QuoteMeta(emu) + `/wiki/spaces/INCIDENTS/pages/\d+/`).Match(out) {
		t.Errorf("no Confluence URL in:\n%s", out)
	}
	if !regexp.MustCompile(`ALLOW_UNAUTHENTICATED=true`).Match(out) {
		t.Errorf("the quick start must say it runs unauthenticated:\n%s", out)
	}
}
