package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"function/internal/emulator"
)

// atlassianCalls counts the emulator's API calls (not the HTML views).
// atlassianCalls counts the calls about incidents: the start-up credential
// check (GET …/myself, once per process, at a moment of its own) is left
// out, so that counts compare.
func atlassianCalls(emu *emulator.Emulator) int {
	n := 0
	for route, c := range emu.Calls() {
		if !strings.HasSuffix(route, "/myself") {
			n += c
		}
	}
	return n
}

// TestRepeatsBecomeTimeline: a later event with news about the rollback
// (analysis failed → aborted) is added once to the incident's timeline, as a
// Jira comment and a row of the page's timeline; identical repeats add
// nothing and cost no Atlassian call.
func TestRepeatsBecomeTimeline(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		notification := fixture(t, "rollout-notification-webhook.json")
		first := e.post(notification, nil)
		if first.status != http.StatusOK || first.reply.Status != "created" {
			t.Fatalf("first: %d %s", first.status, first.body)
		}
		key := first.reply.JiraKey

		// The same failure in other envelopes: the resource event brings facts
		// the notification lacked (images, hashes), which update the page once
		// and comment nothing; repeating them all changes nothing at all.
		repeats := []string{"rollout-notification-webhook.json", "argo-events-resource-rollout-degraded.json", "argo-events-webhook-event.json"}
		for _, f := range repeats {
			if r := e.post(fixture(t, f), nil); r.reply.Status != "existing" || r.reply.JiraKey != key {
				t.Fatalf("%s: %s", f, r.body)
			}
		}
		before, version := atlassianCalls(e.emu), e.postmortems()[0].Version
		for _, f := range repeats {
			if r := e.post(fixture(t, f), nil); r.reply.Status != "existing" || r.reply.JiraKey != key {
				t.Fatalf("%s: %s", f, r.body)
			}
		}
		if after := atlassianCalls(e.emu); after != before {
			t.Errorf("identical repeats made %d Atlassian calls, want 0", after-before)
		}
		if n := len(e.emu.Comments(key)); n != 0 {
			t.Errorf("repeats of the same failure added %d comments", n)
		}

		// The AnalysisRun says something new.
		for range 3 {
			r := e.post(fixture(t, "analysisrun-failed.json"), nil)
			if r.status != http.StatusOK || r.reply.JiraKey != key {
				t.Fatalf("analysis run: %d %s", r.status, r.body)
			}
		}
		comments := e.emu.Comments(key)
		if len(comments) != 1 {
			t.Fatalf("%d comments, want 1", len(comments))
		}
		if b, _ := json.Marshal(comments[0]); !strings.Contains(string(b), `AnalysisRun`) || !strings.Contains(string(b), `failureLimit`) {
			t.Errorf("comment does not carry the news: %s", b)
		}
		pages := e.postmortems()
		if len(pages) != 1 || pages[0].Version != version+1 {
			t.Fatalf("pages %+v, want one page at version %d", pages, version+1)
		}
		body := pages[0].Body
		timeline := body[strings.Index(body, "rollback-incident.timeline<"):strings.Index(body, "rollback-incident.timeline.end")]
		if strings.Count(timeline, "<tr><td>") != 3 || strings.Count(timeline, "AnalysisRun checkout-api") != 1 || strings.Count(timeline, "Incident OPS-1 opened") != 1 {
			t.Errorf("page timeline should have the failure, the opening and the news once each:\n%s", timeline)
		}
	})
}

