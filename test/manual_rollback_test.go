package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// sensorDelivery posts a resource EventSource event the way the Sensor of
// deploy/argo-events/sensor-rollbacks.yaml does: a binary-mode CloudEvent
// whose data is {"context": <event context>, "data": <event data>}. Every
// delivery has its own id, as every redelivery of a real one would.
func (e *env) sensorDelivery(eventSource, eventName string, data []byte) result {
	e.t.Helper()
	id := fmt.Sprintf("%032x", ceSeq.Add(1))
	ctx := fmt.Sprintf(`{"id":%q,"source":%q,"specversion":"1.0","type":"resource","datacontenttype":"application/json","subject":%q,"time":"2025-06-12T14:19:56Z"}`, id, eventSource, eventName)
	body := []byte(`{"context":` + ctx + `,"data":` + string(data) + `}`)
	return e.post(body, map[string]string{
		"Content-Type":   "application/json",
		"Ce-Specversion": "1.0",
		"Ce-Id":          id,
		"Ce-Source":      "argo-events/" + eventSource + "/" + eventName,
		"Ce-Type":        "io.argoproj.events.resource",
		"Ce-Time":        "2025-06-12T14:19:56Z",
	})
}

func commentTexts(t *testing.T, e *env, key string) []string {
	t.Helper()
	var out []string
	for _, c := range e.emu.Comments(key) {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// TestManualUndoOpensOneIncident: `kubectl rollout undo` of a Deployment,
// seen as the ReplicaSet UPDATE the resource EventSource sends, opens one
// incident that names the object, the revisions and the restored images;
// the ReplicaSet changes of a normal rollout open nothing; redeliveries of
// the rollback add nothing.
func TestManualUndoOpensOneIncident(t *testing.T) {
	t.Parallel()
	e := start(t)
	for _, f := range []string{"replicaset-rollout-new-add.json", "replicaset-rollout-scale-up.json", "replicaset-scale-down.json", "replicaset-resync.json"} {
		r := e.sensorDelivery("replicasets-resource", "replicasets", fixture(t, f))
		if r.status != http.StatusOK || r.reply.Status != "ignored" {
			t.Errorf("%s: %d %s, want ignored", f, r.status, r.body)
		}
	}
	if n := len(e.emu.Issues()); n != 0 {
		t.Fatalf("%d issues before any rollback", n)
	}

	undo := fixture(t, "replicaset-deployment-undo.json")
	r := e.sensorDelivery("replicasets-resource", "replicasets", undo)
	if r.status != http.StatusOK || r.reply.Status != "created" {
		t.Fatalf("undo: %d %s", r.status, r.body)
	}
	key := r.reply.JiraKey
	issues := e.emu.Issues()
	if len(issues) != 1 || len(e.postmortems()) != 1 {
		t.Fatalf("%d issues, %d pages; want 1 and 1", len(issues), len(e.postmortems()))
	}
	is := issues[0]
	if !strings.Contains(is.Summary, "shop/inventory") {
		t.Errorf("summary %q does not name the Deployment", is.Summary)
	}
	desc := description(is)
	for _, want := range []string{
		"Deployment shop/inventory reverted from revision 4 to revision 3", // the revisions
		"registry.example.com/shop/inventory:2.7.4",                        // the restored image
		"inventory-7c9d8f6b54",                                             // the reused ReplicaSet
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("the issue does not say %q:\n%s", want, desc)
		}
	}
	page := e.postmortems()[0]
	if !strings.Contains(page.Body, "registry.example.com/shop/inventory:2.7.4") || !strings.Contains(page.Title, key) {
		t.Errorf("postmortem %q does not carry the restored image or the key", page.Title)
	}
	if links := e.emu.RemoteLinks(key); len(links) != 1 {
		t.Errorf("%d remote links from %s, want 1 (to the postmortem)", len(links), key)
	}

	calls := atlassianCalls(e.emu)
	for range 3 {
		r := e.sensorDelivery("replicasets-resource", "replicasets", undo)
		if r.status != http.StatusOK || r.reply.Status != "existing" || r.reply.JiraKey != key {
			t.Fatalf("replay: %d %s", r.status, r.body)
		}
	}
	if n := len(e.emu.Issues()); n != 1 {
		t.Errorf("replays opened %d issues", n-1)
	}
	if n := len(e.emu.Comments(key)); n != 0 {
		t.Errorf("replays added %d comments", n)
	}
	if after := atlassianCalls(e.emu); after != calls {
		t.Errorf("replays made %d Atlassian calls, want 0", after-calls)
	}
}

// TestUndoAfterAbortJoinsTheAbortIncident: Rollout checkout-api aborted
// revision 7 (an incident); its stable template is then made current again
// (the ReplicaSet's revision 6 → 8, and Argo CD's rollback that did it).
// Both are news of the abort's incident, not new incidents: the issue keeps
// the failed images, the news adds the restored ones. Needs the opener to
// honour Incident.Joins.
func TestUndoAfterAbortJoinsTheAbortIncident(t *testing.T) {
	t.Parallel()
	e := start(t)
	abort := e.sensorDelivery("rollouts-resource", "rollouts", fixture(t, "argo-events-resource-rollout-degraded.json"))
	if abort.status != http.StatusOK || abort.reply.Status != "created" {
		t.Fatalf("abort: %d %s", abort.status, abort.body)
	}
	key := abort.reply.JiraKey

	undo := fixture(t, "replicaset-rollout-undo-after-abort.json")
	r := e.sensorDelivery("replicasets-resource", "replicasets", undo)
	if r.status != http.StatusOK {
		t.Fatalf("undo: %d %s", r.status, r.body)
	}
	if r.reply.Status != "existing" || r.reply.JiraKey != key {
		t.Fatalf("undo after the abort: %s %s (fingerprint %s), want existing %s: the rollback must join the abort's incident", r.reply.Status, r.reply.JiraKey, r.reply.Fingerprint, key)
	}
	if n := len(e.emu.Issues()); n != 1 {
		t.Fatalf("%d issues, want the abort's only", n)
	}
	comments := commentTexts(t, e, key)
	if len(comments) != 1 || !strings.Contains(comments[0], "from revision 7 to revision 6") ||
		!strings.Contains(comments[0], "registry.example.com/payments/checkout-api:1.41.3") {
		t.Fatalf("comments %q, want one saying the rollback and the restored image", comments)
	}
	// Before: the failed image stays in the abort's issue.
	if d := description(e.emu.Issues()[0]); !strings.Contains(d, "registry.example.com/payments/checkout-api:1.42.0") {
		t.Errorf("the issue lost the failed image:\n%s", d)
	}

	// Argo CD's side of the same rollback (on-rollback notification).
	r = e.post(fixture(t, "argocd-app-rollback-notification.json"), map[string]string{"Content-Type": "application/json"})
	if r.status != http.StatusOK || r.reply.Status != "existing" || r.reply.JiraKey != key {
		t.Fatalf("Argo CD rollback: %d %s, want existing %s", r.status, r.body, key)
	}
	if comments := commentTexts(t, e, key); len(comments) != 2 || !strings.Contains(comments[1], "alice@example.com") {
		t.Errorf("comments %q, want the Argo CD rollback with who initiated it", comments)
	}

	// Replays add nothing.
	for range 2 {
		e.sensorDelivery("replicasets-resource", "replicasets", undo)
		e.post(fixture(t, "argocd-app-rollback-notification.json"), nil)
	}
	if n, c := len(e.emu.Issues()), len(e.emu.Comments(key)); n != 1 || c != 2 {
		t.Errorf("after replays: %d issues, %d comments; want 1 and 2", n, c)
	}
}
