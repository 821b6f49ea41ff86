package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"function/internal/emulator"
)

// envelope sends a body one way a real deployment does.
type envelope struct {
	name string
	send func(e *env, body []byte) result
}

var envelopes = []envelope{
	// The Argo Events Sensor HTTP trigger: no Content-Type, no ce-*.
	{"sensor plain, no content type", func(e *env, b []byte) result { return e.post(b, nil) }},
	// The notifications webhook with a configured Content-Type.
	{"notifications webhook json", func(e *env, b []byte) result {
		return e.post(b, map[string]string{"Content-Type": "application/json", "User-Agent": "Go-http-client/1.1"})
	}},
	{"cloudevent binary (sdk)", func(e *env, b []byte) result { return e.sendCE(b, false) }},
	{"cloudevent structured (sdk)", func(e *env, b []byte) result { return e.sendCE(b, true) }},
}

// ceSeq numbers the CloudEvents the tests send, across parallel tests.
var ceSeq atomic.Int64

// sendCE sends body as the data of a CloudEvent with the CloudEvents SDK
// client, in binary or structured mode, and reads the CloudEvent reply.
func (e *env) sendCE(body []byte, structured bool) result {
	e.t.Helper()
	c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(e.url+"/"), cehttp.WithHeader("Authorization", "Bearer "+testToken))
	if err != nil {
		e.t.Fatal(err)
	}
	ev := event.New()
	ev.SetID(fmt.Sprintf("e2e-%d", ceSeq.Add(1)))
	ev.SetSource("argo-events/sensor/rollback-sensor")
	ev.SetType("io.argoproj.rollouts.rollback")
	if err := ev.SetData(event.ApplicationJSON, json.RawMessage(body)); err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	if structured {
		ctx = binding.WithForceStructured(ctx)
	}
	resp, res := c.Request(ctx, ev)
	var hr *cehttp.Result
	if !cloudevents.ResultAs(res, &hr) {
		e.t.Fatalf("send CloudEvent: %v", res)
	}
	r := result{status: hr.StatusCode}
	if resp != nil {
		if resp.Type() != "dev.rollback-incident.result" || resp.Source() != "rollback-incident" {
			e.t.Errorf("reply CloudEvent type/source = %q/%q", resp.Type(), resp.Source())
		}
		if err := resp.Validate(); err != nil {
			e.t.Errorf("reply CloudEvent invalid: %v", err)
		}
		r.body = resp.Data()
		_ = json.Unmarshal(r.body, &r.reply)
	}
	return r
}

// TestFixturesEndToEnd sends every fixture in every envelope, on each
// deployment, and checks the outcome, the dedupe across envelopes and
// sources, what the emulator ends up holding (one issue and one page per
// rollback, linked both ways; the news about the rollback as one comment
// and a timeline row), and that a storm of redeliveries opens nothing
// more.
func TestFixturesEndToEnd(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		files := []string{
			"rollout-notification-webhook.json",
			"argo-events-webhook-event.json",
			"argo-events-sensor-event-view.json",
			"argo-events-resource-rollout-degraded.json",
			"rollout-aborted-object.json",
			"analysisrun-failed.json", // news: the analysis behind the abort
			"argocd-app-health-degraded.json",
			"argocd-app-resource.json",
			"workflow-failed.json",
		}
		keys := map[string]string{}   // fingerprint → Jira key
		replies := map[string]reply{} // Jira key → the reply that created it
		var news reply                // the reply to the analysis run's news
		for _, f := range files {
			for _, env := range envelopes {
				r := env.send(e, fixture(t, f))
				if r.status != http.StatusOK {
					t.Fatalf("%s via %s: status %d: %s", f, env.name, r.status, r.body)
				}
				rep := r.reply
				if rep.Status != "created" && rep.Status != "existing" {
					t.Fatalf("%s via %s: status %q (%s)", f, env.name, rep.Status, rep.Reason)
				}
				if rep.JiraKey == "" || rep.ConfluencePageID == "" || rep.JiraURL != e.emuTS.URL+"/browse/"+rep.JiraKey {
					t.Errorf("%s via %s: incomplete reply %+v", f, env.name, rep)
				}
				if f == "analysisrun-failed.json" {
					news = rep
				}
				if k, ok := keys[rep.Fingerprint]; ok {
					// Same incident, same page address (checkIncident checks the first).
					if k != rep.JiraKey || rep.Status != "existing" || rep.ConfluenceURL != replies[k].ConfluenceURL {
						t.Errorf("%s via %s: %s %s %s, want existing %s %s", f, env.name, rep.Status, rep.JiraKey, rep.ConfluenceURL, k, replies[k].ConfluenceURL)
					}
					continue
				}
				keys[rep.Fingerprint] = rep.JiraKey
				replies[rep.JiraKey] = rep
				if rep.Status != "created" {
					t.Errorf("%s via %s: first delivery status %q", f, env.name, rep.Status)
				}
			}
		}
		// Rollout checkout-api revision 7 (six shapes, and the two Argo CD
		// shapes of its application, degraded because it aborted), the
		// workflow.
		issues, pages := e.emu.Issues(), e.postmortems()
		if len(keys) != 2 || len(issues) != 2 || len(pages) != 2 {
			t.Fatalf("%d distinct incidents (%v), %d issues, %d postmortem pages; want 2 each", len(keys), keys, len(issues), len(pages))
		}
		for _, is := range issues {
			checkIncident(t, e, is, pages, replies[is.Key])
		}
		// The analysis run's news, in four envelopes: one comment and one
		// timeline row.
		if c := e.emu.Comments(news.JiraKey); len(c) != 1 {
			t.Errorf("%s has %d comments, want 1 for the news", news.JiraKey, len(c))
		}
		for _, p := range pages {
			if p.ID == news.ConfluencePageID && (p.Version < 2 || !strings.Contains(p.Body, "success-rate")) {
				t.Errorf("page %s: version %d, timeline row missing", p.ID, p.Version)
			}
		}
		checkStormDelta(t, e, storm(t, []*env{e}, 100), len(issues))
	})
}

