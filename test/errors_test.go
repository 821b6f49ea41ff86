package test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadInput: malformed requests get a 4xx with a reason a person
// understands, and reach nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := start(t, "MAX_BODY_BYTES=4096")
	valid := `{"rolloutName":"a","namespace":"b","phase":"Degraded"}`
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		status  int
		reason  string
	}{
		{"empty body", "", nil, 400, "empty body"},
		{"not json", "rollout checkout-api aborted", nil, 400, "not valid JSON"},
		{"truncated json", `{"rolloutName":"a",`, map[string]string{"Content-Type": "application/json"}, 400, "not valid JSON"},
		{"json array", `[{"rolloutName":"a"}]`, nil, 400, "expected a JSON object"},
		{"unknown shape", `{"alert":"x"}`, nil, 400, "unrecognised event"},
		{"no namespace", `{"rolloutName":"a","phase":"Degraded"}`, nil, 400, "namespace is missing"},
		{"form encoded", "rolloutName=a", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "send JSON"},
		{"text/plain", valid, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported Content-Type"},
		{"binary ce without id", valid, map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Source": "s", "Ce-Type": "t"}, 400, "invalid CloudEvent"},
		{"binary ce bad specversion", valid, map[string]string{"Ce-Specversion": "0.1", "Ce-Id": "1", "Ce-Source": "s", "Ce-Type": "t"}, 400, "invalid CloudEvent"},
		{"structured ce truncated", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{`, map[string]string{"Content-Type": "application/cloudevents+json"}, 400, "invalid CloudEvent"},
		// The SDK (v2.16.2) panics on a data_base64 that is not a string.
		{"structured ce data_base64 not a string", `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":1}`, map[string]string{"Content-Type": "application/cloudevents+json"}, 400, "data_base64 is not a string"},
		{"ce with xml data", `<x/>`, map[string]string{"Content-Type": "application/xml", "Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "s", "Ce-Type": "t"}, 415, "not JSON"},
		{"batch", `[]`, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, 415, "one event per request"},
		{"too large", `{"rolloutName":"a","namespace":"b","phase":"Degraded","message":"` + strings.Repeat("x", 5000) + `"}`, nil, 413, "larger than 4096"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post([]byte(tc.body), tc.headers)
			if r.status != tc.status {
				t.Errorf("status %d, want %d (%s)", r.status, tc.status, r.body)
			}
			if r.reply.Status != "rejected" || !strings.Contains(r.reply.Reason, tc.reason) {
				t.Errorf("reply %s, want rejected with %q", r.body, tc.reason)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("reply's Content-Type %q, want application/json", ct)
			}
		})
	}
	// GET is not a delivery.
	req, _ := http.NewRequest(http.MethodGet, e.url+"/", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if r := e.do(req); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("GET /: %d Allow=%q", r.status, r.header.Get("Allow"))
	}
	if n := len(e.emu.Issues()); n != 0 {
		t.Errorf("%d issues opened from bad input", n)
	}
}

// TestUnauthorized: without the bearer token nothing happens, and the
// answer says nothing about why.
func TestUnauthorized(t *testing.T) {
	t.Parallel()
	e := start(t)
	body := fixture(t, "rollout-notification-webhook.json")
	for name, auth := range map[string]string{
		"none": "", "wrong": "Bearer nope", "basic": "Basic ZTJlOmUyZQ==", "prefix": "Bearer " + testToken[:5],
		"token without scheme": testToken,
	} {
		h := map[string]string{"Authorization": auth}
		if auth == "" {
			h = map[string]string{"Authorization": ""}
		}
		r := e.post(body, h)
		if r.status != http.StatusUnauthorized || strings.Contains(string(r.body), "token") && !strings.Contains(string(r.body), `"unauthorized"`) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", name, ct)
		}
	}
	if n := len(e.emu.Issues()); n != 0 {
		t.Errorf("%d issues opened without authentication", n)
	}
	// The scheme is case-insensitive (RFC 7235 section 2.1).
	for _, scheme := range []string{"bearer", "BEARER"} {
		if r := e.post(body, map[string]string{"Authorization": scheme + " " + testToken}); r.status/100 != 2 {
			t.Errorf("%q scheme: %d %s", scheme, r.status, r.body)
		}
	}
	// Health endpoints stay open for the kubelet.
	resp, err := http.Get(e.url + "/health/liveness")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("liveness: %v %v", err, resp)
	}
}

// TestHugeHeaderNotLogged: a caller's header values are clipped in the
// log, so a 900 KB CloudEvent id cannot flood it.
func TestHugeHeaderNotLogged(t *testing.T) {
	t.Parallel()
	e := start(t)
	id := strings.Repeat("i", 900_000)
	r := e.post(fixture(t, "argo-events-resource-rollout-degraded.json"), map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "curl", "Ce-Type": "io.argoproj.rollouts.rollback",
	})
	if r.status/100 != 2 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, l := range e.logLines() {
		if v, _ := l["ce_id"].(string); len(v) > 300 {
			t.Errorf("log line carries a %d-byte ce_id", len(v))
		}
	}
	if n := len(e.output()); n > 200_000 {
		t.Errorf("the log grew to %d bytes", n)
	}
}

// TestAtlassianOutage: while Atlassian fails, the caller gets 202
// accepted (the function keeps the rollback); when Atlassian is back the
// function opens exactly one incident by itself, and a redelivery says so.
func TestAtlassianOutage(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		body := fixture(t, "rollout-notification-webhook.json")
		for _, status := range []int{503, 500, 429} {
			e.emu.SetOutage(status)
			r := e.post(body, nil)
			if r.status != http.StatusAccepted || r.reply.Status != "accepted" || !strings.Contains(r.reply.Reason, "will finish it") || r.reply.Fingerprint == "" {
				t.Errorf("outage %d: %d %s", status, r.status, r.body)
			}
		}
		e.emu.ClearOutage()
		waitUntil(t, time.Minute, func() bool { return e.opened(1) })
		r := e.post(body, nil)
		if r.status != http.StatusOK || r.reply.Status != "existing" || r.reply.JiraKey == "" {
			t.Fatalf("after the outage: %d %s", r.status, r.body)
		}
	})
}

