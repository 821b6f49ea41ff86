package test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOwnTemplates: files in TEMPLATES_DIR replace the defaults (here the
// summary and the extra Jira fields); LINK_TEMPLATES adds links; event text
// stays escaped whatever the template does.
func TestOwnTemplates(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		dir := t.TempDir()
		write := func(name, text string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("summary.tmpl", `Rollback {{.Kind}} {{.Namespace}}/{{.Name}} rev {{.Revision}} in {{.Cluster}}`)
		write("jira-fields.tmpl", `{"priority": {"name": "High"}, "components": [{"name": "{{.Name}}"}], "labels": ["ns-{{.Namespace}}", "team {{.Namespace}}"]}`)
		e := d.start(t, "TEMPLATES_DIR="+dir,
			"LINK_TEMPLATES=Grafana=https://grafana.example.com/d/rollouts?var-ns={{.Namespace}}&var-rollout={{.Name}}; Logs=https://logs.example.com/?q={{.Name}}")
		r := e.post(fixture(t, "rollout-notification-webhook.json"), nil)
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		is, _ := e.emu.Issue(r.reply.JiraKey)
		if is.Summary != "Rollback Rollout payments/checkout-api rev 7 in prod-eu-1" {
			t.Errorf("summary %q", is.Summary)
		}
		if is.Priority != "High" || !slices.Contains(is.Labels, "ns-payments") || !slices.Contains(is.Labels, "team-payments") || !slices.Contains(is.Labels, "rollback") {
			t.Errorf("priority %q labels %v", is.Priority, is.Labels)
		}
		desc := strings.ReplaceAll(description(is), `\u0026`, "&")
		if !strings.Contains(desc, `https://grafana.example.com/d/rollouts?var-ns=payments&var-rollout=checkout-api`) || !strings.Contains(desc, "https://logs.example.com/?q=checkout-api") {
			t.Errorf("configured links missing from the description:\n%s", desc)
		}
		page := e.postmortems()[0].Body
		if !strings.Contains(page, "https://grafana.example.com/d/rollouts?var-ns=payments&amp;var-rollout=checkout-api") {
			t.Errorf("configured links missing from the page")
		}
	})
}

// TestTemplateErrorStopsStart: a broken template is reported at start-up,
// naming TEMPLATES_DIR, not on the first incident.
func TestTemplateErrorStopsStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "postmortem.storage.tmpl"), []byte(`<p>{{.NoSuchField}}</p>`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runToExit(t, "JIRA_URL=https://x.atlassian.net", "ATLASSIAN_EMAIL=a@b.c", "ATLASSIAN_API_TOKEN=t",
		"AUTH_TOKEN=x", "LISTEN_ADDRESS=127.0.0.1:0", "TEMPLATES_DIR="+dir)
	if err == nil || !strings.Contains(out, "TEMPLATES_DIR") || !strings.Contains(out, "NoSuchField") {
		t.Errorf("err %v, output:\n%s", err, out)
	}
}
