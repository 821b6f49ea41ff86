package render

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"function/incident"
	"function/internal/adfschema"
	"function/templates"
)

func fuzzIncident(a, b, c string) *incident.Incident {
	return &incident.Incident{
		Cluster: a, Kind: incident.KindRollout, Namespace: "n", Name: "x", Revision: b, Phase: c, Reason: a,
		Message: b, Strategy: c, FailedNode: a, Source: b,
		Images:    []incident.Image{{Container: a, Image: b}},
		Analysis:  []incident.Analysis{{Metric: c, Message: a, Values: []string{b}}},
		Resources: []incident.Resource{{Kind: a, Name: b, Message: c}},
		Links:     []incident.Link{{Title: a, URL: "https://example.com/" + b}},
	}
}

var fuzzSeeds = [][3]string{
	{"</td><script>alert(1)</script>", "]]><![CDATA[x", `" OR project = X`},
	{"\u0000\u0007", "\u202e", "&amp;&#0;"},
	{"", "", ""},
	{`<ac:structured-macro ac:name="html"/>`, "{{.Name}}", "%s%n"},
}

// FuzzPage: whatever the event text, the postmortem page is well-formed
// storage XML with no script and no macro the template did not write.
func FuzzPage(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s[0], s[1], s[2])
	}
	r, err := New(templates.FS)
	if err != nil {
		f.Fatal(err)
	}
	want := strings.Count(mustPage(f, r, fuzzIncident("a", "b", "c")), "<ac:structured-macro")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		page := mustPage(t, r, fuzzIncident(cleanForXML(a), cleanForXML(b), cleanForXML(c)))
		wellFormed(t, page)
		if got := strings.Count(page, "<ac:structured-macro"); got != want {
			t.Fatalf("%d macros, want %d", got, want)
		}
		if strings.Contains(page, "<script") || strings.Contains(page, "<![CDATA[") {
			t.Fatal("markup from event text in the page")
		}
	})
}

// FuzzDescription: whatever the event text, the ADF description validates
// against Atlassian's schema.
func FuzzDescription(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s[0], s[1], s[2])
	}
	v, err := adfschema.Default()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		doc, err := json.Marshal(Description(fuzzIncident(a, b, c), Related{PreviousKey: a, PreviousURL: "https://example.com"}))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.ValidateJSON(doc); err != nil {
			t.Fatalf("invalid ADF: %v", err)
		}
	})
}

func mustPage(t testing.TB, r *Renderer, in *incident.Incident) string {
	t.Helper()
	page, err := r.Page(in, PageContext{JiraKey: "OPS-1", JiraURL: "https://x.example/browse/OPS-1", Opened: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// cleanForXML stands in for inbound's sanitising: the renderer receives
// only text without control characters, as the decoder guarantees.
func cleanForXML(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0xFFFE || r == 0xFFFF || r == 0x7F || (r >= 0x80 && r < 0xA0) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}

// FuzzRefreshPage: whatever a page holds (people write anything, and
// Confluence rewrites markup), refreshing it never fails, leaves a page
// without complete sections as it is, and is idempotent.
func FuzzRefreshPage(f *testing.F) {
	r, err := New(templates.FS)
	if err != nil {
		f.Fatal(err)
	}
	fresh := mustPage(f, r, fuzzIncident("a", "b", "c"))
	f.Add(fresh)
	f.Add(`<p><ac:structured-macro ac:name="anchor"><ac:parameter ac:name="">rollback-incident.fault</ac:parameter></ac:structured-macro>x`)
	f.Add(`<p>>rollback-incident.timeline</ac:parameter></p><p`)
	f.Fuzz(func(t *testing.T, existing string) {
		got := RefreshPage(existing, fresh)
		if len(GeneratedSections(existing)) == 0 && got != existing {
			t.Fatal("a page without sections changed")
		}
		if again := RefreshPage(got, fresh); again != got {
			t.Fatal("refreshing twice changed the page")
		}
	})
}

// BenchmarkRefreshPageHostile: a page of thousands of unmatched markers
// and paragraphs costs time linear in its size (people write the page; it
// must not cost a request its deadline).
func BenchmarkRefreshPageHostile(b *testing.B) {
	r, err := New(templates.FS)
	if err != nil {
		b.Fatal(err)
	}
	fresh := mustPage(b, r, fuzzIncident("a", "b", "c"))
	page := strings.Repeat(`<p><ac:structured-macro ac:name="anchor"><ac:parameter ac:name="">rollback-incident.fault</ac:parameter></ac:structured-macro></p><pre>x</pre>`, 3000) + fresh
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		RefreshPage(page, fresh)
	}
}