// TestRestartReplaysADD: a restarted resource EventSource replays an ADD
// for every degraded Rollout; a restarted function has lost its in-process
// records. Neither opens a new incident nor comments.
func TestRestartReplaysADD(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		emu, ts := newEmulator(t)
		e := d.startWith(t, emu, ts)
		update := fixture(t, "argo-events-resource-rollout-degraded.json")
		r := e.post(update, nil)
		if r.reply.Status != "created" {
			t.Fatalf("UPDATE: %s", r.body)
		}
		var ev map[string]json.RawMessage
		if err := json.Unmarshal(update, &ev); err != nil {
			t.Fatal(err)
		}
		add := []byte(`{"type":"ADD","body":` + string(ev["body"]) + `,"oldBody":null,"group":"argoproj.io","version":"v1alpha1","resource":"rollouts"}`)

		e.kill()
		e2 := d.startWith(t, emu, ts)
		for range 3 {
			r2 := e2.post(add, nil)
			if r2.status != http.StatusOK || r2.reply.Status != "existing" || r2.reply.JiraKey != r.reply.JiraKey {
				t.Fatalf("replayed ADD: %d %s", r2.status, r2.body)
			}
		}
		if len(emu.Issues()) != 1 || len(e2.postmortems()) != 1 || len(emu.Comments(r.reply.JiraKey)) != 0 {
			t.Errorf("%d issues, %d pages, %d comments; want 1, 1, 0", len(emu.Issues()), len(e2.postmortems()), len(emu.Comments(r.reply.JiraKey)))
		}
	})
}

// TestKilledBetweenIssueAndPage: the process dies after the issue exists
// and while the page is being created; the redelivery to a new process
// finishes the incident: one issue, one page, linked.
func TestKilledBetweenIssueAndPage(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		emu, ts := newEmulator(t)
		e := d.startWith(t, emu, ts)
		body := fixture(t, "workflow-failed.json")
		emu.InjectFault(d.route("create page"), emulator.Fault{Delay: 30 * time.Second}, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "Bearer "+testToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		waitFor(t, func() bool { return emu.Calls()[d.route("create page")] == 1 })
		e.kill()
		if len(emu.Issues()) != 1 || len(e.postmortems()) != 0 {
			t.Fatalf("before redelivery: %d issues, %d pages", len(emu.Issues()), len(e.postmortems()))
		}
		emu.ClearFaults()

		e2 := d.startWith(t, emu, ts)
		r := e2.post(body, nil)
		if r.status != http.StatusOK || r.reply.Status != "existing" || r.reply.ConfluencePageID == "" {
			t.Fatalf("redelivery: %d %s", r.status, r.body)
		}
		if len(emu.Issues()) != 1 || len(e2.postmortems()) != 1 || len(emu.RemoteLinks(r.reply.JiraKey)) != 1 {
			t.Errorf("%d issues, %d pages, %d links; want 1 each", len(emu.Issues()), len(e2.postmortems()), len(emu.RemoteLinks(r.reply.JiraKey)))
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	waitUntil(t, 30*time.Second, cond)
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opened reports whether the emulator holds exactly n issues and n
// postmortem pages, each issue linked to its page.
func (e *env) opened(n int) bool {
	issues, pages := e.emu.Issues(), e.postmortems()
	if len(issues) != n || len(pages) != n {
		return false
	}
	for _, is := range issues {
		if len(e.emu.RemoteLinks(is.Key)) != 1 {
			return false
		}
	}
	return true
}

// TestRecurrenceLinksPrevious: the same Rollout failing again at a new
// revision is a new incident that names and links the earlier one.
func TestRecurrenceLinksPrevious(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		send := func(rev int) reply {
			body := fmt.Sprintf(`{"rolloutName":"checkout-api","namespace":"payments","phase":"Degraded","message":"RolloutAborted: Rollout aborted update to revision %d: Step-based analysis phase error/failed"}`, rev)
			r := e.post([]byte(body), nil)
			if r.status != http.StatusOK || r.reply.Status != "created" {
				t.Fatalf("revision %d: %d %s", rev, r.status, r.body)
			}
			return r.reply
		}
		first, second := send(7), send(8)
		if first.JiraKey == second.JiraKey || first.Fingerprint == second.Fingerprint {
			t.Fatalf("revisions 7 and 8 share an incident: %+v %+v", first, second)
		}
		is, _ := e.emu.Issue(second.JiraKey)
		if !strings.Contains(description(is), first.JiraKey) {
			t.Errorf("%s does not name the previous incident %s", second.JiraKey, first.JiraKey)
		}
		found := false
		for _, l := range e.emu.RemoteLinks(second.JiraKey) {
			if l.URL == e.emuTS.URL+"/browse/"+first.JiraKey {
				found = true
			}
		}
		if !found {
			t.Errorf("%s has no remote link to %s: %+v", second.JiraKey, first.JiraKey, e.emu.RemoteLinks(second.JiraKey))
		}
	})
}

// TestStormOneProcess: 500 concurrent deliveries of one rollback with
// distinct CloudEvent ids and a mix of envelopes → one issue, one page, one
// link, and every reply names the same key.
func TestStormOneProcess(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		replies := storm(t, []*env{e}, 500)
		checkStorm(t, e.emu, replies)
		// Without NATS the function says that replicas could duplicate, and how
		// to avoid it.
		if log := e.output(); !strings.Contains(log, "duplicates") || !strings.Contains(log, "autoscaling.knative.dev/max-scale") {
			t.Errorf("start-up log lacks the single-replica warning:\n%s", log)
		}
	})
}