// TestPartialFailureCompletes: a failure after the issue exists is kept
// in custody: the reply is 202 with the key, and the function finishes the
// page and the link without a second issue and without a redelivery.
func TestPartialFailureCompletes(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		body := fixture(t, "argocd-app-health-degraded.json")
		e.emu.FailNext(d.route("create page"), http.StatusInternalServerError, 1)
		e.emu.FailNext(d.route("remote link"), http.StatusInternalServerError, 1)
		r := e.post(body, nil)
		if r.status != http.StatusAccepted || r.reply.JiraKey == "" {
			t.Fatalf("first delivery: %d %s", r.status, r.body)
		}
		waitUntil(t, time.Minute, func() bool { return e.opened(1) })
		r3 := e.post(body, nil)
		if r3.status != http.StatusOK || r3.reply.Status != "existing" || r3.reply.JiraKey != r.reply.JiraKey || r3.reply.ConfluencePageID == "" {
			t.Fatalf("later delivery: %d %s", r3.status, r3.body)
		}
	})
}

// TestAtlassianUnreachable: nothing listening at JIRA_URL: accepted and
// kept, with a reason that says Atlassian is unavailable.
func TestAtlassianUnreachable(t *testing.T) {
	t.Parallel()
	closed := closedURL(t, "http")
	e := start(t, "JIRA_URL="+closed)
	r := e.post(fixture(t, "rollout-notification-webhook.json"), nil)
	if r.status != http.StatusAccepted || !strings.Contains(r.reply.Reason, "unavailable") {
		t.Errorf("%d %s", r.status, r.body)
	}
}

// TestAtlassianRefuses: a request Jira refuses (here: a project that does
// not exist) is accepted and kept for when an operator fixes the
// configuration, with Jira's reason in the reply.
func TestAtlassianRefuses(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t, "JIRA_PROJECT=NOPE", "JIRA_ALLOWED_PROJECTS=NOPE")
		r := e.post(fixture(t, "rollout-notification-webhook.json"), nil)
		if r.status != http.StatusAccepted || !strings.Contains(r.reply.Reason, "project") || !strings.Contains(r.reply.Reason, "keeps the rollback") {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
}

// TestConfigErrors: a missing or invalid setting stops start-up with a
// message naming the variable, and never prints a secret.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	base := []string{
		"JIRA_URL=https://example.atlassian.net", "ATLASSIAN_EMAIL=bot@example.com",
		"ATLASSIAN_API_TOKEN=tok-s3cr3t-123", "AUTH_TOKEN=caller-s3cr3t-456", "LISTEN_ADDRESS=127.0.0.1:0",
	}
	tests := []struct {
		name  string
		env   []string
		names string
	}{
		{"no jira url", []string{"JIRA_URL="}, "JIRA_URL"},
		{"bad jira url", []string{"JIRA_URL=ftp://x"}, "JIRA_URL"},
		{"credentials in url", []string{"JIRA_URL=https://u:tok-s3cr3t-123@x.atlassian.net"}, "JIRA_URL"},
		{"no token", []string{"ATLASSIAN_API_TOKEN="}, "ATLASSIAN_API_TOKEN"},
		{"no caller auth", []string{"AUTH_TOKEN="}, "AUTH_TOKEN"},
		{"bad deadline", []string{"REQUEST_DEADLINE=45s"}, "REQUEST_DEADLINE"},
		{"unparsable deadline", []string{"REQUEST_DEADLINE=soon"}, "REQUEST_DEADLINE"},
		{"bad project", []string{"JIRA_PROJECT=ops team"}, "JIRA_PROJECT"},
		{"bad parent", []string{"CONFLUENCE_PARENT_ID=home"}, "CONFLUENCE_PARENT_ID"},
		{"bad log level", []string{"LOG_LEVEL=loud"}, "LOG_LEVEL"},
		{"budget past the deadline", []string{"FINISH_BUDGET=30s"}, "FINISH_BUDGET"},
		{"short pending age", []string{"PENDING_MAX_AGE=5m"}, "PENDING_MAX_AGE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for _, kv := range append(append([]string{}, base...), tc.env...) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			var vars []string
			for k, v := range env {
				vars = append(vars, k+"="+v)
			}
			out, err := runToExit(t, vars...)
			if err == nil {
				t.Fatalf("exited 0:\n%s", out)
			}
			if !strings.Contains(out, tc.names) {
				t.Errorf("output does not name %s:\n%s", tc.names, out)
			}
			if strings.Contains(out, "s3cr3t") {
				t.Errorf("output leaks a secret:\n%s", out)
			}
		})
	}
}