// checkIncident checks one incident of TestFixturesEndToEnd: the issue's
// description, title and labels, its one remote link to its page, the
// page's link back, and that a person can open both.
func checkIncident(t *testing.T, e *env, is emulator.Issue, pages []emulator.Page, created reply) {
	t.Helper()
	e.d.checkDescription(t, is)
	// Titles fit the failure: a workflow's is no rollback.
	if !strings.HasPrefix(is.Summary, "[INCIDENT] Rollback detected: ") && !strings.HasPrefix(is.Summary, "[INCIDENT] Workflow failed: ") &&
		!strings.HasPrefix(is.Summary, "[INCIDENT] Degraded: ") && !strings.HasPrefix(is.Summary, "[INCIDENT] Sync failed: ") {
		t.Errorf("%s summary %q", is.Key, is.Summary)
	}
	fp := created.Fingerprint
	if !slices.Contains(is.Labels, "rollback") || !slices.Contains(is.Labels, "rbk-"+fp) {
		t.Errorf("%s labels %v, want rollback and rbk-%s", is.Key, is.Labels, fp)
	}
	i := slices.IndexFunc(pages, func(p emulator.Page) bool { return strings.HasPrefix(p.Title, "Postmortem "+is.Key+": ") })
	if i < 0 {
		t.Fatalf("no page titled for %s", is.Key)
	}
	page := pages[i]
	pageURL := e.d.pageURL(e.emuTS.URL, page)
	if created.ConfluencePageID != page.ID || created.ConfluenceURL != pageURL {
		t.Errorf("%s: reply names page %s at %s, want %s at %s", is.Key, created.ConfluencePageID, created.ConfluenceURL, page.ID, pageURL)
	}
	// Issue → page: one remote link, to the page.
	links := e.emu.RemoteLinks(is.Key)
	if len(links) != 1 {
		t.Fatalf("%s has %d remote links, want 1", is.Key, len(links))
	}
	if links[0].URL != pageURL || links[0].GlobalID != "rollback-incident:postmortem:"+fp {
		t.Errorf("%s remote link %+v, want url %s", is.Key, links[0], pageURL)
	}
	// Page → issue: a link.
	if !strings.Contains(page.Body, `href="`+e.emuTS.URL+`/browse/`+is.Key+`"`) {
		t.Errorf("page %s does not link %s", page.ID, is.Key)
	}
	// A person can open both.
	for _, u := range []string{e.emuTS.URL + "/browse/" + is.Key, pageURL} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %v %v", u, err, resp)
		} else {
			resp.Body.Close()
		}
	}
}

