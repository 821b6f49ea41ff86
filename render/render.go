// Package render turns an incident into what Jira and Confluence store: the
// issue summary, its ADF description, the page title and the postmortem page
// in storage format. Escaping lives here and nowhere else: the ADF is built
// from nodes, the page goes through html/template, and the summary is cut to
// one plain line, so no template can forget to escape event text.
package render

import (
	"bytes"
	"encoding/xml"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"function/incident"
	"function/render/adf"
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
	page, err := htmltemplate.New(PageTemplate).Option("missingkey=error").ParseFS(fsys, PageTemplate)
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
	if _, err := r.Page(sample, PageContext{JiraKey: "OPS-1", JiraURL: "https://example.invalid/browse/OPS-1", Opened: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, _, err := r.Fields(sample); err != nil {
		return nil, err
	}
	return r, nil
}

// maxSummary is Jira's limit for the summary field.
const maxSummary = 255

// Summary renders the Jira summary: one line of at most 255 characters.
func (r *Renderer) Summary(in *incident.Incident) (string, error) {
	var b bytes.Buffer
	if err := r.summary.Execute(&b, in); err != nil {
		return "", fmt.Errorf("render %s: %w", SummaryTemplate, err)
	}
	s := strings.Join(strings.FieldsFunc(b.String(), unicode.IsSpace), " ")
	if s == "" {
		return "", fmt.Errorf("render %s: empty summary", SummaryTemplate)
	}
	return clip(s, maxSummary), nil
}

// PageTitle is deterministic for one incident (it depends on the Jira key
// and on what the fingerprint depends on) and unique per incident (Jira keys
// are), so a second create of the same postmortem hits Confluence's
// unique-title rule instead of making a copy.
func PageTitle(in *incident.Incident, jiraKey string) string {
	rev := ""
	if in.Revision != "" {
		rev = " revision " + shortRevision(in.Revision)
	}
	return clip(fmt.Sprintf("Postmortem %s: %s %s%s", jiraKey, in.Kind, in.Subject(), rev), 255)
}

// shortRevision shortens git SHAs and uids the way people quote them.
func shortRevision(rev string) string {
	if len(rev) >= 32 && isHex(strings.ReplaceAll(rev, "-", "")) {
		return rev[:8]
	}
	return rev
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return s != ""
}

// Fact is one line of the facts table.
type Fact struct{ Name, Value string }

// Facts lists what the event told, in the order a responder reads them;
// absent facts are left out rather than shown empty.
func Facts(in *incident.Incident) []Fact {
	var fs []Fact
	add := func(name, value string) {
		if strings.TrimSpace(value) != "" {
			fs = append(fs, Fact{name, value})
		}
	}
	add("Object", in.Kind+" "+in.Subject())
	add("Cluster", in.Cluster)
	add("Namespace", in.Namespace)
	add("Revision", in.Revision)
	add("Pod template hash", in.PodHash)
	add("Stable ReplicaSet hash", in.StableRS)
	add("Strategy", in.Strategy)
	add("Step", in.Step)
	add("Phase", in.Phase)
	add("Reason", in.Reason)
	add("Failed at", formatTime(in.Time))
	imageList := func(imgs []incident.Image) string {
		var out []string
		for _, img := range imgs {
			if img.Container != "" {
				out = append(out, img.Container+": "+img.Image)
			} else {
				out = append(out, img.Image)
			}
		}
		return strings.Join(out, ", ")
	}
	if len(in.StableImages) > 0 {
		add("Images (stable → failed)", imageList(in.StableImages)+" → "+imageList(in.Images))
	} else {
		add("Images", imageList(in.Images))
	}
	add("Argo CD application", in.Application)
	add("Argo CD sync revision", in.SyncRevision)
	add("Argo CD project", in.Project)
	add("Repository", in.RepoURL)
	add("Target revision", in.TargetRevision)
	if in.DestinationServer != "" || in.DestinationNS != "" {
		add("Destination", strings.Trim(in.DestinationServer+" "+in.DestinationNS, " "))
	}
	add("Failed step", in.FailedNode)
	add("Reported by", in.Source)
	return fs
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 MST")
}

// AnalysisResult says how a metric failed, e.g. "Failed: 3 of 4 failed (limit 2)".
func AnalysisResult(a incident.Analysis) string {
	s := a.Phase
	if a.Count > 0 {
		s += fmt.Sprintf(": %d of %d measurements failed", a.Failed, a.Count)
	}
	if a.FailureLimit != "" {
		s += " (failure limit " + a.FailureLimit + ")"
	}
	return s
}

func analysisName(a incident.Analysis) string {
	name := firstNonEmpty(a.Metric, a.Run)
	if a.Provider != "" {
		name += " (" + a.Provider + ")"
	}
	return name
}

func resourceText(r incident.Resource) string {
	s := r.Kind + " " + strings.Trim(r.Namespace+"/"+r.Name, "/")
	if r.Health != "" {
		s += " is " + r.Health
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

// Related is what the description says about earlier incidents.
type Related struct {
	PreviousKey string // the object's previous incident, if any
	PreviousURL string
}

// Description builds the Jira issue description as ADF.
func Description(in *incident.Incident, rel Related) adf.Doc {
	headline := fmt.Sprintf("%s %s is %s", in.Kind, in.Subject(), firstNonEmpty(in.Phase, "failed"))
	if in.Reason != "" {
		headline += " (" + in.Reason + ")"
	}
	blocks := []adf.Node{
		adf.Panel("error", adf.Paragraph(adf.Text(headline, adf.Strong()))),
		adf.Heading(3, "What happened"),
		adf.Paragraph(adf.Text(in.Message)),
		adf.Heading(3, "Facts"),
	}
	var rows []adf.Row
	for _, f := range Facts(in) {
		rows = append(rows, adf.Row{Name: f.Name, Value: []adf.Node{adf.Text(f.Value)}})
	}
	rows = append(rows, adf.Row{Name: "Fingerprint", Value: []adf.Node{adf.Text(in.Fingerprint(), adf.Code())}})
	blocks = append(blocks, adf.FactsTable(rows...))

	if len(in.Analysis) > 0 {
		blocks = append(blocks, adf.Heading(3, "Failed analysis"))
		var items [][]adf.Node
		for _, a := range in.Analysis {
			item := []adf.Node{adf.Paragraph(adf.Text(analysisName(a), adf.Strong()), adf.Text(" "+AnalysisResult(a)))}
			if len(a.Values) > 0 {
				item = append(item, adf.Paragraph(adf.Text("Measurements: "), adf.Text(strings.Join(a.Values, ", "), adf.Code())))
			}
			if a.Message != "" && a.Message != in.Message {
				item = append(item, adf.Paragraph(adf.Text(a.Message)))
			}
			items = append(items, item)
		}
		blocks = append(blocks, adf.BulletList(items...))
	}
	if len(in.Resources) > 0 {
		blocks = append(blocks, adf.Heading(3, "Degraded resources"))
		var items [][]adf.Node
		for _, r := range in.Resources {
			items = append(items, []adf.Node{adf.Paragraph(adf.Text(resourceText(r)))})
		}
		blocks = append(blocks, adf.BulletList(items...))
	}
	if len(in.Links) > 0 {
		blocks = append(blocks, adf.Heading(3, "Links"))
		var items [][]adf.Node
		for _, l := range in.Links {
			items = append(items, []adf.Node{adf.Paragraph(adf.Text(firstNonEmpty(l.Title, l.URL), adf.Link(l.URL)))})
		}
		blocks = append(blocks, adf.BulletList(items...))
	}
	if rel.PreviousKey != "" {
		blocks = append(blocks, adf.Paragraph(adf.Text("Previous incident for this "+strings.ToLower(in.Kind)+": "), adf.Text(rel.PreviousKey, adf.Link(rel.PreviousURL))))
	}
	blocks = append(blocks, adf.Paragraph(adf.Text("The postmortem draft is linked to this issue. Opened automatically by rollback-incident.")))
	return adf.NewDoc(blocks...)
}

// PageContext is what the page shows beyond the incident.
type PageContext struct {
	JiraKey string
	JiraURL string
	Opened  time.Time // when the incident was opened
}

type pageView struct {
	Kind, Subject, Cluster, StatusTitle string
	Summary, Detection                  string
	JiraKey, JiraURL                    string
	Message                             string
	Facts                               []Fact
	Analysis                            []analysisRow
	Resources                           []string
	Links                               []incident.Link
	Timeline                            []timelineRow
	Resolution                          string
	Fingerprint                         string
}

type analysisRow struct{ Metric, Result, Values, Message string }

type timelineRow struct{ Time, Event string }

// Page renders the postmortem page in Confluence storage format.
func (r *Renderer) Page(in *incident.Incident, pc PageContext) (string, error) {
	v := pageView{
		Kind: in.Kind, Subject: in.Subject(), Cluster: in.Cluster,
		StatusTitle: strings.ToUpper(firstNonEmpty(in.Phase, "failed")),
		JiraKey:     pc.JiraKey, JiraURL: pc.JiraURL,
		Message:     in.Message,
		Facts:       Facts(in),
		Links:       in.Links,
		Fingerprint: in.Fingerprint(),
		Resolution:  resolution(in),
		Summary:     summaryText(in),
		Detection:   detection(in, pc),
	}
	for _, a := range in.Analysis {
		v.Analysis = append(v.Analysis, analysisRow{Metric: analysisName(a), Result: AnalysisResult(a), Values: strings.Join(a.Values, ", "), Message: a.Message})
	}
	for _, res := range in.Resources {
		v.Resources = append(v.Resources, resourceText(res))
	}
	if !in.Time.IsZero() {
		event := fmt.Sprintf("%s %s is %s", in.Kind, in.Subject(), firstNonEmpty(in.Phase, "failed"))
		if in.Reason != "" {
			event += " (" + in.Reason + ")"
		}
		v.Timeline = append(v.Timeline, timelineRow{formatTime(in.Time), event})
	}
	if !pc.Opened.IsZero() && pc.JiraKey != "" {
		v.Timeline = append(v.Timeline, timelineRow{formatTime(pc.Opened), "Incident " + pc.JiraKey + " and this postmortem opened"})
	}
	var b bytes.Buffer
	if err := r.page.Execute(&b, v); err != nil {
		return "", fmt.Errorf("render %s: %w", PageTemplate, err)
	}
	return b.String(), nil
}

// summaryText says in one sentence what failed, from the facts.
func summaryText(in *incident.Incident) string {
	s := fmt.Sprintf("%s %s", in.Kind, in.Subject())
	if in.Cluster != "" {
		s += " in cluster " + in.Cluster
	}
	if in.Revision != "" {
		s += " failed at revision " + shortRevision(in.Revision)
	} else {
		s += " failed"
	}
	if in.Reason != "" {
		s += " (" + in.Reason + ")"
	}
	if t := formatTime(in.Time); t != "" {
		s += " at " + t
	}
	s += "."
	if len(in.Analysis) > 0 {
		a := in.Analysis[0]
		s += " Analysis " + analysisName(a) + ": " + AnalysisResult(a) + "."
	}
	return s
}

// detection says how the failure was noticed: by the platform's own
// checks, and when the incident was opened.
func detection(in *incident.Incident, pc PageContext) string {
	var s string
	switch {
	case len(in.Analysis) > 0:
		s = "Detected by Argo Rollouts analysis (" + analysisName(in.Analysis[0]) + ")"
	case in.Kind == incident.KindApplication:
		s = "Detected by Argo CD health assessment"
	case in.Kind == incident.KindWorkflow:
		s = "Detected by Argo Workflows"
	default:
		s = "Detected by Argo Rollouts"
	}
	if in.Source != "" {
		s += ", reported by " + in.Source
	}
	if !pc.Opened.IsZero() {
		s += "; incident opened automatically at " + formatTime(pc.Opened)
	}
	return s + ". To be filled in: whether alerts or people noticed it first."
}

// resolution states what the platform already did, which the event tells.
func resolution(in *incident.Incident) string {
	switch {
	case in.Kind == incident.KindRollout && (in.Reason == "RolloutAborted" || strings.HasPrefix(in.Reason, "AnalysisRun")):
		s := "Argo Rollouts aborted the update"
		if in.Revision != "" {
			s += " to revision " + in.Revision
		}
		s += " and shifted traffic back to the stable ReplicaSet"
		if in.StableRS != "" {
			s += " (" + in.StableRS + ")"
		}
		return s + ". To be filled in: what else was done, and when the service was healthy again."
	case in.Kind == incident.KindRollout:
		return "To be filled in: the rollout did not complete; say whether it was rolled back or fixed forward, and when."
	case in.Kind == incident.KindApplication:
		return "To be filled in: how the application was brought back to Healthy (rollback to a previous sync revision, or fix forward)."
	default:
		return "To be filled in: how the failure was resolved."
	}
}

func clip(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max-1]) + "…"
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// TimelineEntry is the text of one timeline entry for in.
func TimelineEntry(in *incident.Incident) string {
	s := fmt.Sprintf("%s %s is %s", in.Kind, in.Subject(), firstNonEmpty(in.Phase, "failed"))
	if in.Reason != "" {
		s += " (" + in.Reason + ")"
	}
	if in.Message != "" {
		s += ": " + in.Message
	}
	if in.Source != "" {
		s += " [" + in.Source + "]"
	}
	return s
}

// Comment is the Jira comment for news about an open incident.
func Comment(at time.Time, text string) adf.Doc {
	return adf.NewDoc(
		adf.Paragraph(adf.Text("Update "+formatTime(at)+": ", adf.Strong()), adf.Text(text)),
	)
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
				if e := strings.Index(cell, "</td>"); e >= 0 && cell[:e] > xmlEscape(when) {
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
