package emulator

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The HTML views let a person follow what the function did: the issue with
// its description, comments and links, and the postmortem page. They are
// read-only and unauthenticated. Every piece of user-controlled text is
// escaped: html/template escapes template data, and the ADF and storage
// renderers escape text themselves and emit only constant markup.

// adfToHTML renders an ADF document as simple, safe HTML. Unknown nodes are
// reduced to their text.
func adfToHTML(raw json.RawMessage) template.HTML {
	if len(raw) == 0 {
		return ""
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return ""
	}
	var hw htmlWriter
	hw.adf(doc)
	// The builder only ever receives escaped text and constant markup.
	return template.HTML(hw.String())
}

func adfAttrs(n map[string]any) map[string]any {
	a, _ := n["attrs"].(map[string]any)
	return a
}

func adfString(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// adfPlainText concatenates the text of a node and its descendants.
func adfPlainText(v any) string {
	n, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if t := adfString(n, "text"); t != "" {
		return t
	}
	var sb strings.Builder
	content, _ := n["content"].([]any)
	for _, c := range content {
		sb.WriteString(adfPlainText(c))
	}
	return sb.String()
}

func (hw *htmlWriter) adf(v any) {
	n, ok := v.(map[string]any)
	if !ok {
		return
	}
	attrs := adfAttrs(n)
	content, _ := n["content"].([]any)
	children := func() {
		for _, c := range content {
			hw.adf(c)
		}
	}
	wrap := func(tag string) {
		hw.tag("<" + tag + ">")
		children()
		hw.tag("</" + tag + ">")
	}
	switch adfString(n, "type") {
	case "doc":
		children()
	case "paragraph":
		wrap("p")
	case "heading":
		level, _ := attrs["level"].(float64)
		wrap("h" + strconv.Itoa(min(max(int(level), 1), 6)))
	case "text":
		hw.adfText(n)
	case "bulletList":
		wrap("ul")
	case "orderedList":
		wrap("ol")
	case "listItem":
		wrap("li")
	case "table":
		hw.tag(`<table class="grid"><tbody>`)
		children()
		hw.tag("</tbody></table>")
	case "tableRow":
		wrap("tr")
	case "tableHeader":
		wrap("th")
	case "tableCell":
		wrap("td")
	case "codeBlock":
		hw.tag("<pre><code>")
		hw.text(adfPlainText(n))
		hw.tag("</code></pre>")
	case "blockquote":
		wrap("blockquote")
	case "panel":
		hw.panel(adfString(attrs, "panelType"), "", children)
	case "rule":
		hw.tag("<hr>")
	case "hardBreak":
		hw.tag("<br>")
	case "status":
		hw.statusBadge(adfString(attrs, "text"), adfString(attrs, "color"))
	case "inlineCard", "blockCard", "embedCard":
		hw.link(adfString(attrs, "url"), adfString(attrs, "url"))
	case "mention":
		hw.text(adfString(attrs, "text"))
	case "emoji":
		if t := adfString(attrs, "text"); t != "" {
			hw.text(t)
		} else {
			hw.text(adfString(attrs, "shortName"))
		}
	case "date":
		ms, err := strconv.ParseInt(adfString(attrs, "timestamp"), 10, 64)
		if err == nil {
			hw.text(time.UnixMilli(ms).UTC().Format("2006-01-02"))
		}
	default:
		hw.text(adfPlainText(n))
	}
}

// link writes an http(s) link, or just the text for any other URL.
func (hw *htmlWriter) link(href, text string) {
	if !safeURL(href) {
		hw.text(text)
		return
	}
	hw.tag("<a")
	hw.attr("href", href)
	hw.tag(` rel="noopener noreferrer">`)
	hw.text(text)
	hw.tag("</a>")
}

func (hw *htmlWriter) adfText(n map[string]any) {
	marks, _ := n["marks"].([]any)
	var closers []string
	for _, m := range marks {
		mark, _ := m.(map[string]any)
		switch adfString(mark, "type") {
		case "strong":
			hw.tag("<strong>")
			closers = append(closers, "</strong>")
		case "em":
			hw.tag("<em>")
			closers = append(closers, "</em>")
		case "code":
			hw.tag("<code>")
			closers = append(closers, "</code>")
		case "strike":
			hw.tag("<s>")
			closers = append(closers, "</s>")
		case "underline":
			hw.tag("<u>")
			closers = append(closers, "</u>")
		case "link":
			if href := adfString(adfAttrs(mark), "href"); safeURL(href) {
				hw.tag("<a")
				hw.attr("href", href)
				hw.tag(` rel="noopener noreferrer">`)
				closers = append(closers, "</a>")
			}
		}
	}
	hw.text(adfString(n, "text"))
	for i := len(closers) - 1; i >= 0; i-- {
		hw.tag(closers[i])
	}
}

const htmlTemplates = `
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.}} · Atlassian emulator</title>
<style>
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;margin:0;color:#172b4d;background:#fafbfc}
header{background:#0052cc;color:#fff;padding:10px 24px}header a{color:#fff;text-decoration:none;font-weight:600}
main{max-width:960px;margin:24px auto;padding:0 24px;background:#fff}
a{color:#0052cc}table.grid{border-collapse:collapse;margin:8px 0}
table.grid td,table.grid th,main table td,main table th{border:1px solid #dfe1e6;padding:4px 8px;text-align:left;vertical-align:top}
pre{background:#f4f5f7;padding:8px;overflow:auto}code{background:#f4f5f7;padding:0 2px}
.label{display:inline-block;background:#dfe1e6;border-radius:3px;padding:0 4px;margin-right:4px;font-size:12px}
.meta{color:#5e6c84;font-size:13px}.comment{border-top:1px solid #dfe1e6;padding:8px 0}
</style></head><body><header><a href="/">Atlassian emulator</a></header><main>{{end}}
{{define "foot"}}</main></body></html>{{end}}

{{define "index"}}{{template "head" "Home"}}
<h1>Jira issues</h1>
{{if .Issues}}<table><tr><th>Key</th><th>Summary</th><th>Status</th><th>Labels</th><th>Created</th></tr>
{{range .Issues}}<tr><td><a href="/browse/{{.Key}}">{{.Key}}</a></td><td>{{.Summary}}</td><td>{{.Status}}</td>
<td>{{range .Labels}}<span class="label">{{.}}</span>{{end}}</td><td class="meta">{{.Created.Format "2006-01-02 15:04:05"}}</td></tr>
{{end}}</table>{{else}}<p class="meta">No issues yet.</p>{{end}}
<h1>Confluence pages</h1>
{{if .Pages}}<table><tr><th>Space</th><th>Title</th><th>Status</th><th>Version</th></tr>
{{range .Pages}}<tr><td><a href="/wiki/spaces/{{.SpaceKey}}">{{.SpaceKey}}</a></td><td><a href="/wiki{{.WebUI}}">{{.Title}}</a></td><td>{{.Status}}</td><td>{{.Version}}</td></tr>
{{end}}</table>{{end}}
<h1>Backstage notifications</h1>
{{if .Notifications}}<table><tr><th>Recipient</th><th>Severity</th><th>Notification</th><th>Topic / scope</th><th>Origin</th><th>Created</th></tr>
{{range .Notifications}}<tr><td>{{if .Broadcast}}<em>broadcast</em>{{else}}{{.User}}{{end}}</td>
<td><span class="label">{{.Payload.Severity}}</span></td>
<td>{{if .SafeLink}}<a href="{{.SafeLink}}" rel="noopener noreferrer">{{.Payload.Title}}</a>{{else}}{{.Payload.Title}}{{if .Payload.Link}} <span class="meta">({{.Payload.Link}})</span>{{end}}{{end}}{{if .Payload.Description}}<br><span class="meta">{{.Payload.Description}}</span>{{end}}</td>
<td class="meta">{{.Payload.Topic}}{{if .Payload.Scope}}<br>{{.Payload.Scope}}{{end}}</td><td class="meta">{{.Origin}}</td>
<td class="meta">{{.Created.Format "2006-01-02 15:04:05"}}{{if not .Updated.IsZero}}<br>updated {{.Updated.Format "2006-01-02 15:04:05"}}{{end}}{{if .Read}}<br>read{{else}}<br>unread{{end}}</td></tr>
{{end}}</table>{{else}}<p class="meta">No notifications yet.</p>{{end}}
<p class="meta">JSON state: <a href="/_emulator/state">/_emulator/state</a></p>
{{template "foot"}}{{end}}

{{define "issue"}}{{template "head" .Issue.Key}}
<p class="meta">{{.Issue.Project}} / {{.Issue.IssueType}} / <a href="/rest/api/3/issue/{{.Issue.Key}}">REST</a></p>
<h1>{{.Issue.Key}}: {{.Issue.Summary}}</h1>
<p>Status: <strong>{{.Issue.Status}}</strong> · Priority: {{.Issue.Priority}} · Created: {{.Issue.Created.Format "2006-01-02 15:04:05 MST"}}</p>
{{if .Issue.Labels}}<p>Labels: {{range .Issue.Labels}}<span class="label">{{.}}</span>{{end}}</p>{{end}}
{{if .Issue.Components}}<p>Components: {{range .Issue.Components}}<span class="label">{{.}}</span>{{end}}</p>{{end}}
<h2>Description</h2>
<div class="description">{{if .Description}}{{.Description}}{{else}}<p class="meta">None</p>{{end}}</div>
<h2>Links</h2>
{{if .Issue.RemoteLinks}}<ul>{{range .Issue.RemoteLinks}}<li>{{if .Relationship}}{{.Relationship}}: {{end}}<a href="{{.URL}}" rel="noopener noreferrer">{{.Title}}</a>{{if .Summary}} <span class="meta">{{.Summary}}</span>{{end}}</li>{{end}}</ul>
{{else}}<p class="meta">No remote links.</p>{{end}}
<h2>Comments</h2>
{{range .Comments}}<div class="comment"><p class="meta">{{.Created.Format "2006-01-02 15:04:05 MST"}}</p>{{.Body}}</div>{{else}}<p class="meta">No comments.</p>{{end}}
{{template "foot"}}{{end}}

{{define "page"}}{{template "head" .Page.Title}}
<p class="meta"><a href="/wiki/spaces/{{.Page.SpaceKey}}">{{.Page.SpaceKey}}</a> · version {{.Page.Version}} · {{.Page.Status}} · <a href="/wiki/api/v2/pages/{{.Page.ID}}?body-format=storage">REST</a></p>
<h1>{{.Page.Title}}</h1>
<div class="page-body">{{.Body}}</div>
{{template "foot"}}{{end}}

{{define "space"}}{{template "head" .Key}}
<h1>Space {{.Key}}</h1>
<ul>{{range .Pages}}<li><a href="/wiki{{.WebUI}}">{{.Title}}</a> <span class="meta">{{.Status}}, v{{.Version}}</span></li>{{end}}</ul>
{{template "foot"}}{{end}}

{{define "notfound"}}{{template "head" "Not found"}}<h1>Not found</h1><p>{{.}}</p>{{template "foot"}}{{end}}
`

func parseTemplates() *template.Template {
	return template.Must(template.New("emulator").Parse(htmlTemplates))
}

func (e *Emulator) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := e.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "emulator: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (e *Emulator) notFoundHTML(w http.ResponseWriter, msg string) {
	e.render(w, http.StatusNotFound, "notfound", msg)
}

