package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func setEnv(t *testing.T, kv map[string]string) {
	t.Helper()
	for _, k := range []string{"JIRA_URL", "CONFLUENCE_URL", "JIRA_PROJECT", "JIRA_ISSUE_TYPE", "JIRA_ALLOWED_PROJECTS",
		"JIRA_ALLOWED_ISSUE_TYPES", "CONFLUENCE_SPACE", "CONFLUENCE_PARENT_ID", "ATLASSIAN_EMAIL", "ATLASSIAN_API_TOKEN",
		"ATLASSIAN_BEARER_TOKEN", "ATLASSIAN_SECRET_ID", "AUTH_TOKEN", "ALLOW_UNAUTHENTICATED", "CLUSTER_NAME", "MAX_BODY_BYTES", "REQUEST_DEADLINE", "ATLASSIAN_TIMEOUT",
		"DEDUP_WINDOW", "LOG_LEVEL"} {
		t.Setenv(k, kv[k]) // restores the variable after the test
		if kv[k] == "" {
			os.Unsetenv(k)
		}
	}
}

var minimal = map[string]string{
	"JIRA_URL": "https://x.atlassian.net/", "ATLASSIAN_EMAIL": "bot@example.com",
	"ATLASSIAN_API_TOKEN": "api-TOKEN-value", "AUTH_TOKEN": "caller-TOKEN-value",
}

func TestLoadDefaults(t *testing.T) {
	setEnv(t, minimal)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.JiraURL != "https://x.atlassian.net" || c.ConfluenceURL != "https://x.atlassian.net/wiki" {
		t.Errorf("urls %q %q", c.JiraURL, c.ConfluenceURL)
	}
	if c.JiraProject != "OPS" || c.JiraIssueType != "Incident" || c.ConfluenceSpace != "INCIDENTS" {
		t.Errorf("defaults %+v", c)
	}
	if c.RequestDeadline != 25*time.Second || c.MaxBodyBytes != 1<<20 || c.LogLevel != slog.LevelInfo {
		t.Errorf("defaults %+v", c)
	}
	if fmt.Sprint(c.JiraAllowedProjects) != "[OPS]" {
		t.Errorf("allowed %v", c.JiraAllowedProjects)
	}
}

func TestAllowLists(t *testing.T) {
	kv := map[string]string{"JIRA_ALLOWED_PROJECTS": "sre, OPS ,PLAT", "JIRA_ALLOWED_ISSUE_TYPES": "Bug"}
	for k, v := range minimal {
		kv[k] = v
	}
	setEnv(t, kv)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for req, want := range map[string]string{"SRE": "SRE", "sre": "SRE", "PLAT": "PLAT", "HR": "OPS", "": "OPS", `OPS" OR 1=1`: "OPS"} {
		if got := c.AllowedProject(req); got != want {
			t.Errorf("AllowedProject(%q) = %q, want %q", req, got, want)
		}
	}
	for req, want := range map[string]string{"bug": "Bug", "Incident": "Incident", "Epic": "Incident", "": "Incident"} {
		if got := c.AllowedIssueType(req); got != want {
			t.Errorf("AllowedIssueType(%q) = %q, want %q", req, got, want)
		}
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	tests := []struct{ key, value, want string }{
		{"JIRA_URL", "", "JIRA_URL: is required"},
		{"JIRA_URL", "x.atlassian.net", "JIRA_URL: must be an absolute"},
		{"CONFLUENCE_URL", "https://u:p@x/wiki", "CONFLUENCE_URL: must not contain credentials"},
		{"ATLASSIAN_EMAIL", "", "ATLASSIAN_EMAIL"},
		{"AUTH_TOKEN", "", "AUTH_TOKEN: is required"},
		{"MAX_BODY_BYTES", "ten", "MAX_BODY_BYTES: invalid"},
		{"REQUEST_DEADLINE", "31s", "REQUEST_DEADLINE"},
		{"JIRA_ALLOWED_PROJECTS", "OPS,bad key", "JIRA_ALLOWED_PROJECTS"},
		{"CONFLUENCE_SPACE", "my space", "CONFLUENCE_SPACE"},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			kv := map[string]string{}
			for k, v := range minimal {
				kv[k] = v
			}
			kv[tc.key] = tc.value
			setEnv(t, kv)
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "TOKEN-value") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
	// Unauthenticated only when asked for explicitly.
	kv := map[string]string{"AUTH_TOKEN": "", "ALLOW_UNAUTHENTICATED": "true"}
	for k, v := range minimal {
		if k != "AUTH_TOKEN" {
			kv[k] = v
		}
	}
	setEnv(t, kv)
	if _, err := Load(); err != nil {
		t.Errorf("ALLOW_UNAUTHENTICATED=true: %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2-value")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "token", s, "struct", struct{ T Secret }{s})
	b, _ := json.Marshal(map[string]any{"t": s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %x %#v %+v", s, s, s, s, s, struct{ T Secret }{s}), string(b), logs.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
	if s.Reveal() != "hunter2-value" {
		t.Error("Reveal")
	}
}

// The secret replaces every credential variable: one set beside it is an
// error, not silently unused; and one start-up names every problem.
func TestSecretIDAlone(t *testing.T) {
	for _, extra := range []string{"ATLASSIAN_EMAIL", "ATLASSIAN_API_TOKEN", "ATLASSIAN_BEARER_TOKEN"} {
		t.Run(extra, func(t *testing.T) {
			setEnv(t, map[string]string{"JIRA_URL": "https://x.atlassian.net", "AUTH_TOKEN": "caller-TOKEN-value",
				"ATLASSIAN_SECRET_ID": "rollback-incident/atlassian", extra: "x-TOKEN-value"})
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), "ATLASSIAN_SECRET_ID: set either") || strings.Contains(err.Error(), "TOKEN-value") {
				t.Errorf("err = %v, want ATLASSIAN_SECRET_ID named and no value", err)
			}
		})
	}
	setEnv(t, map[string]string{"JIRA_URL": "https://x.atlassian.net", "ATLASSIAN_SECRET_ID": "rollback-incident/atlassian",
		"CONFLUENCE_SPACE": "my space", "DEDUP_WINDOW": "0s"})
	_, err := Load()
	for _, want := range []string{"CONFLUENCE_SPACE: must be", "DEDUP_WINDOW: must be"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %s named too", err, want)
		}
	}
}
