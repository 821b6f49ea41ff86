// Package sensor simulates the Sensor-only approach of the source article
// ("How to Detect Argo Rollouts Rollbacks with Argo Events and
// Automatically Create Jira Incidents and Confluence Postmortems",
// /work/shared/reference/seeds/argo-rollouts-rollback-to-jira-confluence.txt):
// an Argo Events Sensor whose dependency filter passes Degraded rollouts and
// whose two HTTP triggers post every passing event straight to Jira
// (POST /rest/api/3/issue) and to Confluence v1 (POST /wiki/rest/api/content),
// with no lookup, no record and no link between the two.
//
// It reproduces Argo Events' own semantics where they decide what is sent
// (pkg/sensors/triggers/params.go, pkg/sensors/triggers/http/http.go):
//
//   - a data filter whose path does not exist in the event drops the event;
//   - the HTTP body is built only from `payload` (sjson.SetBytes of each
//     value at its `dest`, starting from an empty document); there is no
//     static body, so a `dest` of "body.fields.summary" creates a top-level
//     "body" key, and "content[0]" is a literal key, not an array index;
//   - the trigger-level `parameters` edit the trigger resource (the
//     HTTPTrigger object), not the payload;
//   - without `policy.status.allow`, any HTTP answer — a 400 included — is a
//     success, so `retryStrategy` repeats only transport errors;
//   - the two triggers of a Sensor run concurrently for each event.
//
// Two readings of the article are offered (Mode): the YAML exactly as
// printed, and the request bodies the article says it builds.
package sensor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"function/bench/harness"
)

// Mode is how the article's Sensor is read.
type Mode int

const (
	// AsIntended sends what the article describes: a Jira issue with
	// fields.project/issuetype from the event, summary
	// "[INCIDENT] Rollback detected: <rollout>" and an ADF description
	// holding the namespace (Step 3 and its ADF note); a Confluence v1 page
	// of Step 4's shape, titled "Postmortem — Rollback: <rollout> [<date>]",
	// in space INCIDENTS, with Step 4's storage body. For the resource
	// EventSource (Method B) its filter reads body.status.phase, the path
	// that exists on a Rollout object, and the rollout's name and namespace
	// come from body.metadata (project OPS, issue type Incident).
	AsIntended Mode = iota
	// AsPrinted sends exactly what the printed YAML makes Argo Events send:
	// payload dests under "body." (so Jira gets {"body":{"fields":…}} and
	// Confluence {"body":{"title":…}}, both refused with 400), and the
	// filter body.phase, which a Rollout object (Method B) does not have.
	AsPrinted
)

func (m Mode) String() string {
	if m == AsPrinted {
		return "as printed"
	}
	return "as intended"
}

// Options configure a Sensor.
type Options struct {
	JiraURL       string // https://$(JIRA_DOMAIN)
	ConfluenceURL string // https://$(CONFLUENCE_DOMAIN) (the trigger appends /wiki/rest/api/content)
	Email, Token  string // the atlassian-credentials basic-auth secret
	Mode          Mode
	Space         string // Step 4's space key; default INCIDENTS
	ParentID      string // Step 4's ancestors[0].id; "" leaves ancestors out
	Client        *http.Client
}

// Call is one HTTP call a trigger made.
type Call struct {
	Trigger string // create-jira-incident or create-confluence-postmortem
	Route   string // "POST /rest/api/3/issue", "POST /wiki/rest/api/content"
	Event   string
	Status  int // 0: transport error
	Body    string
}

// Sensor is the simulated Sensor. It is safe for concurrent use.
type Sensor struct {
	o    Options
	auth string

	mu    sync.Mutex
	calls []Call
	fired int
}

// New returns a Sensor.
func New(o Options) *Sensor {
	if o.Space == "" {
		o.Space = "INCIDENTS"
	}
	if o.Client == nil {
		o.Client = harness.NewClient(64)
	}
	return &Sensor{o: o, auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(o.Email+":"+o.Token))}
}

// Calls returns the calls made so far.
func (s *Sensor) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Fired is the number of events that passed the dependency filter.
func (s *Sensor) Fired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired
}

// Summary counts the calls: total, issues created (Jira 201), pages
// created (Confluence 200), and refused calls (4xx).
type Summary struct {
	Calls, Issues, Pages, Refused, TransportErrors int
	// DuplicateTitle counts Confluence 400s for a title already taken.
	DuplicateTitle int
}

// Summarize counts calls.
func Summarize(calls []Call) Summary {
	var sum Summary
	for _, c := range calls {
		sum.Calls++
		switch {
		case c.Status == 0:
			sum.TransportErrors++
		case c.Trigger == jiraTrigger && c.Status == http.StatusCreated:
			sum.Issues++
		case c.Trigger == confluenceTrigger && c.Status == http.StatusOK:
			sum.Pages++
		case c.Status >= 400 && c.Status < 500:
			sum.Refused++
			if c.Trigger == confluenceTrigger && strings.Contains(strings.ToLower(c.Body), "title already exists") {
				sum.DuplicateTitle++
			}
		}
	}
	return sum
}

const (
	jiraTrigger       = "create-jira-incident"
	confluenceTrigger = "create-confluence-postmortem"
	// JiraRoute and ConfluenceRoute are the two routes the Sensor calls.
	JiraRoute       = "POST /rest/api/3/issue"
	ConfluenceRoute = "POST /wiki/rest/api/content"
)

// degraded is the dependency filter's value; Argo Events compares a string
// filter value as a regular expression.
var degraded = regexp.MustCompile("Degraded")