// notificationView is a notification in the index, with its link when it
// is an absolute http(s) URL (a relative one is relative to the Backstage
// app, which the emulator is not).
type notificationView struct {
	Notification
	SafeLink string
}

func (e *Emulator) htmlIndex(w http.ResponseWriter, r *http.Request) {
	var notes []notificationView
	for _, n := range e.Notifications() {
		v := notificationView{Notification: n}
		if safeURL(n.Payload.Link) {
			v.SafeLink = n.Payload.Link
		}
		notes = append(notes, v)
	}
	e.render(w, http.StatusOK, "index", struct {
		Issues        []Issue
		Pages         []Page
		Notifications []notificationView
	}{e.Issues(), e.Pages(), notes})
}

type commentView struct {
	Created time.Time
	Body    template.HTML
}

func (e *Emulator) htmlIssue(w http.ResponseWriter, r *http.Request) {
	is, ok := e.Issue(r.PathValue("key"))
	if !ok {
		e.notFoundHTML(w, "Issue "+r.PathValue("key")+" does not exist.")
		return
	}
	var comments []commentView
	for _, c := range e.Comments(is.Key) {
		body := adfToHTML(c.Body)
		if c.Body == nil {
			body = wikiHTML(c.BodyWiki)
		}
		comments = append(comments, commentView{Created: c.Created, Body: body})
	}
	e.render(w, http.StatusOK, "issue", struct {
		Issue       Issue
		Description template.HTML
		Comments    []commentView
	}{is, descriptionHTML(is), comments})
}