// TestIgnoredEvents: what is not a failure is answered 200 "ignored" with
// the reason, and opens nothing.
func TestIgnoredEvents(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		var resource map[string]json.RawMessage
		if err := json.Unmarshal(fixture(t, "argo-events-resource-rollout-degraded.json"), &resource); err != nil {
			t.Fatal(err)
		}
		bodies := map[string]string{
			"healthy notification":    `{"rolloutName":"checkout-api","namespace":"payments","phase":"Healthy","message":"","timestamp":"2025-06-12T14:30:00Z"}`,
			"ADD of healthy rollout":  `{"type":"ADD","body":` + string(resource["oldBody"]) + `,"oldBody":null,"group":"argoproj.io","version":"v1alpha1","resource":"rollouts"}`,
			"DELETE":                  `{"type":"DELETE","body":` + string(resource["body"]) + `,"oldBody":null}`,
			"argo cd healthy":         `{"source":"argocd","app":"checkout-api-prod","appNamespace":"argocd","healthStatus":"Healthy","operationPhase":"Succeeded"}`,
			"workflow still running":  `{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"w","namespace":"n"},"status":{"phase":"Running"}}`,
			"analysis run successful": `{"apiVersion":"argoproj.io/v1alpha1","kind":"AnalysisRun","metadata":{"name":"r","namespace":"n"},"status":{"phase":"Successful"}}`,
		}
		for name, body := range bodies {
			for _, env := range envelopes {
				r := env.send(e, []byte(body))
				if r.status != http.StatusOK || r.reply.Status != "ignored" || r.reply.Reason == "" {
					t.Errorf("%s via %s: %d %s", name, env.name, r.status, r.body)
				}
			}
		}
		if n := len(e.emu.Issues()); n != 0 {
			t.Errorf("%d issues opened for non-failures", n)
		}
	})
}

// TestCapturedSensorRequests replays, with their original headers, the
// requests that a real Argo Events v1.9.6 Sensor and notifications-engine
// v0.5.0 sent, and expects the right outcome for each.
func TestCapturedSensorRequests(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		key := ""
		for _, file := range []string{"captured/e2e-capture.jsonl", "captured/e2e-resource-capture.jsonl"} {
			f, err := os.Open(filepath.Join("../testdata/fixtures", file))
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			n := 0
			for sc.Scan() {
				n++
				var c struct {
					URL     string              `json:"url"`
					Headers map[string][]string `json:"headers"`
					Body    string              `json:"body"`
				}
				if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
					t.Fatal(err)
				}
				req, _ := http.NewRequest(http.MethodPost, e.url+c.URL, strings.NewReader(c.Body))
				for k, vs := range c.Headers {
					if k != "Content-Length" && k != "Accept-Encoding" {
						req.Header[k] = vs
					}
				}
				req.Header.Set("Authorization", "Bearer "+testToken)
				r := e.do(req)
				badInput := c.URL == "/t5-no-payload" || strings.HasPrefix(c.URL, "/fail-t") ||
					strings.Contains(c.Body, `"phase":["Degraded"]`) || strings.Contains(c.Body, "0ee4dc7e609b4bb0a558d119bb932c0b")
				ignored := c.URL == "/resource-all" && strings.Contains(c.Body, `"type":"ADD"`)
				switch {
				case badInput:
					if r.status != http.StatusBadRequest || r.reply.Status != "rejected" || r.reply.Reason == "" {
						t.Errorf("%s #%d %s: %d %s, want 400 with a reason", file, n, c.URL, r.status, r.body)
					}
				case ignored:
					if r.status != http.StatusOK || r.reply.Status != "ignored" {
						t.Errorf("%s #%d %s: %d %s, want ignored", file, n, c.URL, r.status, r.body)
					}
				default:
					if r.status != http.StatusOK || (r.reply.Status != "created" && r.reply.Status != "existing") {
						t.Errorf("%s #%d %s: %d %s, want an incident", file, n, c.URL, r.status, r.body)
						continue
					}
					if key == "" {
						key = r.reply.JiraKey
					} else if r.reply.JiraKey != key {
						t.Errorf("%s #%d %s: key %s, want %s", file, n, c.URL, r.reply.JiraKey, key)
					}
				}
			}
			f.Close()
		}
		if n := len(e.emu.Issues()); n != 1 {
			t.Errorf("%d issues, want 1 for the one rollback all captures describe", n)
		}
	})
}

