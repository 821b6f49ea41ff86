package render

import (
	"fmt"
	htmltemplate "html/template"
	"strings"
)

// Generated sections.
//
// The page mixes what the function knows (facts, failed analysis, next
// steps, timeline, …) with what people write (impact, root cause, lessons,
// action items). To update the first without touching the second, the
// template wraps each generated section between two anchor macros:
//
//	<p><ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">rollback-incident.facts</ac:parameter></ac:structured-macro></p>
//	… generated content …
//	<p><ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">rollback-incident.facts.end</ac:parameter></ac:structured-macro></p>
//
// Anchors are a standard macro that both Confluence editors keep on save
// (the Cloud editor turns them into anchor extensions and back, adding
// attributes such as ac:macro-id or ac:local-id, which RefreshPage
// tolerates); they show nothing when the page is viewed, and an anchor
// icon in the editor. HTML comments would be the obvious marker, but the
// editors drop them, and html/template strips them from templates.
//
// RefreshPage replaces what lies between each pair with the fresh render
// and keeps everything outside the pairs byte for byte. Decisions:
//   - text a person types inside a generated section is replaced on the next
//     update (the page's intro says so);
//   - a section a person deleted together with its anchors stays deleted: the
//     function never re-adds a section the page does not have (the Jira issue
//     still carries every fact); one whose anchors remain is regenerated;
//   - a page without any anchors (opened by an earlier version) is left as it
//     is: use AddTimelineRow for those.

// markerPrefix starts every marker's anchor name.
const markerPrefix = "rollback-incident."

func marker(name string, end bool) string {
	id := markerPrefix + name
	if end {
		id += ".end"
	}
	return `<p><ac:structured-macro ac:name="anchor" ac:schema-version="1"><ac:parameter ac:name="">` + id + `</ac:parameter></ac:structured-macro></p>`
}

// pageFuncs are the page template's markers: {{generated "facts"}} …
// {{endgenerated "facts"}}. Section names are fixed words in the template.
var pageFuncs = htmltemplate.FuncMap{
	"generated":    func(name string) (htmltemplate.HTML, error) { return markerHTML(name, false) },
	"endgenerated": func(name string) (htmltemplate.HTML, error) { return markerHTML(name, true) },
}

func markerHTML(name string, end bool) (htmltemplate.HTML, error) {
	if !validSectionName(name) {
		return "", fmt.Errorf("generated section name %q: use lowercase letters, digits and '-'", name)
	}
	return htmltemplate.HTML(marker(name, end)), nil // #nosec G203 -- a fixed name checked above
}

func validSectionName(name string) bool {
	if name == "" || len(name) > 40 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// section is one generated section found in a page: s[start:end] spans
// both markers.
type section struct {
	name       string
	start, end int
}

// findAnchor finds the anchor macro named id at or after from and returns
// the span it takes, including the paragraph around it when it stands alone
// in one.
func findAnchor(s, id string, from int) (start, end int, ok bool) {
	needle := ">" + id + "</ac:parameter>"
	for from < len(s) {
		i := strings.Index(s[from:], needle)
		if i < 0 {
			return 0, 0, false
		}
		i += from
		from = i + len(needle)
		ms := strings.LastIndex(s[:i], "<ac:structured-macro")
		if ms < 0 || !strings.Contains(s[ms:i], `ac:name="anchor"`) || strings.Contains(s[ms:i], "</ac:structured-macro>") {
			continue
		}
		me := strings.Index(s[i:], "</ac:structured-macro>")
		if me < 0 {
			return 0, 0, false
		}
		start, end = ms, i+me+len("</ac:structured-macro>")
		// The paragraph around it, when it holds nothing else.
		if p := strings.LastIndex(s[:start], "<p"); p >= 0 {
			if gt := strings.Index(s[p:], ">"); gt >= 0 && p+gt < start &&
				(s[p+2] == '>' || s[p+2] == ' ') && strings.TrimSpace(s[p+gt+1:start]) == "" {
				rest := s[end:]
				if trimmed := strings.TrimLeft(rest, " \t\r\n"); strings.HasPrefix(trimmed, "</p>") {
					start, end = p, end+len(rest)-len(trimmed)+len("</p>")
				}
			}
		}
		return start, end, true
	}
	return 0, 0, false
}

// sections lists the generated sections of a page in order. A begin marker
// without its end marker after it is no section.
func sections(s string) []section {
	var out []section
	for from := 0; ; {
		i := strings.Index(s[from:], ">"+markerPrefix)
		if i < 0 {
			return out
		}
		i += from + 1
		j := strings.Index(s[i:], "</ac:parameter>")
		if j < 0 {
			return out
		}
		id := s[i : i+j]
		from = i + j
		name := strings.TrimPrefix(id, markerPrefix)
		if strings.HasSuffix(name, ".end") || !validSectionName(name) {
			continue
		}
		start, beginEnd, ok := findAnchor(s, id, i-1)
		if !ok {
			continue
		}
		_, end, ok := findAnchor(s, id+".end", beginEnd)
		if !ok {
			continue
		}
		out = append(out, section{name, start, end})
		from = end
	}
}

// GeneratedSections names the generated sections a page holds, in order.
// A page opened by an earlier version has none.
func GeneratedSections(storage string) []string {
	var names []string
	for _, sec := range sections(storage) {
		names = append(names, sec.name)
	}
	return names
}

// RefreshPage returns existing with every generated section replaced by the
// same section of fresh (a page rendered now from the merged incident), and
// everything else kept as it is: people's sections, their edits around the
// generated ones, sections they deleted. Refreshing with the same fresh
// page again changes nothing.
func RefreshPage(existing, fresh string) string {
	freshSecs := map[string]string{}
	for _, sec := range sections(fresh) {
		if _, dup := freshSecs[sec.name]; !dup {
			freshSecs[sec.name] = fresh[sec.start:sec.end]
		}
	}
	var b strings.Builder
	last := 0
	for _, sec := range sections(existing) {
		f, ok := freshSecs[sec.name]
		if !ok {
			continue // a section this template no longer renders: keep it
		}
		b.WriteString(existing[last:sec.start])
		b.WriteString(f)
		last = sec.end
	}
	b.WriteString(existing[last:])
	return b.String()
}