// descriptionHTML renders an issue's ADF or wiki-markup description.
func descriptionHTML(is Issue) template.HTML {
	if is.Description == nil && is.DescriptionWiki != "" {
		return wikiHTML(is.DescriptionWiki)
	}
	return adfToHTML(is.Description)
}

// wikiHTML shows wiki markup (Data Center's rich text) as the escaped
// source in a <pre>: the view is for checking what a client wrote, and the
// source shows that exactly without a renderer to maintain.
func wikiHTML(s string) template.HTML {
	return template.HTML("<pre class=\"wiki\">" + template.HTMLEscapeString(s) + "</pre>")
}

func (e *Emulator) pageSnapshot(id string) (Page, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.st.pageByID[id]
	if !ok {
		return Page{}, false
	}
	return p.snapshot(), true
}

func (e *Emulator) htmlPage(w http.ResponseWriter, r *http.Request) {
	p, ok := e.pageSnapshot(r.PathValue("id"))
	if !ok {
		e.notFoundHTML(w, "Page "+r.PathValue("id")+" does not exist.")
		return
	}
	if !strings.EqualFold(p.SpaceKey, r.PathValue("key")) {
		http.Redirect(w, r, "/wiki"+p.WebUI, http.StatusFound)
		return
	}
	e.renderPage(w, p)
}