// TestCurlExamples runs the reference curl script (three binary-mode and
// one structured-mode CloudEvent, and a plain JSON POST) against the
// function: every request is accepted, the plain POST included.
func TestCurlExamples(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for this test (.ci/run installs it): %v", tool, err)
		}
	}
	e := start(t, "AUTH_TOKEN=", "ALLOW_UNAUTHENTICATED=true")
	out, err := exec.Command("bash", "../testdata/fixtures/cloudevents-curl.sh", e.url+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	statuses := regexp.MustCompile(`(?m)^HTTP/1\.1 (\d+)`).FindAllStringSubmatch(string(out), -1)
	if len(statuses) != 5 {
		t.Fatalf("want 5 responses, got %d:\n%s", len(statuses), out)
	}
	for i, s := range statuses {
		if code, _ := strconv.Atoi(s[1]); code != http.StatusOK {
			t.Errorf("request %d: status %d\n%s", i+1, code, out)
		}
	}
	// All five are the checkout-api rollback (4 is the Argo CD application
	// it degraded).
	if n := len(e.emu.Issues()); n != 1 {
		t.Errorf("%d issues, want 1", n)
	}
	if !strings.Contains(string(out), "Ce-Type: dev.rollback-incident.result") {
		t.Errorf("CloudEvent requests did not get CloudEvent replies:\n%s", out)
	}
}

// TestConcurrentDeliveries: many deliveries of one rollback at once, in
// every envelope, open one issue and one page, and every reply names them.
func TestConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		body := []byte(`{"rolloutName":"storm-api","namespace":"payments","phase":"Degraded","message":"RolloutAborted: Rollout aborted update to revision 3: Step-based analysis phase error/failed","timestamp":"2025-06-12T14:03:28Z"}`)
		const n = 120
		var wg sync.WaitGroup
		results := make([]result, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				env := envelopes[i%len(envelopes)]
				// sendCE's sequence counter is not concurrency-safe; plain
				// envelopes are enough to race here.
				if i%len(envelopes) >= 2 {
					env = envelopes[i%2]
				}
				results[i] = env.send(e, body)
			}()
		}
		wg.Wait()
		created := 0
		for i, r := range results {
			if r.status != http.StatusOK || r.reply.JiraKey != results[0].reply.JiraKey || r.reply.ConfluencePageID != results[0].reply.ConfluencePageID {
				t.Errorf("delivery %d: %d %s", i, r.status, r.body)
			}
			if r.reply.Status == "created" {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%d replies say created, want 1", created)
		}
		if len(e.emu.Issues()) != 1 || len(e.postmortems()) != 1 || len(e.emu.RemoteLinks(results[0].reply.JiraKey)) != 1 {
			t.Errorf("emulator: %d issues, %d pages, %d links; want 1 each", len(e.emu.Issues()), len(e.postmortems()), len(e.emu.RemoteLinks(results[0].reply.JiraKey)))
		}
	})
}

// TestProjectAllowList: the payload's jiraProject is honoured only when
// allowed; anything else files in the default project.
func TestProjectAllowList(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		send := func(name, project, issueType string) reply {
			body := fmt.Sprintf(`{"rolloutName":%q,"namespace":"payments","phase":"Degraded","message":"m","jiraProject":%q,"jiraIssueType":%q}`, name, project, issueType)
			r := e.post([]byte(body), nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", name, r.status, r.body)
			}
			return r.reply
		}
		if k := send("a", "SRE", "Incident").JiraKey; !strings.HasPrefix(k, "SRE-") {
			t.Errorf("allowed project SRE: key %s", k)
		}
		if k := send("b", "SECRET", "Incident").JiraKey; !strings.HasPrefix(k, "OPS-") {
			t.Errorf("disallowed project SECRET: key %s, want OPS-", k)
		}
		if k := send("c", `OPS" OR project = SECRET`, "Bug").JiraKey; !strings.HasPrefix(k, "OPS-") {
			t.Errorf("injected project: key %s", k)
		}
		for _, is := range e.emu.Issues() {
			if is.IssueType != "Incident" {
				t.Errorf("%s has type %s; the payload may not pick types beyond JIRA_ALLOWED_ISSUE_TYPES", is.Key, is.IssueType)
			}
		}
	})
}
