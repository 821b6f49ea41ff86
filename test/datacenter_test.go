package test

import (
	"net/http"
	"strings"
	"testing"

	"function/internal/emulator"
)

// TestDataCenterEndToEnd: the fixtures, in every envelope, open one issue
// and one page per rollback on Data Center, linked both ways; the
// description is wiki markup with the facts; news becomes a comment and a
// timeline row.
func TestDataCenterEndToEnd(t *testing.T) {
	t.Parallel()
	e := dataCenter.start(t)
	keys := map[string]string{}
	for _, f := range []string{"rollout-notification-webhook.json", "argo-events-resource-rollout-degraded.json",
		"argocd-app-health-degraded.json", "workflow-failed.json"} {
		for _, env := range envelopes {
			r := env.send(e, fixture(t, f))
			if r.status != http.StatusOK || r.reply.JiraKey == "" || r.reply.ConfluencePageID == "" {
				t.Fatalf("%s via %s: %d %s", f, env.name, r.status, r.body)
			}
			if k, ok := keys[r.reply.Fingerprint]; ok && k != r.reply.JiraKey {
				t.Errorf("%s via %s: key %s, want %s", f, env.name, r.reply.JiraKey, k)
			}
			keys[r.reply.Fingerprint] = r.reply.JiraKey
		}
	}
	// The Argo CD application is degraded by the checkout-api rollback: 2.
	if len(keys) != 2 || len(e.emu.Issues()) != 2 || len(e.postmortems()) != 2 {
		t.Fatalf("%d incidents, %d issues, %d pages; want 2 each", len(keys), len(e.emu.Issues()), len(e.postmortems()))
	}
	for _, is := range e.emu.Issues() {
		if is.DescriptionWiki == "" || len(is.Description) != 0 {
			t.Errorf("%s: want a wiki-markup description only", is.Key)
		}
		if !strings.Contains(is.DescriptionWiki, "h3. Facts") || !strings.Contains(is.DescriptionWiki, "||Cluster|prod\\-eu\\-1|") {
			t.Errorf("%s description lacks the facts:\n%s", is.Key, is.DescriptionWiki)
		}
		links := e.emu.RemoteLinks(is.Key)
		if len(links) != 1 {
			t.Errorf("%s has %d remote links", is.Key, len(links))
		}
	}
	for _, p := range e.postmortems() {
		if !strings.Contains(p.Body, `/browse/OPS-`) {
			t.Errorf("page %s does not link its issue", p.ID)
		}
	}
	// News about the checkout-api rollback.
	r := e.post(fixture(t, "analysisrun-failed.json"), nil)
	if r.status != http.StatusOK {
		t.Fatalf("news: %d %s", r.status, r.body)
	}
	comments := e.emu.Comments(r.reply.JiraKey)
	if len(comments) != 1 {
		t.Fatalf("%d comments, want 1", len(comments))
	}
	for _, p := range e.postmortems() {
		if p.ID == r.reply.ConfluencePageID && (p.Version < 2 || !strings.Contains(p.Body, "success-rate")) {
			t.Errorf("page %s: version %d, timeline row missing", p.ID, p.Version)
		}
	}
	// A storm on Data Center still opens one incident.
	before := len(e.emu.Issues())
	checkStormDelta(t, e, storm(t, []*env{e}, 100), before)
}

func checkStormDelta(t *testing.T, e *env, replies []result, before int) {
	t.Helper()
	for i, r := range replies {
		if r.status != http.StatusOK || r.reply.JiraKey != replies[0].reply.JiraKey {
			t.Errorf("delivery %d: %d %s", i, r.status, r.body)
		}
	}
	if got := len(e.emu.Issues()); got != before {
		t.Errorf("%d issues after the storm, want %d (it is an existing rollback)", got, before)
	}
}

// TestBackstageNotification: one notification per rollback, to the owner
// from the object's annotation or BACKSTAGE_OWNERS, updated (not added) when
// news arrives.
func TestBackstageNotification(t *testing.T) {
	t.Parallel()
	emu, ts := newEmulatorWith(t, emulator.Options{BackstageGroups: map[string][]string{
		"group:default/payments-team": {"user:default/alice", "user:default/bob"},
	}})
	e := startWith(t, emu, ts, "BACKSTAGE_URL="+ts.URL, "BACKSTAGE_TOKEN="+emulator.DefaultBackstageToken,
		"BACKSTAGE_OWNERS=payments=group:default/payments-team")
	for _, f := range []string{"rollout-notification-webhook.json", "argo-events-webhook-event.json", "rollout-notification-webhook.json"} {
		if r := e.post(fixture(t, f), nil); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", f, r.status, r.body)
		}
	}
	ns := emu.Notifications()
	if len(ns) != 2 { // one per user of the group
		t.Fatalf("%d notifications, want 2 (alice and bob): %+v", len(ns), ns)
	}
	first := ns[0]
	if !strings.HasPrefix(first.Payload.Scope, "rollback:") || first.Payload.Severity != "high" || !strings.Contains(first.Payload.Link, "/browse/OPS-1") {
		t.Errorf("notification %+v", first)
	}
	// News updates the same notifications.
	if r := e.post(fixture(t, "analysisrun-failed.json"), nil); r.status != http.StatusOK {
		t.Fatalf("news: %d %s", r.status, r.body)
	}
	ns = emu.Notifications()
	if len(ns) != 2 || ns[0].ID != first.ID || ns[0].Updated.IsZero() || !strings.Contains(ns[0].Payload.Description, "success-rate") {
		t.Errorf("after news: %+v", ns)
	}
	// Without an owner and without broadcast, no notification.
	if r := e.post([]byte(`{"rolloutName":"x","namespace":"other","phase":"Degraded","message":"m"}`), nil); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := len(emu.Notifications()); got != 2 {
		t.Errorf("%d notifications, want still 2", got)
	}
}