// Handle processes one EventSource event: the dependency's data filter,
// then, if it passes, both triggers at once. It reports whether the event
// fired the triggers.
func (s *Sensor) Handle(ctx context.Context, ev harness.Event) (bool, error) {
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		return false, err
	}
	filterPath := "body.phase"
	if ev.Source == "resource" && s.o.Mode == AsIntended {
		filterPath = "body.status.phase"
	}
	phase, ok := lookup(data, filterPath).(string)
	if !ok || !degraded.MatchString(phase) {
		return false, nil
	}
	s.mu.Lock()
	s.fired++
	s.mu.Unlock()

	jiraBody, confBody, err := s.bodies(ev, data)
	if err != nil {
		return true, err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.execute(ctx, ev, jiraTrigger, JiraRoute, s.o.JiraURL+"/rest/api/3/issue", jiraBody)
	}()
	go func() {
		defer wg.Done()
		s.execute(ctx, ev, confluenceTrigger, ConfluenceRoute, s.o.ConfluenceURL+"/wiki/rest/api/content", confBody)
	}()
	wg.Wait()
	return true, nil
}

// bodies builds the two request bodies for ev.
func (s *Sensor) bodies(ev harness.Event, data map[string]any) (jira, conf []byte, err error) {
	str := func(path string) string { v, _ := lookup(data, path).(string); return v }
	if s.o.Mode == AsPrinted {
		// payload: src.dataKey → dest, applied with sjson on an empty
		// document. The dataKeys exist in a notification (Method A); the
		// printed filter never lets a resource event (Method B) through.
		j := map[string]any{}
		sjsonSet(j, "body.fields.project.key", str("body.jiraProject"))
		sjsonSet(j, "body.fields.issuetype.name", str("body.jiraIssueType"))
		sjsonSet(j, "body.fields.summary", str("body.rolloutName"))
		sjsonSet(j, "body.fields.description.content[0].content[0].text", str("body.namespace"))
		c := map[string]any{}
		sjsonSet(c, "body.title", str("body.rolloutName"))
		jira, _ = json.Marshal(j)
		conf, _ = json.Marshal(c)
		return jira, conf, nil
	}

	var name, namespace, project, issueType, timestamp string
	if ev.Source == "resource" {
		name, namespace = str("body.metadata.name"), str("body.metadata.namespace")
		project, issueType = "OPS", "Incident"
		timestamp = ev.Time.UTC().Format(time.RFC3339)
	} else {
		name, namespace = str("body.rolloutName"), str("body.namespace")
		project, issueType = str("body.jiraProject"), str("body.jiraIssueType")
		timestamp = str("body.timestamp")
	}
	date := timestamp
	if t, err := time.Parse(time.RFC3339, timestamp); err == nil {
		date = t.UTC().Format("2006-01-02")
	}
	jira, err = json.Marshal(map[string]any{"fields": map[string]any{
		"project":   map[string]any{"key": project},
		"issuetype": map[string]any{"name": issueType},
		"summary":   "[INCIDENT] Rollback detected: " + name,
		"description": map[string]any{"type": "doc", "version": 1, "content": []any{
			map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": namespace}}},
		}},
	}})
	if err != nil {
		return nil, nil, err
	}
	e := html.EscapeString
	// Step 4's storage body; the Jira key is not known to this trigger (the
	// two triggers run side by side), so {{jiraIssueKey}} stays empty.
	storage := "<h2>Incident Summary</h2><table><tr><th>Field</th><th>Details</th></tr>" +
		"<tr><td>Service</td><td>" + e(name) + "</td></tr><tr><td>Namespace</td><td>" + e(namespace) + "</td></tr>" +
		"<tr><td>Time of Occurrence</td><td>" + e(timestamp) + "</td></tr><tr><td>Related Jira</td><td></td></tr></table>" +
		"<h2>Timeline</h2><p>(To be filled in)</p><h2>Root Cause</h2><p>(To be filled in)</p>" +
		"<h2>Action Items to Prevent Recurrence</h2><p>(To be filled in)</p>"
	page := map[string]any{
		"type":  "page",
		"title": "Postmortem — Rollback: " + name + " [" + date + "]",
		"space": map[string]any{"key": s.o.Space},
		"body":  map[string]any{"storage": map[string]any{"value": storage, "representation": "storage"}},
	}
	if s.o.ParentID != "" {
		page["ancestors"] = []any{map[string]any{"id": s.o.ParentID}}
	}
	conf, err = json.Marshal(page)
	return jira, conf, err
}

// execute is the HTTP trigger with the article's retryStrategy (steps 3,
// duration 10s): only an error from the HTTP client is retried.
func (s *Sensor) execute(ctx context.Context, ev harness.Event, trigger, route, url string, body []byte) {
	for step := 0; step < 3; step++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", s.auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.o.Client.Do(req)
		c := Call{Trigger: trigger, Route: route, Event: ev.Name}
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c.Status, c.Body = resp.StatusCode, string(b)
		}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		s.mu.Unlock()
		if err == nil {
			return // no policy: any answer is a success
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
}

// lookup reads a dotted path (gjson's plain object syntax) from v.
func lookup(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = m[p]; !ok {
			return nil
		}
	}
	return v
}

// sjsonSet sets value at a dotted path, creating objects on the way, as
// sjson.SetBytes does on a document that does not have the path yet. Only
// the path syntax the article uses is handled: "content[0]" has no meaning
// to sjson and is a plain key.
func sjsonSet(doc map[string]any, path string, value any) {
	parts := strings.Split(path, ".")
	m := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = value
}

// String describes a Summary.
func (s Summary) String() string {
	return fmt.Sprintf("%d calls, %d issues, %d pages, %d refused (%d duplicate page title)", s.Calls, s.Issues, s.Pages, s.Refused, s.DuplicateTitle)
}
