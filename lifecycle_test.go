package function

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
)

// TestFailedStartLeavesNothingRunning: a start that fails after it began
// background work (here: Secrets Manager refuses connections, so the
// credentials are retried in the background; then a template is broken)
// stops that work before returning. synctest fails the test if any
// goroutine of the bubble is still waiting when it ends.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "summary.tmpl"), []byte("{{ .Broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"JIRA_URL": "https://x.atlassian.net", "ATLASSIAN_SECRET_ID": "rollback-incident/atlassian", "AUTH_TOKEN": "caller",
		"ATLASSIAN_EMAIL": "", "ATLASSIAN_API_TOKEN": "", "ATLASSIAN_BEARER_TOKEN": "", "NATS_URL": "",
		"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_MAX_ATTEMPTS": "1",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:0", // port 0: refused at once
		"TEMPLATES_DIR":                    dir, "LOG_LEVEL": "error",
	} {
		t.Setenv(k, v)
	}
	synctest.Test(t, func(t *testing.T) {
		f := New()
		err := f.Start(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), "TEMPLATES_DIR") {
			_ = f.Stop(context.Background())
			t.Fatalf("Start: %v, want the broken template named", err)
		}
		if ready, _ := f.Ready(context.Background()); ready {
			t.Error("ready after a failed start")
		}
	})
}