// renderPage renders the page view.
func (e *Emulator) renderPage(w http.ResponseWriter, p Page) {
	body, err := storageToHTML(p.Body)
	if err != nil {
		body = template.HTML("<p>" + template.HTMLEscapeString(err.Error()) + "</p>")
	}
	e.render(w, http.StatusOK, "page", struct {
		Page Page
		Body template.HTML
	}{p, body})
}

func (e *Emulator) htmlSpace(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	e.mu.Lock()
	sp := e.st.spaceByKey(key)
	var pages []Page
	for _, p := range e.st.pages {
		if sp != nil && p.space == sp {
			pages = append(pages, p.snapshot())
		}
	}
	e.mu.Unlock()
	if sp == nil {
		e.notFoundHTML(w, "Space "+key+" does not exist.")
		return
	}
	e.render(w, http.StatusOK, "space", struct {
		Key   string
		Pages []Page
	}{sp.key, pages})
}

// htmlPageByQuery serves Data Center's /pages/viewpage.action?pageId=:
// the page view itself.
func (e *Emulator) htmlPageByQuery(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("pageId")
	p, ok := e.pageSnapshot(id)
	if !ok {
		e.notFoundHTML(w, "Page "+id+" does not exist.")
		return
	}
	e.renderPage(w, p)
}

// htmlDisplaySpace serves Data Center's /display/KEY: the space view.
func (e *Emulator) htmlDisplaySpace(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/wiki/spaces/"+url.PathEscape(r.PathValue("space")), http.StatusFound)
}

// htmlDisplayPage serves Data Center's /display/KEY/Title+With+Spaces: the
// view of the current (or else archived) page with that title.
func (e *Emulator) htmlDisplayPage(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("space")
	// The title is query-escaped (spaces as "+") in the raw path, after
	// /display/KEY/.
	_, raw, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/display/"), "/")
	title, err := url.QueryUnescape(raw)
	if err != nil {
		e.notFoundHTML(w, "Malformed page title "+raw+".")
		return
	}
	if title == "" {
		e.htmlDisplaySpace(w, r)
		return
	}
	e.mu.Lock()
	var found *page
	for _, status := range []string{"current", "archived"} {
		for _, p := range e.st.pages {
			if found == nil && p.status == status && strings.EqualFold(p.space.key, key) && strings.EqualFold(p.title, title) {
				found = p
			}
		}
	}
	var snap Page
	if found != nil {
		snap = found.snapshot()
	}
	e.mu.Unlock()
	if found == nil {
		e.notFoundHTML(w, "No page titled "+title+" in space "+key+".")
		return
	}
	e.renderPage(w, snap)
}
