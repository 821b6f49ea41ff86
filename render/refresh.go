package render

import (
	"encoding/xml"
	"fmt"
	htmltemplate "html/template"
	"io"
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
// and keeps everything else byte for byte, the anchors included. Decisions:
//   - text a person types inside a generated section is replaced on the next
//     update (the page's intro says so);
//   - a section a person deleted together with its anchors stays deleted: the
//     function never re-adds a section the page does not have (the Jira issue
//     still carries every fact); one whose anchors remain is regenerated;
//   - text a person types beside an anchor (in its paragraph) stays, and so
//     do the anchors, with whatever ids the editor gave them;
//   - a section whose content is not balanced markup on its own (an anchor
//     moved into a table cell, say) is left alone rather than broken;
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
// both markers, s[innerStart:innerEnd] what lies between them.
type section struct {
	name                 string
	start, end           int
	innerStart, innerEnd int
}

// anchor is where an anchor macro sits: the macro itself, and the
// paragraph around it if there is one.
type anchor struct {
	macroStart, macroEnd int
	paraStart, paraEnd   int // -1 when the macro stands outside a paragraph
}

// findAnchor finds the anchor macro named id at or after from.
func findAnchor(s, id string, from int) (anchor, bool) {
	needle := ">" + id + "</ac:parameter>"
	for from < len(s) {
		i := strings.Index(s[from:], needle)
		if i < 0 {
			return anchor{}, false
		}
		i += from
		from = i + len(needle)
		ms := strings.LastIndex(s[:i], "<ac:structured-macro")
		if ms < 0 || !strings.Contains(s[ms:i], `ac:name="anchor"`) || strings.Contains(s[ms:i], "</ac:structured-macro>") {
			continue
		}
		me := strings.Index(s[i:], "</ac:structured-macro>")
		if me < 0 {
			return anchor{}, false
		}
		a := anchor{macroStart: ms, macroEnd: i + me + len("</ac:structured-macro>"), paraStart: -1, paraEnd: -1}
		// Inside a paragraph when the last paragraph tag before the macro
		// opens one (paragraphs do not nest); the editor may put text of
		// a person's beside the anchor in it.
		open, closed := lastParagraphOpen(s[:ms]), strings.LastIndex(s[:ms], "</p>")
		if open > closed {
			if c := strings.Index(s[a.macroEnd:], "</p>"); c >= 0 {
				a.paraStart, a.paraEnd = open, a.macroEnd+c+len("</p>")
			}
		}
		return a, true
	}
	return anchor{}, false
}

// lastParagraphOpen is the index of the last "<p>" or "<p …>" tag in s, or -1.
func lastParagraphOpen(s string) int {
	for end := len(s); ; {
		i := strings.LastIndex(s[:end], "<p")
		if i < 0 || i+2 >= len(s) {
			return -1
		}
		if c := s[i+2]; c == '>' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			return i
		}
		end = i
	}
}

// sections lists the generated sections of a page in order. A begin marker
// without its end marker after it is no section, nor is one whose content
// is not balanced markup (a marker a person moved into a table, say): the
// function does not touch what it cannot replace whole.
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
		begin, ok := findAnchor(s, id, i-1)
		if !ok {
			continue
		}
		end, ok := findAnchor(s, id+".end", begin.macroEnd)
		if !ok {
			continue
		}
		sec := section{name: name, start: begin.macroStart, end: end.macroEnd, innerStart: begin.macroEnd, innerEnd: end.macroStart}
		if begin.paraStart >= 0 {
			sec.start, sec.innerStart = begin.paraStart, begin.paraEnd
		}
		if end.paraStart >= 0 {
			sec.end, sec.innerEnd = end.paraEnd, end.paraStart
		}
		if sec.innerStart > sec.innerEnd || !balanced(s[sec.innerStart:sec.innerEnd]) {
			from = end.macroEnd
			continue
		}
		out = append(out, sec)
		from = sec.end
	}
}

// balanced reports whether a storage fragment is well-formed on its own:
// every element it opens, it closes.
func balanced(fragment string) bool {
	d := xml.NewDecoder(strings.NewReader(`<r xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier">` + fragment + `</r>`))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	for {
		if _, err := d.Token(); err != nil {
			return err == io.EOF
		}
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

// RefreshPage returns existing with the content of every generated section
// replaced by the same section's content in fresh (a page rendered now from
// the merged incident), and everything else kept as it is: people's
// sections, their edits around the generated ones, sections they deleted,
// the anchors themselves (with whatever ids the editor gave them).
// Refreshing with the same fresh page again changes nothing.
func RefreshPage(existing, fresh string) string {
	freshInner := map[string]string{}
	for _, sec := range sections(fresh) {
		if _, dup := freshInner[sec.name]; !dup {
			freshInner[sec.name] = fresh[sec.innerStart:sec.innerEnd]
		}
	}
	var b strings.Builder
	last := 0
	for _, sec := range sections(existing) {
		f, ok := freshInner[sec.name]
		if !ok {
			continue // a section this template no longer renders: keep it
		}
		b.WriteString(existing[last:sec.innerStart])
		b.WriteString(f)
		last = sec.innerEnd
	}
	b.WriteString(existing[last:])
	return b.String()
}