// storm sends n deliveries of the checkout-api rollback, spread over the
// processes, in every envelope a deployment uses, each with its own id.
func storm(t *testing.T, envs []*env, n int) []result {
	t.Helper()
	notification := fixture(t, "rollout-notification-webhook.json")
	shapes := [][]byte{
		notification,
		fixture(t, "argo-events-webhook-event.json"),
		fixture(t, "argo-events-sensor-event-view.json"),
		fixture(t, "argo-events-resource-rollout-degraded.json"),
	}
	structured := func(i int, data []byte) []byte {
		return []byte(fmt.Sprintf(`{"specversion":"1.0","id":"storm-%d","source":"argo-events/sensor/rollback-sensor","type":"io.argoproj.rollouts.rollback","datacontenttype":"application/json","data":%s}`, i, data))
	}
	out := make([]result, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // bounded client concurrency, like many Sensor pods
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			e := envs[i%len(envs)]
			data := shapes[i%len(shapes)]
			var r result
			switch (i / len(shapes)) % 3 {
			case 0:
				r = e.postQuiet(data, nil)
			case 1:
				r = e.postQuiet(data, map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0",
					"Ce-Id": fmt.Sprintf("storm-%d", i), "Ce-Source": "argo-events/sensor/rollback-sensor", "Ce-Type": "io.argoproj.rollouts.rollback"})
			default:
				r = e.postQuiet(structured(i, data), map[string]string{"Content-Type": "application/cloudevents+json"})
			}
			out[i] = r
		}()
	}
	wg.Wait()
	return out
}

func checkStorm(t *testing.T, emu *emulator.Emulator, replies []result) {
	t.Helper()
	key, created := "", 0
	for i, r := range replies {
		if r.status != http.StatusOK {
			t.Errorf("delivery %d: %d %s", i, r.status, r.body)
			continue
		}
		if key == "" {
			key = r.reply.JiraKey
		}
		if r.reply.JiraKey != key || r.reply.ConfluencePageID == "" {
			t.Errorf("delivery %d: %s, want key %s", i, r.body, key)
		}
		if r.reply.Status == "created" {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d replies say created, want 1", created)
	}
	pages := 0
	for _, p := range emu.Pages() {
		if strings.HasPrefix(p.Title, "Postmortem ") {
			pages++
		}
	}
	if len(emu.Issues()) != 1 || pages != 1 || len(emu.RemoteLinks(key)) != 1 {
		t.Errorf("emulator: %d issues, %d pages, %d links; want 1 each", len(emu.Issues()), pages, len(emu.RemoteLinks(key)))
	}
}

// checkStormDelta checks a storm of deliveries of an existing rollback:
// every reply is a 200 naming the same issue, and the emulator still
// holds the before issues it held.
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
