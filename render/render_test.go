package render

import (
	"bytes"
	"cmp"
	"encoding/json"
	"encoding/xml"
	"flag"
	"html"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"function/inbound"
	"function/incident"
	"function/internal/adfschema"
	"function/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixtureFiles are the failures of every kind, each as its source sends it.
var fixtureFiles = []string{
	"rollout-notification-webhook.json",
	"argo-events-resource-rollout-degraded.json",
	"analysisrun-failed.json",
	"argocd-app-health-degraded.json",
	"argocd-app-resource.json",
	"argocd-app-sync-failed.json",
	"workflow-failed.json",
}

func decode(t *testing.T, name string, meta inbound.Meta) inbound.Decision {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../testdata/fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := inbound.NewDecoder("prod-eu-1", inbound.DefaultLimits()).Decode(b, meta)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return dec
}

func decodeFixture(t *testing.T, name string) *incident.Incident {
	t.Helper()
	dec := decode(t, name, inbound.Meta{})
	if dec.Incident == nil {
		t.Fatalf("decode %s: ignored: %s", name, dec.Ignored)
	}
	return dec.Incident
}

func newRenderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := New(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var opened = time.Date(2025, 6, 12, 14, 3, 40, 0, time.UTC)

// goldenContext is what the opener passes for a new incident: its issue,
// when it was opened (14 s after the failure), the configured owner map's
// answer, the default priority, the UI base URLs and a configured link,
// and the one timeline entry of the event.
func goldenContext(t *testing.T, in *incident.Incident) Context {
	t.Helper()
	links, err := ParseLinks("Grafana=https://grafana.example.com/d/rollouts?var-namespace={{.Namespace}}&var-name={{.Name}}")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := RenderLinks(in, links)
	if err != nil {
		t.Fatal(err)
	}
	c := Context{
		JiraKey: "OPS-1", JiraURL: "https://example.atlassian.net/browse/OPS-1",
		PageURL:              "https://example.atlassian.net/wiki/spaces/INCIDENTS/pages/98307",
		Opened:               opened,
		Owner:                cmp.Or(in.Owner, "group:default/payments"),
		Priority:             "High",
		ArgoCDURL:            "https://argocd.example.com",
		RolloutsDashboardURL: "https://rollouts.example.com/rollouts",
		WorkflowsURL:         "https://workflows.example.com",
		Links:                rendered,
	}
	if !in.Time.IsZero() {
		c.Opened = in.Time.Add(14 * time.Second)
	}
	c.Timeline = []TimelineRow{{At: firstTime(in.Time, c.Opened), Text: TimelineEntry(in)}}
	return c
}

type rendered struct {
	adf     []byte
	wiki    string
	page    string
	summary string
}

func renderAll(t *testing.T, r *Renderer, in *incident.Incident, c Context) rendered {
	t.Helper()
	doc, err := json.MarshalIndent(Description(in, c), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := adfschema.ValidateJSON(doc); err != nil {
		t.Errorf("description is not valid ADF: %v", err)
	}
	page, err := r.Page(in, c)
	if err != nil {
		t.Fatal(err)
	}
	wellFormed(t, page)
	summary, err := r.Summary(in)
	if err != nil {
		t.Fatal(err)
	}
	return rendered{adf: doc, wiki: WikiDescription(in, c), page: page, summary: summary}
}

// checkDocuments asserts what every rendered incident must satisfy: the
// facts in both documents, no empty cell outside the action items, no
// placeholder text, the postmortem template's sections, no stray lines.
func checkDocuments(t *testing.T, in *incident.Incident, c Context, got rendered) {
	t.Helper()
	for _, f := range Facts(in) {
		if !bytes.Contains(got.adf, []byte(jsonText(f.Value))) {
			t.Errorf("description lacks %s %q", f.Name, f.Value)
		}
		if !strings.Contains(got.wiki, WikiText(f.Value)) {
			t.Errorf("wiki description lacks %s %q", f.Name, f.Value)
		}
		if !strings.Contains(got.page, xmlText(f.Value)) {
			t.Errorf("page lacks %s %q", f.Name, f.Value)
		}
	}
	for _, bad := range []string{"<no value>", "null", "<nil>", "Fingerprint", "%!"} {
		if strings.Contains(got.page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	for _, bad := range []string{"<no value>", "<nil>", "%!"} {
		if strings.Contains(got.wiki, bad) || bytes.Contains(got.adf, []byte(bad)) {
			t.Errorf("description contains %q", bad)
		}
	}
	emptyCells(t, got.page)
	if n := strings.Count(got.page, ">"+c.JiraKey+"<"); c.JiraKey != "" && n != 1 {
		t.Errorf("the Jira key shows %d times on the page, want once", n)
	}
	var last int
	for _, h := range []string{"Incident summary", "Leadup", "Fault", "Impact", "Detection", "Response", "Recovery", "Timeline", "Root cause", "Five whys", "Related records", "Lessons learned", "Action items"} {
		i := strings.Index(got.page, ">"+h+"</h")
		if i < last {
			t.Errorf("section %q missing or out of order", h)
		}
		last = i
	}
	if in.Kind == incident.KindWorkflow {
		short := in.Revision[:8]
		for _, doc := range []string{got.page, got.wiki, string(got.adf), got.summary} {
			if strings.Contains(doc, "revision "+short) || strings.Contains(doc, "Revision|"+in.Revision) {
				t.Errorf("a workflow uid shown as a revision")
			}
		}
	}
	if len(in.Analysis) == 0 && (strings.Contains(got.page, "Failed analysis") || strings.Contains(got.page, "failed analysis")) {
		t.Error("the page refers to a failed analysis it does not have")
	}
}

// emptyCells fails on an empty table cell of the page, except in the
// action items table, whose first row is for people to fill.
func emptyCells(t *testing.T, page string) {
	t.Helper()
	body := page
	if i := strings.Index(body, ">Action items</h2>"); i >= 0 {
		body = body[:i]
	}
	for _, empty := range []string{"<td></td>", "<th></th>", "<td> </td>", "<td><code></code></td>"} {
		if strings.Contains(body, empty) {
			t.Errorf("page has an empty cell %s", empty)
		}
	}
}

// TestGolden renders every kind's first event as the opener does, and
// compares with the reviewed golden files.
func TestGolden(t *testing.T) {
	r := newRenderer(t)
	for _, name := range fixtureFiles {
		t.Run(name, func(t *testing.T) {
			in := decodeFixture(t, name)
			c := goldenContext(t, in)
			got := renderAll(t, r, in, c)
			base := strings.TrimSuffix(name, ".json")
			golden(t, base+".description.adf.json", got.adf)
			golden(t, base+".page.storage.xml", []byte(got.page))
			golden(t, base+".description.wiki", []byte(got.wiki))
			golden(t, base+".summary.txt", []byte(got.summary+"\n"+PageTitle(in, "OPS-1")+"\n"))
			checkDocuments(t, in, c, got)
			if strings.Count(got.page, "Not recovered yet") != 1 || !strings.Contains(got.page, ">OPEN<") || strings.Contains(got.page, "Time to recover") {
				t.Error("an open incident does not say once that it has not recovered")
			}
		})
	}
}

// TestTitles: each kind has its own title, in the words of its failure.
func TestTitles(t *testing.T) {
	r := newRenderer(t)
	for name, want := range map[string][2]string{
		"rollout-notification-webhook.json":          {"[INCIDENT] Rollback detected: payments/checkout-api", "Postmortem OPS-1: Rollout payments/checkout-api revision 7"},
		"argo-events-resource-rollout-degraded.json": {"[INCIDENT] Rollback detected: payments/checkout-api", "Postmortem OPS-1: Rollout payments/checkout-api revision 7"},
		"analysisrun-failed.json":                    {"[INCIDENT] Analysis failed: payments/checkout-api", "Postmortem OPS-1: Rollout payments/checkout-api revision 7"},
		"argocd-app-sync-failed.json":                {"[INCIDENT] Sync failed: argocd/checkout-api-prod", "Postmortem OPS-1: Application argocd/checkout-api-prod sync revision 3c9d0e7f"},
		"workflow-failed.json":                       {"[INCIDENT] Workflow failed: payments/db-migrate-x7k2p", "Postmortem OPS-1: Workflow payments/db-migrate-x7k2p"},
	} {
		in := decodeFixture(t, name)
		s, err := r.Summary(in)
		if err != nil {
			t.Fatal(err)
		}
		if s != want[0] || PageTitle(in, "OPS-1") != want[1] {
			t.Errorf("%s: %q / %q, want %q / %q", name, s, PageTitle(in, "OPS-1"), want[0], want[1])
		}
	}
	degraded := &incident.Incident{Kind: incident.KindApplication, Namespace: "argocd", Name: "shop", Phase: "Degraded", Reason: "HealthDegraded"}
	manual := &incident.Incident{Kind: incident.KindRollout, Namespace: "payments", Name: "checkout-api", Reason: incident.ReasonManualRollback, RevertedFrom: "7", RevertedTo: "5"}
	for in, want := range map[*incident.Incident]string{
		degraded: "[INCIDENT] Degraded: argocd/shop",
		manual:   "[INCIDENT] Manual rollback: payments/checkout-api reverted from revision 7 to revision 5",
	} {
		if s, _ := r.Summary(in); s != want {
			t.Errorf("summary %q, want %q", s, want)
		}
	}
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	// html/template escapes quotes and plus signs as numeric references.
	out := strings.NewReplacer("&#34;", "&#34;", `"`, "&#34;", "+", "&#43;", "'", "&#39;", "&#xA;", "\n", "&#x9;", "\t").Replace(b.String())
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./render -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test ./render -update and review the diff\n--- got ---\n%s", name, got)
	}
}

// wellFormed parses a storage-format fragment as Confluence does: XML with
// the ac: and ri: namespaces, and rejects script elements.
func wellFormed(t *testing.T, fragment string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(`<root xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier">` + fragment + `</root>`))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("storage body is not well-formed XML: %v\n%s", err, fragment)
		}
		if se, ok := tok.(xml.StartElement); ok && strings.EqualFold(se.Name.Local, "script") {
			t.Fatalf("storage body contains a script element:\n%s", fragment)
		}
	}
}

// TestHostileText puts break-out attempts into every string field and
// checks that each renderer keeps them inert.
func TestHostileText(t *testing.T) {
	r := newRenderer(t)
	hostile := []string{
		`</td><script>alert(1)</script>`,
		`]]><ac:structured-macro ac:name="html"><ac:plain-text-body><![CDATA[<img src=x onerror=alert(1)>]]></ac:plain-text-body></ac:structured-macro>`,
		`" OR project = SECRET OR labels = "x`,
		`{"type":"doc","version":1,"content":[]}`,
		"&amp; &lt; &#0; \u00e9\u4e2d\U0001F600",
	}
	for _, h := range hostile {
		in := &incident.Incident{
			Cluster: h, Kind: incident.KindRollout, Namespace: "n", Name: "x", Revision: h, PodHash: h,
			Phase: h, Reason: h, Message: h, Strategy: h, Step: h, FailedNode: h, Source: h,
			Images:    []incident.Image{{Container: h, Image: h}},
			Analysis:  []incident.Analysis{{Run: h, Metric: h, Phase: h, Message: h, Provider: h, FailureLimit: h, Values: []string{h}}},
			Resources: []incident.Resource{{Kind: h, Name: h, Health: h, Message: h}},
			Links:     []incident.Link{{Title: h, URL: "https://example.com/?q=" + h}},
		}
		page, err := r.Page(in, PageContext{JiraKey: "OPS-1", JiraURL: "https://example.atlassian.net/browse/OPS-1", Opened: opened})
		if err != nil {
			t.Fatal(err)
		}
		wellFormed(t, page)
		for _, forbidden := range []string{"<script", "<img", `ac:name="html"`, "<![CDATA["} {
			if strings.Contains(page, forbidden) {
				t.Errorf("page contains %q for input %q", forbidden, h)
			}
		}
		doc := Description(in, Related{PreviousKey: h, PreviousURL: "https://x.example/browse/OPS-0"})
		b, _ := json.Marshal(doc)
		if err := adfschema.ValidateJSON(b); err != nil {
			t.Errorf("description invalid for %q: %v", h, err)
		}
		// The hostile text survives only inside text nodes.
		var walk func(n any)
		walk = func(n any) {
			switch v := n.(type) {
			case map[string]any:
				for k, x := range v {
					if s, ok := x.(string); ok && k != "text" && k != "href" && strings.Contains(s, "alert") {
						t.Errorf("hostile text outside a text node: %s=%q", k, s)
					}
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		var generic any
		_ = json.Unmarshal(b, &generic)
		walk(generic)
		summary, err := r.Summary(in)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(summary, "\n\r") || len([]rune(summary)) > 255 {
			t.Errorf("summary not one short line: %q", summary)
		}
	}
}

func TestSummaryClippedAndOneLine(t *testing.T) {
	r := newRenderer(t)
	in := &incident.Incident{Kind: incident.KindRollout, Namespace: "n", Name: strings.Repeat("a", 300) + "\nb"}
	s, err := r.Summary(in)
	if err != nil {
		t.Fatal(err)
	}
	if len([]rune(s)) != 255 || strings.Contains(s, "\n") {
		t.Errorf("summary = %q (%d runes)", s, len([]rune(s)))
	}
	title := PageTitle(in, "OPS-1")
	if len([]rune(title)) > 255 || !strings.HasPrefix(title, "Postmortem OPS-1: ") {
		t.Errorf("title = %q", title)
	}
}

func TestTemplateErrorsAtStart(t *testing.T) {
	tests := map[string]fstest.MapFS{
		"syntax": {
			SummaryTemplate: {Data: []byte("{{.Name")},
			PageTemplate:    {Data: []byte("<p/>")},
		},
		"unknown field": {
			SummaryTemplate: {Data: []byte("{{.Name}}")},
			PageTemplate:    {Data: []byte("<p>{{.NoSuchField}}</p>")},
		},
		"missing file": {
			SummaryTemplate: {Data: []byte("{{.Name}}")},
		},
	}
	for name, fsys := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(fsys); err == nil {
				t.Error("want an error at start")
			}
		})
	}
}

// TestAddTimelineRowKeepsOrder: pages opened by earlier versions have no
// generated sections; their timeline still gets rows, in time order.
func TestAddTimelineRowKeepsOrder(t *testing.T) {
	page := `<h2>Summary</h2><p>x</p>
<h2>Timeline</h2>
<table><tbody>
<tr><th>Time (UTC)</th><th>Event</th></tr>
<tr><td>2025-06-12 14:03:28 UTC</td><td>Rollout payments/checkout-api is Degraded (RolloutAborted)</td></tr>
<tr><td>2025-06-12 14:03:40 UTC</td><td>Incident OPS-1 and this postmortem opened</td></tr>
</tbody></table>
<h2>Detection</h2>`
	page = AddTimelineRow(page, time.Date(2025, 6, 12, 14, 3, 26, 0, time.UTC), "analysis <failed>")
	page = AddTimelineRow(page, time.Date(2025, 6, 12, 15, 0, 0, 0, time.UTC), "healthy again")
	wellFormed(t, page)
	a := strings.Index(page, "analysis &lt;failed&gt;")
	b := strings.Index(page, "is Degraded (RolloutAborted)")
	c := strings.Index(page, "and this postmortem opened")
	d := strings.Index(page, "healthy again")
	if a < 0 || !(a < b && b < c && c < d) || d > strings.Index(page, "Detection") {
		t.Errorf("rows out of order: %d %d %d %d", a, b, c, d)
	}
	// A page whose timeline a person removed still gets the entry.
	if p := AddTimelineRow("<p>x</p>", opened, "late"); !strings.Contains(p, "late") {
		t.Error("entry lost")
	}
}

func TestStableToFailedImages(t *testing.T) {
	body := `{"rolloutName":"a","namespace":"b","phase":"Degraded","message":"m","images":[{"container":"app","image":"reg/app:1.42.0"}],"stableImages":[{"container":"app","image":"reg/app:1.41.3"}],"revision":"9","podHash":"abc","abortedAt":"2026-01-01T00:00:00Z","strategy":"canary","step":"3/5"}`
	dec, err := inbound.NewDecoder("c", inbound.DefaultLimits()).Decode([]byte(body), inbound.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	facts := map[string]string{}
	for _, f := range Facts(dec.Incident) {
		facts[f.Name] = f.Value
	}
	if facts["Images (stable → failed)"] != "app: reg/app:1.41.3 → app: reg/app:1.42.0" || facts["Revision"] != "9" ||
		facts["Pod template hash"] != "abc" || facts["Strategy"] != "canary" || facts["Step"] != "3/5" {
		t.Errorf("facts %v", facts)
	}
}

// sequence plays one rollback as it really arrives, the way the opener
// handles it: the first event opens the incident, each later one merges
// into it and adds its timeline entry once (by news hash), the healthy
// Rollout at the next revision recovers it.
type sequence struct {
	in       *incident.Incident
	c        Context
	news     map[string]bool
	renderer *Renderer
}

func newSequence(t *testing.T, r *Renderer, first *incident.Incident) *sequence {
	s := &sequence{in: first, renderer: r, news: map[string]bool{first.NewsHash(): true}}
	s.c = Context{
		JiraKey: "OPS-42", JiraURL: "https://example.atlassian.net/browse/OPS-42",
		PageURL:     "https://example.atlassian.net/wiki/spaces/INCIDENTS/pages/98307",
		Opened:      time.Date(2025, 6, 12, 14, 3, 40, 0, time.UTC),
		PreviousKey: "OPS-17", PreviousURL: "https://example.atlassian.net/browse/OPS-17",
		Owner: "group:default/payments", Priority: "High",
		ArgoCDURL: "https://argocd.example.com", RolloutsDashboardURL: "https://rollouts.example.com/rollouts",
		Timeline: []TimelineRow{{At: firstTime(first.Time, time.Date(2025, 6, 12, 14, 3, 40, 0, time.UTC)), Text: TimelineEntry(first)}},
	}
	links, err := ParseLinks("Grafana=https://grafana.example.com/d/rollouts?var-namespace={{.Namespace}}&var-name={{.Name}}")
	if err != nil {
		t.Fatal(err)
	}
	if s.c.Links, err = RenderLinks(first, links); err != nil {
		t.Fatal(err)
	}
	return s
}

// event merges a later failure event.
func (s *sequence) event(later *incident.Incident, received time.Time) {
	if h := later.NewsHash(); !s.news[h] {
		s.news[h] = true
		s.c.Timeline = append(s.c.Timeline, TimelineRow{At: firstTime(later.Time, received), Text: TimelineEntry(later)})
	}
	incident.Merge(s.in, later)
}

func (s *sequence) page(t *testing.T) string {
	t.Helper()
	p, err := s.renderer.Page(s.in, s.c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSequenceGolden: the thin notification, the resource UPDATE, the
// AnalysisRun, Argo CD's health-degraded notification, then the Rollout
// Healthy at the next revision. The final issue and page show every fact
// of every event, the next steps, the recovery and the three durations;
// the page keeps what a person wrote meanwhile.
func TestSequenceGolden(t *testing.T) {
	r := newRenderer(t)
	thin := decodeFixture(t, "rollout-notification-webhook.json")
	seq := newSequence(t, r, thin)
	firstPage := seq.page(t)
	firstHash := DescriptionHash(Description(seq.in, seq.c))

	// A person writes in the page before the other events arrive: in a
	// section of theirs, and (against the intro's advice) in a generated one.
	edited := strings.Replace(firstPage, "<p><em>To be filled in: who and what was affected (users, requests, other services), and how it was measured.</em></p>",
		"<p>Checkout error rate peaked at 9 % for EU customers.</p>", 1)
	edited = strings.Replace(edited, "<h3>Next steps</h3>", "<h3>Next steps</h3><p>typed into a generated section</p>", 1)
	if edited == firstPage || !strings.Contains(edited, "typed into") {
		t.Fatal("the edit did not apply: the page's structure changed")
	}

	received := time.Date(2025, 6, 12, 14, 3, 50, 0, time.UTC)
	seq.event(decodeFixture(t, "argo-events-resource-rollout-degraded.json"), received)
	seq.event(decodeFixture(t, "analysisrun-failed.json"), received)
	argocd := decode(t, "argocd-app-health-degraded.json", inbound.Meta{Time: time.Date(2025, 6, 12, 14, 3, 31, 0, time.UTC)}).Incident
	seq.event(argocd, received)
	healthy := decode(t, "argo-events-resource-rollout-healthy.json", inbound.Meta{})
	if healthy.Recovery == nil || !seq.in.Recover(healthy.Recovery) {
		t.Fatalf("the healthy Rollout does not recover the incident: %+v", healthy)
	}
	if seq.in.Recover(healthy.Recovery) {
		t.Error("the same recovery twice is news")
	}
	seq.c.Timeline = append(seq.c.Timeline, TimelineRow{At: healthy.Recovery.At, Text: RecoveryEntry(healthy.Recovery)})

	got := renderAll(t, r, seq.in, seq.c)
	fresh := got.page
	got.page = RefreshPage(edited, fresh)
	wellFormed(t, got.page)
	golden(t, "sequence.description.adf.json", got.adf)
	golden(t, "sequence.description.wiki", []byte(got.wiki))
	golden(t, "sequence.page.storage.xml", []byte(got.page))
	golden(t, "sequence.summary.txt", []byte(got.summary+"\n"+PageTitle(seq.in, "OPS-42")+"\n"))
	checkDocuments(t, seq.in, seq.c, got)

	if !strings.Contains(got.page, "Checkout error rate peaked at 9 % for EU customers.") {
		t.Error("the person's impact text is lost")
	}
	if strings.Contains(got.page, "typed into a generated section") {
		t.Error("text typed into a generated section survived its refresh")
	}
	if RefreshPage(firstPage, fresh) != fresh {
		t.Error("refreshing an unedited page does not give the fresh page")
	}
	if RefreshPage(got.page, fresh) != got.page {
		t.Error("refreshing twice changes the page")
	}
	if DescriptionHash(Description(seq.in, seq.c)) == firstHash {
		t.Error("the description's hash did not change with the facts")
	}

	// Every fact of every event, in the issue (both formats) and the page.
	wiki, adfText, page := got.wiki, string(got.adf), html.UnescapeString(got.page)
	for what, s := range map[string]string{
		"thin notification's reporter":          "Argo Rollouts notification",
		"resource event's reporter":             "Argo Events resource event (UPDATE Rollout)",
		"stable ReplicaSet (resource)":          "5d8f9c6b7",
		"image (resource)":                      "registry.example.com/payments/checkout-api:1.42.0",
		"strategy (resource)":                   "canary",
		"analysis run (AnalysisRun)":            "checkout-api-6f9c7b8d5-7-2",
		"provider (AnalysisRun)":                "prometheus",
		"last value (AnalysisRun)":              "[0.8512]",
		"step (AnalysisRun)":                    "step 2",
		"Argo CD application":                   "argocd/checkout-api-prod",
		"Argo CD sync revision":                 "9f3c2e1a7b4d5c6e8f90a1b2c3d4e5f6a7b8c9d0",
		"repository":                            "https://git.example.com/platform/deployments.git",
		"Argo CD link":                          "https://argocd.example.com/applications/checkout-api-prod",
		"dashboard link":                        "https://rollouts.example.com/rollouts/rollout/payments/checkout-api",
		"configured link":                       "https://grafana.example.com/d/rollouts?var-namespace=payments",
		"command":                               "kubectl argo rollouts get rollout checkout-api -n payments",
		"analysis command":                      "kubectl get analysisrun checkout-api-6f9c7b8d5-7-2 -n payments -o yaml",
		"Argo CD command":                       "argocd app history checkout-api-prod",
		"recovery":                              "Rollout payments/checkout-api Healthy again at revision 8",
		"recovery time":                         "2025-06-12 14:21:04 UTC",
		"time to detect (14:03:26 → :40)":       "14s",
		"time to recover (14:03:26 → 14:21:04)": "17m 38s",
		"duration (14:03:40 → 14:21:04)":        "17m 24s",
		"previous incident":                     "OPS-17",
		"owner":                                 "group:default/payments",
	} {
		if !strings.Contains(wiki, WikiText(s)) && !strings.Contains(wiki, s) {
			t.Errorf("wiki description lacks the %s %q", what, s)
		}
		if !strings.Contains(adfText, jsonText(s)) {
			t.Errorf("ADF description lacks the %s %q", what, s)
		}
		if !strings.Contains(page, s) {
			t.Errorf("page lacks the %s %q", what, s)
		}
	}
	// One row per failed metric, however many events named it.
	if n := strings.Count(got.page, "<td>success-rate"); n != 1 {
		t.Errorf("%d analysis rows for success-rate, want 1", n)
	}
	// The timeline: each news once, in time order, the recovery last.
	rows := Timeline(seq.in, seq.c)
	var texts []string
	for _, r := range rows {
		texts = append(texts, r.Text)
	}
	// The notification, the resource UPDATE and Argo CD's notification say
	// the same (the abort): one row.
	if len(rows) != 4 || !strings.HasPrefix(rows[0].Text, "AnalysisRun checkout-api-6f9c7b8d5-7-2 of revision 7 failed") ||
		!strings.HasPrefix(rows[1].Text, "Argo Rollouts aborted the update") || !strings.HasPrefix(rows[3].Text, "Rollout payments/checkout-api Healthy again") {
		t.Errorf("timeline:\n%s", strings.Join(texts, "\n"))
	}
	if !strings.Contains(got.page, ">RECOVERED<") || strings.Contains(got.page, "Not recovered yet") {
		t.Error("the page does not say the incident recovered")
	}
}

// TestRefreshPage covers what the sequence does not: a deleted section
// stays deleted, anchors Confluence rewrote are still found, a page from an
// earlier version is left alone.
func TestRefreshPage(t *testing.T) {
	r := newRenderer(t)
	in := decodeFixture(t, "argo-events-resource-rollout-degraded.json")
	c := goldenContext(t, in)
	old, err := r.Page(in, c)
	if err != nil {
		t.Fatal(err)
	}
	c2 := c
	c2.Recovered = c.Opened.Add(10 * time.Minute)
	fresh, err := r.Page(in, c2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"summary", "leadup", "fault", "detection", "next-steps", "recovery", "timeline", "related"}; !slices.Equal(GeneratedSections(fresh), want) {
		t.Errorf("sections %v, want %v", GeneratedSections(fresh), want)
	}

	t.Run("a section deleted with its anchors stays deleted", func(t *testing.T) {
		secs := sections(old)
		var tl section
		for _, s := range secs {
			if s.name == "timeline" {
				tl = s
			}
		}
		page := old[:tl.start] + "<p>We keep our own timeline in the incident channel.</p>" + old[tl.end:]
		got := RefreshPage(page, fresh)
		if slices.Contains(GeneratedSections(got), "timeline") || !strings.Contains(got, "our own timeline") {
			t.Error("the deleted timeline came back")
		}
		if !strings.Contains(got, ">RECOVERED<") {
			t.Error("the other sections were not refreshed")
		}
	})
	t.Run("anchors as the Cloud editor saves them", func(t *testing.T) {
		// The editor adds macro ids and local ids, and may put white
		// space between the paragraph and the macro.
		saved := strings.ReplaceAll(old, `<p><ac:structured-macro ac:name="anchor" ac:schema-version="1">`,
			"<p local-id=\"a1\">\n<ac:structured-macro ac:name=\"anchor\" ac:schema-version=\"1\" ac:local-id=\"5f1c\" ac:macro-id=\"0d6b-77\">")
		saved = strings.ReplaceAll(saved, "</ac:structured-macro></p>", "</ac:structured-macro>\n</p>")
		got := RefreshPage(saved, fresh)
		wellFormed(t, got)
		sameContent(t, got, fresh)
		if strings.Count(got, `ac:macro-id="0d6b-77"`) != 16 {
			t.Error("the editor's anchors were not kept")
		}
	})
	t.Run("text a person typed beside an anchor stays, the section is refreshed", func(t *testing.T) {
		page := strings.Replace(old, `rollback-incident.recovery</ac:parameter></ac:structured-macro></p>`,
			`rollback-incident.recovery</ac:parameter></ac:structured-macro> Ops note: paged at 14:05.</p>`, 1)
		page = strings.Replace(page, `<p><ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">rollback-incident.recovery.end`,
			`<p>Before the end: <ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">rollback-incident.recovery.end`, 1)
		got := RefreshPage(page, fresh)
		wellFormed(t, got)
		sameContent(t, got, fresh)
		if !strings.Contains(got, "Ops note: paged at 14:05.") || !strings.Contains(got, "Before the end: ") {
			t.Error("text beside an anchor is lost")
		}
	})
	t.Run("a marker moved into a table: that section is left alone", func(t *testing.T) {
		page := strings.Replace(old, `<p><ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">rollback-incident.timeline.end</ac:parameter></ac:structured-macro></p>`, "", 1)
		page = strings.Replace(page, "</td></tr>\n</tbody></table>\n\n<p><em>To be filled in: what people did",
			`<ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">rollback-incident.timeline.end</ac:parameter></ac:structured-macro></td></tr>`+"\n</tbody></table>\n\n<p><em>To be filled in: what people did", 1)
		if !strings.Contains(page, "</ac:structured-macro></td></tr>") {
			t.Fatal("the marker did not move")
		}
		got := RefreshPage(page, fresh)
		wellFormed(t, got)
		if slices.Contains(GeneratedSections(got), "timeline") || !strings.Contains(got, ">RECOVERED<") {
			t.Errorf("sections %v", GeneratedSections(got))
		}
	})
	t.Run("a begin marker copied elsewhere widens nothing", func(t *testing.T) {
		begin := `<p><ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">rollback-incident.detection</ac:parameter></ac:structured-macro></p>`
		page := strings.Replace(old, "<h2>Fault</h2>", begin+"<p>Our notes.</p><h2>Fault</h2>", 1)
		got := RefreshPage(page, fresh)
		wellFormed(t, got)
		sameContent(t, got, fresh)
		if !strings.Contains(got, "<p>Our notes.</p><h2>Fault</h2>") {
			t.Error("text after a copied marker was replaced")
		}
	})
	t.Run("a page without anchors is left as it is", func(t *testing.T) {
		legacy := "<h2>Timeline</h2><table><tbody><tr><th>Time</th><th>Event</th></tr></tbody></table>"
		if got := RefreshPage(legacy, fresh); got != legacy || len(GeneratedSections(legacy)) != 0 {
			t.Errorf("legacy page changed: %s", got)
		}
	})
	t.Run("an end anchor deleted: the section is left alone", func(t *testing.T) {
		page := strings.Replace(old, "rollback-incident.fault.end", "something-else", 1)
		got := RefreshPage(page, fresh)
		if slices.Contains(GeneratedSections(got), "fault") {
			t.Error("a section without its end was found")
		}
		if !strings.Contains(got, ">RECOVERED<") {
			t.Error("the sections around it were not refreshed")
		}
	})
	t.Run("event text cannot fake a marker", func(t *testing.T) {
		hostile := *in
		hostile.Message = `</ac:parameter>rollback-incident.timeline</ac:parameter> <ac:structured-macro ac:name="anchor">`
		page, err := r.Page(&hostile, c)
		if err != nil {
			t.Fatal(err)
		}
		if got := GeneratedSections(page); !slices.Equal(got, GeneratedSections(fresh)) {
			t.Errorf("sections %v", got)
		}
		if RefreshPage(page, fresh) != fresh {
			t.Error("a page with hostile text was not refreshed whole")
		}
	})
}

// sameContent fails unless every generated section of got holds what the
// same section of want holds.
func sameContent(t *testing.T, got, want string) {
	t.Helper()
	inner := func(page string) map[string]string {
		m := map[string]string{}
		for _, s := range sections(page) {
			m[s.name] = page[s.innerStart:s.innerEnd]
		}
		return m
	}
	if g, w := inner(got), inner(want); !maps.Equal(g, w) {
		t.Errorf("generated sections differ:\n%v\n%v", g, w)
	}
}

// TestDescriptionHash: the hash of what was written equals the hash of
// what Jira returns when nobody edited it, however Jira reformats it, and
// differs after an edit.
func TestDescriptionHash(t *testing.T) {
	in := decodeFixture(t, "analysisrun-failed.json")
	c := goldenContext(t, in)
	doc := Description(in, c)
	written := DescriptionHash(doc)

	raw, _ := json.Marshal(doc)
	var generic map[string]any
	_ = json.Unmarshal(raw, &generic)
	// Jira Cloud's answer: keys reordered, indentation, localIds on
	// tables, attributes added.
	var addIDs func(n any)
	addIDs = func(n any) {
		if m, ok := n.(map[string]any); ok {
			if m["type"] == "table" {
				m["attrs"].(map[string]any)["localId"] = "8f0c9b3e-1d2a"
			}
			if c, ok := m["content"].([]any); ok {
				for _, x := range c {
					addIDs(x)
				}
			}
		}
	}
	addIDs(generic)
	returned, _ := json.MarshalIndent(generic, "", "    ")
	if h, err := ADFHash(returned); err != nil || h != written {
		t.Errorf("unedited description hashes %s, written %s (%v)", h, written, err)
	}

	edit := strings.Replace(string(returned), "Last measured values", "Last measured values (checked by Ana)", 1)
	if h, _ := ADFHash([]byte(edit)); h == written {
		t.Error("an edited description hashes as written")
	}
	// A person mentions someone in the first paragraph.
	for _, n := range generic["content"].([]any) {
		if m := n.(map[string]any); m["type"] == "paragraph" {
			m["content"] = append(m["content"].([]any), map[string]any{"type": "mention", "attrs": map[string]any{"id": "5b10", "text": "@Ana"}})
			break
		}
	}
	mention, _ := json.Marshal(generic)
	if h, err := ADFHash(mention); err != nil || h == written {
		t.Errorf("a mention added hashes as written (%v)", err)
	}
	if _, err := ADFHash([]byte("{")); err == nil {
		t.Error("broken JSON hashed")
	}

	wiki := WikiDescription(in, c)
	if WikiHash(strings.ReplaceAll(wiki, "\n", "\r\n")+"\r\n") != WikiHash(wiki) {
		t.Error("line endings change the wiki hash")
	}
	if WikiHash(strings.Replace(wiki, "h3. Facts", "h3. Facts (reviewed)", 1)) == WikiHash(wiki) {
		t.Error("an edited wiki description hashes as written")
	}
}

// TestWikiHostile: event text cannot open a link, a macro, a table cell or
// a heading in the wiki-markup description.
func TestWikiHostile(t *testing.T) {
	h := "[evil|javascript:alert(1)] {html}<b>x</b>{html} | cell *bold* \nh1. Heading\n{noformat}"
	in := &incident.Incident{
		Cluster: "c", Kind: incident.KindRollout, Namespace: "n", Name: "x", Revision: "1", Phase: h, Reason: h, Message: h,
		Analysis:  []incident.Analysis{{Run: h, Metric: h, Provider: h, FailureLimit: h, Values: []string{h}}},
		Resources: []incident.Resource{{Kind: h, Name: h, Message: h}},
		Links:     []incident.Link{{Title: h, URL: "https://example.com/?q=]|["}},
		Recovery:  &incident.Recovery{Kind: incident.KindRollout, Namespace: "n", Name: "x", Revision: h, Source: h},
	}
	wiki := WikiDescription(in, Context{Owner: h, Priority: h, PreviousKey: h, PreviousURL: "https://x.example/browse/OPS-0", Related: []incident.Link{{Title: h, URL: "https://x.example/a"}}})
	// What stays once every escaped character is blanked out.
	unescaped := regexp.MustCompile(`\\.`).ReplaceAllString(wiki, "_")
	for _, bad := range []string{"[evil|", "{html}", "\nh1.", "*bold*", "| cell"} {
		if strings.Contains(unescaped, bad) {
			t.Errorf("wiki markup contains %q:\n%s", bad, wiki)
		}
	}
	// The only {noformat} blocks are the commands', closed.
	if n := strings.Count(wiki, "{noformat}"); n != 2 {
		t.Errorf("%d {noformat} markers:\n%s", n, wiki)
	}
	// Analysis run names that are no Kubernetes names give no command.
	if strings.Contains(wiki, "kubectl get analysisrun") {
		t.Error("a command built from a name that is not a Kubernetes name")
	}
}

// TestManualRollbackGolden renders the facts of a manual rollback (the
// fields the manual-rollback detection fills) as the opener does.
func TestManualRollbackGolden(t *testing.T) {
	r := newRenderer(t)
	in := &incident.Incident{
		Source: "Argo Events resource event (UPDATE Rollout)", Cluster: "prod-eu-1", Kind: incident.KindRollout,
		Namespace: "payments", Name: "checkout-api", Revision: "8", Phase: "Progressing", Reason: incident.ReasonManualRollback,
		Message: "Rollback to stable ReplicaSets", Time: time.Date(2025, 6, 12, 15, 2, 11, 0, time.UTC), Strategy: "canary",
		RevertedFrom: "7", RevertedTo: "6",
		ImagesBefore: []incident.Image{{Container: "checkout-api", Image: "registry.example.com/payments/checkout-api:1.42.0"}},
		Images:       []incident.Image{{Container: "checkout-api", Image: "registry.example.com/payments/checkout-api:1.41.3"}},
		ReplicaSets:  []string{"checkout-api-6f9c7b8d5 (revision 7)", "checkout-api-5d8f9c6b7 (revision 8)"},
		InitiatedBy:  "alice@example.com",
	}
	c := goldenContext(t, in)
	got := renderAll(t, r, in, c)
	golden(t, "manual-rollback.description.adf.json", got.adf)
	golden(t, "manual-rollback.description.wiki", []byte(got.wiki))
	golden(t, "manual-rollback.page.storage.xml", []byte(got.page))
	golden(t, "manual-rollback.summary.txt", []byte(got.summary+"\n"+PageTitle(in, "OPS-1")+"\n"))
	checkDocuments(t, in, c, got)
	if got.summary != "[INCIDENT] Manual rollback: payments/checkout-api reverted from revision 7 to revision 6" {
		t.Errorf("summary %q", got.summary)
	}
}

// TestOwnSummaryTemplate: a summary template written for earlier versions
// (the incident's fields and methods) still works, and .Title is there.
func TestOwnSummaryTemplate(t *testing.T) {
	page, err := templates.FS.Open(PageTemplate)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page)
	r, err := New(fstest.MapFS{
		SummaryTemplate: {Data: []byte("{{.Kind}} {{.Subject}} rev {{.Revision}} in {{.Cluster}}: {{.Title}}")},
		PageTemplate:    {Data: body},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Summary(decodeFixture(t, "workflow-failed.json"))
	if want := "Workflow payments/db-migrate-x7k2p rev 0b6f3a2e-4d1c-4e8b-9a7f-6c5d4e3b2a10 in prod-eu-1: Workflow failed: payments/db-migrate-x7k2p"; err != nil || s != want {
		t.Errorf("summary %q (%v), want %q", s, err, want)
	}
	if _, err := New(fstest.MapFS{
		SummaryTemplate: {Data: []byte("x")},
		PageTemplate:    {Data: []byte(`{{generated "Bad Name"}}`)},
	}); err == nil {
		t.Error("a generated section with an invalid name is accepted")
	}
}

// TestFactsComment: when a person edited the description, what a later
// event adds arrives as one comment, and a repeat adds none.
func TestFactsComment(t *testing.T) {
	before := decodeFixture(t, "rollout-notification-webhook.json")
	after := *before
	after.Analysis = slices.Clone(before.Analysis)
	c := goldenContext(t, before)
	if _, _, changed := FactsComment(before, &after, c); changed {
		t.Error("nothing new, yet a comment")
	}
	incident.Merge(&after, decodeFixture(t, "analysisrun-failed.json"))
	doc, wiki, changed := FactsComment(before, &after, c)
	if !changed {
		t.Fatal("no comment for new facts")
	}
	b, _ := json.Marshal(doc)
	if err := adfschema.ValidateJSON(b); err != nil {
		t.Errorf("comment is not valid ADF: %v", err)
	}
	for _, want := range []string{"AnalysisRun object", "prometheus", "[0.8512]", "step 2"} {
		if !strings.Contains(string(b), jsonText(want)) || !strings.Contains(wiki, WikiText(want)) {
			t.Errorf("comment lacks %q", want)
		}
	}
	if strings.Contains(wiki, "||Cluster|") {
		t.Error("the comment repeats a fact the description has")
	}
	recovered := after
	recovered.Recovery = &incident.Recovery{Cluster: "prod-eu-1", Kind: "Rollout", Namespace: "payments", Name: "checkout-api", Revision: "8", At: c.Opened.Add(17 * time.Minute), State: "Healthy"}
	_, wiki, changed = FactsComment(&after, &recovered, c)
	if !changed || !strings.Contains(wiki, "Healthy again at revision 8") || !strings.Contains(wiki, "Time to recover") {
		t.Errorf("recovery comment:\n%s", wiki)
	}
}
