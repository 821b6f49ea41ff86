// Package render turns an incident into what Jira and Confluence store: the
// issue summary, its description (ADF and wiki markup), the page title and
// the postmortem page in storage format, each rendered from the incident
// merged from every event of the rollback and a Context, and the refresh of
// a page people have written in. Escaping lives here and nowhere else: the
// ADF is built from nodes, the wiki markup from escaped text, the page goes
// through html/template, and the summary is cut to one plain line, so no
// template can forget to escape event text.
package render

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"function/incident"
	"function/internal/clip"
)

// Template file names inside the templates FS.
const (
	SummaryTemplate = "summary.tmpl"
	PageTemplate    = "postmortem.storage.tmpl"
)

// Renderer renders incidents with parsed templates. It is safe for
// concurrent use.
type Renderer struct {
	summary *texttemplate.Template
	page    *htmltemplate.Template
	fields  *texttemplate.Template // optional
}

// New parses the templates in fsys. A template error is reported here, at
// start-up, not on the first incident.
func New(fsys fs.FS) (*Renderer, error) {
	summary, err := texttemplate.New(SummaryTemplate).Option("missingkey=error").ParseFS(fsys, SummaryTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", SummaryTemplate, err)
	}
	page, err := htmltemplate.New(PageTemplate).Option("missingkey=error").Funcs(pageFuncs).ParseFS(fsys, PageTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", PageTemplate, err)
	}
	fields, err := parseFields(fsys)
	if err != nil {
		return nil, err
	}
	r := &Renderer{summary: summary, page: page, fields: fields}
	// Render a sample so that a template referring to a field that does not
	// exist fails now rather than at 2 a.m.
	sample := &incident.Incident{Cluster: "c", Kind: incident.KindRollout, Namespace: "n", Name: "x", Revision: "1", Phase: "Degraded", Message: "m"}
	if _, err := r.Summary(sample); err != nil {
		return nil, err
	}
	if _, err := r.Page(sample, Context{JiraKey: "OPS-1", JiraURL: "https://example.invalid/browse/OPS-1", Opened: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, _, err := r.Fields(sample); err != nil {
		return nil, err
	}
	return r, nil
}

// maxSummary is Jira's limit for the summary field.
const maxSummary = 255

// summaryView is what the summary template sees: the incident's fields,
// and Title, the default title for its kind (see Title).
type summaryView struct {
	*incident.Incident
	Title string
}

// Summary renders the Jira summary: one line of at most 255 characters.
func (r *Renderer) Summary(in *incident.Incident) (string, error) {
	var b bytes.Buffer
	if err := r.summary.Execute(&b, summaryView{Incident: in, Title: Title(in)}); err != nil {
		return "", fmt.Errorf("render %s: %w", SummaryTemplate, err)
	}
	s := strings.Join(strings.FieldsFunc(b.String(), unicode.IsSpace), " ")
	if s == "" {
		return "", fmt.Errorf("render %s: empty summary", SummaryTemplate)
	}
	return clip.Text(s, maxSummary), nil
}

// PageTitle is deterministic for one incident (it depends on the Jira key
// and on what the fingerprint depends on, which Merge never changes) and
// unique per incident (Jira keys are), so a second create of the same
// postmortem hits Confluence's unique-title rule instead of making a copy.
// A Workflow's uid is no revision and stays out of it.
func PageTitle(in *incident.Incident, jiraKey string) string {
	return clip.Text(fmt.Sprintf("Postmortem %s: %s %s%s", jiraKey, in.Kind, in.Subject(), revisionPhrase(in)), 255)
}

// pageView is what the page template sees. Every string is text: the
// template escapes it for storage format.
type pageView struct {
	Kind, Subject, Cluster string
	Title                  string // e.g. "Rollback detected: payments/checkout-api"
	Status, StatusColour   string // the badge: Open (Red) or Recovered (Green)
	JiraKey, JiraURL       string
	Summary                []string // the incident summary, a sentence each
	SummaryFacts           []Fact   // owner, priority and the durations
	ChangeCaption          string
	Change                 []Fact // the object and the change (lead-up)
	State                  string // phase and reason, in words
	Message                string
	Analysis               []AnalysisRow
	Resources              []string
	FailedStep             string
	Detection              string
	Commands               string // one per line, each after a "# why" line
	Links                  []incident.Link
	Mitigation             string // what the platform did at once
	Recovery               string
	Timeline               []timelineRow
	Related                []relatedRecord
	FirstWhy               string
}

type timelineRow struct{ Time, Event string }

type relatedRecord struct{ Label, Title, URL string }

// Page renders the postmortem page in Confluence storage format. Its
// generated sections (see RefreshPage) are rendered from the merged
// incident and the context alone, so the same input gives the same page.
func (r *Renderer) Page(in *incident.Incident, c Context) (string, error) {
	v := newView(in, c)
	pv := pageView{
		Kind: in.Kind, Subject: in.Subject(), Cluster: in.Cluster,
		Title:   Title(in),
		Status:  strings.ToUpper(v.statusText()),
		JiraKey: c.JiraKey, JiraURL: c.JiraURL,
		Summary:       []string{v.what()},
		SummaryFacts:  append(v.ownerFacts(), v.durationFacts()...),
		ChangeCaption: changeCaption(in),
		Message:       in.Message,
		Analysis:      AnalysisRows(in),
		FailedStep:    in.FailedNode,
		Detection:     v.detection(),
		Commands:      commandsText(NextSteps(in)),
		Links:         v.links(),
		Mitigation:    v.mitigation(),
		Recovery:      v.recoverySentence(),
		FirstWhy:      firstWhy(in),
	}
	pv.StatusColour = "Red"
	if v.isRecovered() {
		pv.StatusColour = "Green"
	}
	for _, f := range Facts(in) {
		switch f.Name {
		case "Phase", "Reason", "Failed step", "Reported by":
			// Said under Fault and Detection.
		default:
			pv.Change = append(pv.Change, f)
		}
	}
	pv.State = "Last reported state: " + cmp.Or(in.Phase, "failed")
	if in.Reason != "" && in.Reason != in.Phase {
		pv.State += " (" + in.Reason + ")"
	}
	pv.State += "."
	for _, res := range in.Resources {
		pv.Resources = append(pv.Resources, resourceText(res, in.Message))
	}
	for _, row := range v.timeline() {
		pv.Timeline = append(pv.Timeline, timelineRow{cmp.Or(formatTime(row.At), "time not known"), row.Text})
	}
	if c.PreviousKey != "" {
		pv.Related = append(pv.Related, relatedRecord{"Previous incident of " + in.Kind + " " + in.Subject() + ": ", c.PreviousKey, c.PreviousURL})
	}
	for _, l := range c.Related {
		pv.Related = append(pv.Related, relatedRecord{"", cmp.Or(l.Title, l.URL), l.URL})
	}
	var b bytes.Buffer
	if err := r.page.Execute(&b, pv); err != nil {
		return "", fmt.Errorf("render %s: %w", PageTemplate, err)
	}
	return b.String(), nil
}

// changeCaption introduces the lead-up's table.
func changeCaption(in *incident.Incident) string {
	switch {
	case in.Reason == incident.ReasonManualRollback:
		return "The rollback, as the events describe it:"
	case in.Kind == incident.KindWorkflow:
		return "The workflow that failed:"
	case in.Kind == incident.KindApplication:
		return "The application and the sync that failed:"
	}
	return "The change that failed:"
}

// firstWhy starts the five whys with the question the facts raise.
func firstWhy(in *incident.Incident) string {
	switch {
	case in.Reason == incident.ReasonManualRollback:
		return "Why was " + in.Kind + " " + in.Subject() + " rolled back?"
	case in.Kind == incident.KindWorkflow:
		return "Why did workflow " + in.Subject() + " fail?"
	case in.Kind == incident.KindApplication:
		return "Why did Argo CD application " + in.Subject() + " fail?"
	}
	return "Why did" + revisionPhrase(in) + " of Rollout " + in.Subject() + " fail?"
}

// timelineHeading is how the default page template starts its timeline;
// AddTimelineRow looks for it.
const timelineHeading = "<h2>Timeline</h2>"

// AddTimelineRow adds a row to the page's timeline table without touching
// anything else a person may have written. When the page no longer has the
// timeline table, the entry is appended as a paragraph.
func AddTimelineRow(storage string, at time.Time, text string) string {
	when := formatTime(at)
	row := "<tr><td>" + xmlEscape(when) + "</td><td>" + xmlEscape(text) + "</td></tr>"
	if strings.Contains(storage, row) {
		return storage // already there: adding it is idempotent
	}
	if i := strings.Index(storage, timelineHeading); i >= 0 {
		rest := storage[i:]
		if j := strings.Index(rest, "</tbody>"); j >= 0 {
			// Keep the rows in time order: insert before the first row that
			// is later (the format sorts as text).
			table := rest[:j]
			pos := j
			for k := 0; ; {
				r := strings.Index(table[k:], "<tr><td>")
				if r < 0 {
					break
				}
				cell := table[k+r+len("<tr><td>"):]
				if c, _, ok := strings.Cut(cell, "</td>"); ok && c > xmlEscape(when) {
					pos = k + r
					break
				}
				k += r + len("<tr><td>")
			}
			return storage[:i+pos] + row + "\n" + storage[i+pos:]
		}
	}
	return storage + "<p><strong>" + xmlEscape(when) + "</strong> " + xmlEscape(text) + "</p>"
}

// xmlEscape escapes text for XML element content and attributes.
func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
