package test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"function/internal/emulator"
)

// TestBackstageOnceForAnIncident: an Argo CD failure that opens an incident
// reaches Backstage exactly once, from the function, with the Jira link and
// the postmortem, however often it is delivered, even when Backstage's
// answer is lost, and news about the rollback updates that notification
// instead of adding one. The body is what the shipped Argo CD template
// renders for the real degraded Application with a backstage.io/entity-ref
// annotation (deploy/backstage_test.go keeps the fixture in step); the
// shipped Backstage triggers stand aside for such an application, so this
// is the only way the failure reaches Backstage.
func TestBackstageOnceForAnIncident(t *testing.T) {
	t.Parallel()
	emu, ts := newEmulatorWith(t, emulator.Options{
		BackstageGroups: map[string][]string{"group:default/payments-team": {"user:default/alice", "user:default/bob"}},
		BackstageOwners: map[string]string{"component:default/checkout-api": "group:default/payments-team"},
	})
	e := startWith(t, emu, ts, "BACKSTAGE_URL="+ts.URL, "BACKSTAGE_TOKEN="+emulator.DefaultBackstageToken,
		"BACKSTAGE_BROADCAST=true")
	// The first notification takes effect but its answer is lost: the
	// function sends it again, and the scope makes that an update.
	emu.InjectFault("POST /api/notifications/notifications", emulator.Fault{Applied: true, Reset: true}, 1)

	// The notifications controller's webhook as the shipped service sends it.
	body := fixture(t, "argocd-app-health-degraded-rendered.json")
	headers := map[string]string{"Content-Type": "application/json"}
	var key, fp string
	for i := range 3 { // a retry after a lost answer, a restart that lost the notified state
		r := e.post(body, headers)
		want := "existing"
		if i == 0 {
			want = "created"
		}
		if r.status != http.StatusOK || r.reply.Status != want || r.reply.JiraKey == "" {
			t.Fatalf("delivery %d: %d %s, want 200 %s", i, r.status, r.body, want)
		}
		if i == 0 {
			key, fp = r.reply.JiraKey, r.reply.Fingerprint
		} else if r.reply.JiraKey != key {
			t.Fatalf("delivery %d: %s, want the incident %s", i, r.reply.JiraKey, key)
		}
	}
	if calls := emu.Calls()["POST /api/notifications/notifications"]; calls < 2 {
		t.Fatalf("%d Backstage calls: the lost answer was not retried", calls)
	}
	pages := e.postmortems()
	if len(emu.Issues()) != 1 || len(pages) != 1 {
		t.Fatalf("%d issues, %d postmortems, want one incident", len(emu.Issues()), len(pages))
	}
	first := requireOneEach(t, emu, "alice", "bob")
	for _, n := range first {
		p := n.Payload
		if p.Link != ts.URL+"/browse/"+key || p.Scope != "rollback:"+fp || p.Severity != "high" ||
			p.Topic != "deployment-rollback" || !strings.Contains(p.Description, key+" opened") ||
			!strings.Contains(p.Description, "Postmortem draft: "+ts.URL+"/wiki/") || n.Origin != emulator.DefaultBackstageSubject {
			t.Errorf("notification %+v: want the Jira link, the postmortem and the rollback's scope", n)
		}
	}

	// alice reads it; news about the same rollback (its AnalysisRun failed)
	// updates the one notification, unread again.
	if err := emu.SetNotificationRead(first[0].ID, true); err != nil {
		t.Fatal(err)
	}
	if r := e.post(fixture(t, "analysisrun-failed.json"), headers); r.status != http.StatusOK || r.reply.JiraKey != key {
		t.Fatalf("news: %d %s, want the incident %s", r.status, r.body, key)
	}
	after := requireOneEach(t, emu, "alice", "bob")
	for i, n := range after {
		if n.ID != first[i].ID || n.Updated.IsZero() || n.Read || n.Payload.Link != first[i].Payload.Link ||
			n.Payload.Description == first[i].Payload.Description || !strings.Contains(n.Payload.Description, "AnalysisRun") {
			t.Errorf("after the news: %+v, want %s updated with it, unread", n, first[i].ID)
		}
	}
	// The failure told again: nothing new, nothing more.
	if r := e.post(body, headers); r.status != http.StatusOK || r.reply.Status != "existing" {
		t.Fatalf("redelivery: %d %s", r.status, r.body)
	}
	requireOneEach(t, emu, "alice", "bob")
}

// requireOneEach asserts the emulator holds exactly one Backstage
// notification per named user (user:default/<name>) and nothing else, and
// returns them in that order.
func requireOneEach(t *testing.T, emu *emulator.Emulator, names ...string) []emulator.Notification {
	t.Helper()
	ns := emu.Notifications()
	var got []string
	for _, n := range ns {
		got = append(got, n.User)
	}
	var want []string
	for _, name := range names {
		want = append(want, "user:default/"+name)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("Backstage notifications for %v, want exactly one each for %v: %+v", got, want, ns)
	}
	slices.SortFunc(ns, func(a, b emulator.Notification) int { return strings.Compare(a.User, b.User) })
	return ns
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
