package test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestLivingIncident plays one rollback as it really arrives — the thin
// notification, the resource UPDATE, the AnalysisRun, Argo CD's
// health-degraded notification, then the Rollout Healthy at the next
// revision — with a person writing on the page midway. One issue, one page;
// the page ends with every event's facts, the recovery and its durations,
// and the person's words.
func TestLivingIncident(t *testing.T) {
	t.Parallel()
	e := start(t)
	first := e.post(fixture(t, "rollout-notification-webhook.json"), nil)
	if first.status != http.StatusOK || first.reply.Status != "created" {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	// A person writes in a section of their own.
	const note = "Checkout latency rose for twelve minutes; on-call paged at 14:05."
	editPage(t, e, first.reply.ConfluencePageID, note)
	// And rewrites the description: the function leaves it alone from now
	// on, and tells new facts in comments.
	const own = "Written by the on-call engineer."
	desc, _ := json.Marshal(map[string]any{"fields": map[string]any{"description": map[string]any{
		"version": 1, "type": "doc", "content": []any{map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": own}}}}}}})
	atlassian(t, e, http.MethodPut, "/rest/api/3/issue/"+first.reply.JiraKey, desc)

	for _, f := range []string{"argo-events-resource-rollout-degraded.json", "analysisrun-failed.json", "argocd-app-health-degraded.json"} {
		if r := e.post(fixture(t, f), nil); r.status != http.StatusOK || r.reply.JiraKey != first.reply.JiraKey {
			t.Fatalf("%s: %d %s", f, r.status, r.body)
		}
	}
	healthy := e.post(fixture(t, "argo-events-resource-rollout-healthy.json"), nil)
	if healthy.status != http.StatusOK || healthy.reply.Status != "recovered" || healthy.reply.JiraKey != first.reply.JiraKey {
		t.Fatalf("healthy: %d %s", healthy.status, healthy.body)
	}
	if n := len(e.emu.Issues()); n != 1 || len(e.postmortems()) != 1 {
		t.Fatalf("%d issues, %d pages", n, len(e.postmortems()))
	}
	body := e.postmortems()[0].Body
	for _, want := range []string{
		note,                                // the person's words survived every update
		"success-rate",                      // the AnalysisRun's metric
		"registry.example.com",              // the resource UPDATE's images
		"Time to recover",                   // the durations
		"Time to detect",                    //
		"kubectl argo rollouts get rollout", // next steps
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if d := description(e.emu.Issues()[0]); !strings.Contains(d, own) || strings.Contains(d, "success-rate") {
		t.Errorf("the person's description was not kept:\n%s", d)
	}
	facts := false
	for _, c := range e.emu.Comments(first.reply.JiraKey) {
		b, _ := json.Marshal(c)
		facts = facts || strings.Contains(string(b), "registry.example.com") // the images, a fact no news line carries
	}
	if !facts {
		t.Error("no comment carries the new facts")
	}
	timeline := body[strings.Index(body, "rollback-incident.timeline<"):strings.Index(body, "rollback-incident.timeline.end")]
	if !strings.Contains(timeline, "again") {
		t.Errorf("the timeline has no recovery row:\n%s", timeline)
	}
	// A repeat of the recovery changes nothing.
	before := atlassianCalls(e.emu)
	if r := e.post(fixture(t, "argo-events-resource-rollout-healthy.json"), nil); r.status/100 != 2 {
		t.Fatalf("repeat: %d %s", r.status, r.body)
	}
	if after := atlassianCalls(e.emu); after != before {
		t.Errorf("a repeated recovery made %d Atlassian calls", after-before)
	}
}

// TestHealthyWithoutIncident: a healthy object that had no incident is
// ignored, at no Atlassian call.
func TestHealthyWithoutIncident(t *testing.T) {
	t.Parallel()
	e := start(t)
	for _, f := range []string{"argo-events-resource-rollout-healthy.json", "argocd-app-healthy-synced.json", "workflow-succeeded-retry.json"} {
		if r := e.post(fixture(t, f), nil); r.status != http.StatusOK || r.reply.Status != "ignored" {
			t.Errorf("%s: %d %s", f, r.status, r.body)
		}
	}
	if n := atlassianCalls(e.emu); n != 0 {
		t.Errorf("%d Atlassian calls for healthy objects without incidents", n)
	}
}

// editPage saves the page as a person would in the editor: a paragraph
// added under "Lessons learned", outside the generated sections.
func editPage(t *testing.T, e *env, id, note string) {
	t.Helper()
	var page struct {
		Title   string `json:"title"`
		Version struct {
			Number int `json:"number"`
		} `json:"version"`
		Body struct {
			Storage struct {
				Value string `json:"value"`
			} `json:"storage"`
		} `json:"body"`
	}
	r := atlassian(t, e, http.MethodGet, "/wiki/api/v2/pages/"+id+"?body-format=storage", nil)
	if err := json.Unmarshal(r, &page); err != nil {
		t.Fatal(err)
	}
	storage := page.Body.Storage.Value
	i := strings.Index(storage, "Lessons learned</h2>")
	if i < 0 {
		t.Fatalf("no Lessons learned section:\n%s", storage)
	}
	i += len("Lessons learned</h2>")
	storage = storage[:i] + "<p>" + note + "</p>" + storage[i:]
	body, _ := json.Marshal(map[string]any{
		"id": id, "status": "current", "title": page.Title,
		"body":    map[string]string{"representation": "storage", "value": storage},
		"version": map[string]any{"number": page.Version.Number + 1},
	})
	atlassian(t, e, http.MethodPut, "/wiki/api/v2/pages/"+id, body)
}

// atlassian calls the emulator as a person's client would.
func atlassian(t *testing.T, e *env, method, path string, body []byte) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, e.emuTS.URL+path, bytes.NewReader(body))
	req.SetBasicAuth("bot@example.com", "emulator-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b.String())
	}
	return b.Bytes()
}
