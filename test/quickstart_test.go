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
	bin := filepath.Join(t.TempDir(), "quickstart")
	build := exec.Command("go", "build", "-o", bin, "./cmd/quickstart")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	fn, emu := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "-once", "-listen", fn, "-emulator", emu)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
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
