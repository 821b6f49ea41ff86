package templates

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A file in the directory takes the place of the default of its name; the
// others keep their default; Glob lists each name once, in order.
func TestWithOverrides(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "summary.tmpl"), []byte("[{{.Cluster}}] {{.Title}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.tmpl"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := WithOverrides(dir)
	if b, err := fs.ReadFile(o, "summary.tmpl"); err != nil || string(b) != "[{{.Cluster}}] {{.Title}}" {
		t.Errorf("summary.tmpl = %q, %v; want the override", b, err)
	}
	def, err := fs.ReadFile(FS, "postmortem.storage.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(o, "postmortem.storage.tmpl"); err != nil || string(b) != string(def) {
		t.Errorf("postmortem.storage.tmpl: %v; want the embedded default", err)
	}
	names, err := fs.Glob(o, "*.tmpl")
	if want := []string{"extra.tmpl", "jira-fields.tmpl", "postmortem.storage.tmpl", "summary.tmpl"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("Glob = %v, %v; want %v", names, err, want)
	}
}
