package render

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
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

var fixtureFiles = []string{
	"rollout-notification-webhook.json",
	"argo-events-resource-rollout-degraded.json",
	"analysisrun-failed.json",
	"argocd-app-health-degraded.json",
	"argocd-app-resource.json",
	"workflow-failed.json",
}

func decodeFixture(t *testing.T, name string) *incident.Incident {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../testdata/fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := inbound.NewDecoder("prod-eu-1", inbound.DefaultLimits).Decode(b, inbound.Meta{})
	if err != nil || dec.Incident == nil {
		t.Fatalf("decode %s: %v %+v", name, err, dec)
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

// TestGolden renders the default documents for every fixture source and
// compares them with the reviewed golden files.
func TestGolden(t *testing.T) {
	r := newRenderer(t)
	for _, name := range fixtureFiles {
		t.Run(name, func(t *testing.T) {
			in := decodeFixture(t, name)
			base := strings.TrimSuffix(name, ".json")

			doc, err := json.MarshalIndent(Description(in, Related{}), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := adfschema.ValidateJSON(doc); err != nil {
				t.Errorf("description is not valid ADF: %v", err)
			}
			golden(t, base+".description.adf.json", doc)

			page, err := r.Page(in, PageContext{JiraKey: "OPS-1", JiraURL: "https://example.atlassian.net/browse/OPS-1", Opened: opened})
			if err != nil {
				t.Fatal(err)
			}
			wellFormed(t, page)
			golden(t, base+".page.storage.xml", []byte(page))

			wiki := WikiDescription(in, Related{})
			golden(t, base+".description.wiki", []byte(wiki))

			summary, err := r.Summary(in)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, base+".summary.txt", []byte(summary+"\n"+PageTitle(in, "OPS-1")+"\n"))

			// Every fact the event carried shows in both documents.
			for _, f := range Facts(in) {
				if !bytes.Contains(doc, []byte(jsonText(f.Value))) {
					t.Errorf("description lacks %s %q", f.Name, f.Value)
				}
				if !strings.Contains(page, xmlText(f.Value)) {
					t.Errorf("page lacks %s %q", f.Name, f.Value)
				}
			}
			for _, bad := range []string{"<no value>", "null", "<nil>"} {
				if strings.Contains(page, bad) {
					t.Errorf("page contains %q", bad)
				}
			}
		})
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

func TestAddTimelineRowKeepsOrder(t *testing.T) {
	r := newRenderer(t)
	in := decodeFixture(t, "rollout-notification-webhook.json")                                                       // failed 14:03:28
	page, err := r.Page(in, PageContext{JiraKey: "OPS-1", JiraURL: "https://x.example/browse/OPS-1", Opened: opened}) // 14:03:40
	if err != nil {
		t.Fatal(err)
	}
	page = AddTimelineRow(page, time.Date(2025, 6, 12, 14, 3, 26, 0, time.UTC), "analysis <failed>")
	page = AddTimelineRow(page, time.Date(2025, 6, 12, 15, 0, 0, 0, time.UTC), "healthy again")
	wellFormed(t, page)
	a := strings.Index(page, "analysis &lt;failed&gt;")
	b := strings.Index(page, "is Degraded (RolloutAborted)")
	c := strings.Index(page, "and this postmortem opened")
	d := strings.Index(page, "healthy again")
	if a < 0 || !(a < b && b < c && c < d) {
		t.Errorf("rows out of order: %d %d %d %d", a, b, c, d)
	}
	// A page whose timeline a person removed still gets the entry.
	if p := AddTimelineRow("<p>x</p>", opened, "late"); !strings.Contains(p, "late") {
		t.Error("entry lost")
	}
}

func TestStableToFailedImages(t *testing.T) {
	body := `{"rolloutName":"a","namespace":"b","phase":"Degraded","message":"m","images":[{"container":"app","image":"reg/app:1.42.0"}],"stableImages":[{"container":"app","image":"reg/app:1.41.3"}],"revision":"9","podHash":"abc","abortedAt":"2026-01-01T00:00:00Z","strategy":"canary","step":"3/5"}`
	dec, err := inbound.NewDecoder("c", inbound.DefaultLimits).Decode([]byte(body), inbound.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	facts := map[string]string{}
	for _, f := range Facts(dec.Incident) {
		facts[f.Name] = f.Value
	}
	if facts["Images (stable → failed)"] != "app: reg/app:1.41.3 → app: reg/app:1.42.0" || facts["Revision"] != "9" ||
		facts["Pod template hash"] != "abc" || facts["Strategy"] != "canary" || facts["Step"] != "3/5" || facts["Failed at"] == "" {
		t.Errorf("facts %v", facts)
	}
}
