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

// anchor is a marker found in a page: the macro itself, and the paragraph
// around it if there is one.
type anchor struct {
	id                   string // the anchor's name, e.g. rollback-incident.fault
	macroStart, macroEnd int
	paraStart, paraEnd   int // -1 when the macro stands outside a paragraph
}

// cursor finds the next occurrence of a string at or after a position that
// only grows, scanning each part of the page at most once: the page is
// whatever people and editors made of it, and must not cost quadratic time.
type cursor struct {
	s, sub string
	at     int // the last answer: the occurrence at or after the last position asked, or -1
	from   int // the position the last answer was searched from
}

func newCursor(s, sub string) *cursor { return &cursor{s: s, sub: sub, at: -2} }

func (c *cursor) next(pos int) int {
	if c.at == -1 && pos >= c.from || c.at >= pos && pos >= c.from {
		return c.at
	}
	c.from = pos
	if i := strings.Index(c.s[pos:], c.sub); i >= 0 {
		c.at = pos + i
	} else {
		c.at = -1
	}
	return c.at
}

// anchors lists the markers of a page in order, in one pass.
func anchors(s string) []anchor {
	var out []anchor
	closes := newCursor(s, "</ac:structured-macro>")
	pCloses := newCursor(s, "</p>")
	lastOpen, lastClose, scanned := -1, -1, 0 // paragraph tags before scanned
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], "<ac:structured-macro")
		if k < 0 {
			break
		}
		ms := i + k
		gt := strings.IndexByte(s[ms:], '>')
		if gt < 0 {
			break
		}
		i = ms + gt + 1
		if tag := s[ms:i]; !strings.Contains(tag, `ac:name="anchor"`) || strings.HasSuffix(tag, "/>") {
			continue
		}
		c := closes.next(i)
		if c < 0 {
			break
		}
		body := s[i:c]
		if strings.Contains(body, "<ac:structured-macro") {
			continue // not an anchor as this package writes them
		}
		p := strings.Index(body, ">"+markerPrefix)
		if p < 0 {
			continue
		}
		id, _, ok := strings.Cut(body[p+1:], "</ac:parameter>")
		if !ok {
			continue
		}
		a := anchor{id: id, macroStart: ms, macroEnd: c + len("</ac:structured-macro>"), paraStart: -1, paraEnd: -1}
		i = a.macroEnd
		// Inside a paragraph when the last paragraph tag before the macro
		// opens one (paragraphs do not nest); the editor may put text of
		// a person's beside the anchor in it.
		lastOpen, lastClose = paragraphTags(s, scanned, ms, lastOpen, lastClose)
		scanned = ms
		if lastOpen > lastClose {
			if e := pCloses.next(a.macroEnd); e >= 0 {
				a.paraStart, a.paraEnd = lastOpen, e+len("</p>")
			}
		}
		out = append(out, a)
	}
	return out
}

// paragraphTags advances the last "<p>"/"<p …>" and "</p>" positions over
// s[from:to].
func paragraphTags(s string, from, to, lastOpen, lastClose int) (int, int) {
	for j := from; j < to; {
		k := strings.Index(s[j:to], "<")
		if k < 0 {
			break
		}
		j += k
		switch {
		case strings.HasPrefix(s[j:], "</p>"):
			lastClose = j
		case strings.HasPrefix(s[j:], "<p>") || strings.HasPrefix(s[j:], "<p ") || strings.HasPrefix(s[j:], "<p\n") || strings.HasPrefix(s[j:], "<p\t"):
			lastOpen = j
		}
		j++
	}
	return lastOpen, lastClose
}

// maxOpenSections bounds the begin markers of distinct names awaiting
// their end: a template has a handful of sections, and each pending one
// may cost a pass over the page when its end comes.
const maxOpenSections = 32

// sections lists the generated sections of a page in order: each end
// marker with the nearest begin marker of its name before it (so that a
// begin marker a person copied elsewhere widens nothing). A begin marker
// without its end is no section, nor is one whose content is not balanced
// markup (a marker a person moved into a table, say): the function does not
// touch what it cannot replace whole.
func sections(s string) []section {
	var out []section
	begins := map[string]anchor{} // the last begin marker seen, per name, since the last section
	for _, a := range anchors(s) {
		name := strings.TrimPrefix(a.id, markerPrefix)
		base, isEnd := strings.CutSuffix(name, ".end")
		if !validSectionName(base) {
			continue
		}
		if !isEnd {
			if _, seen := begins[name]; seen || len(begins) < maxOpenSections {
				begins[name] = a
			}
			continue
		}
		begin, ok := begins[base]
		if !ok {
			continue
		}
		sec := section{name: base, start: begin.macroStart, end: a.macroEnd, innerStart: begin.macroEnd, innerEnd: a.macroStart}
		if begin.paraStart >= 0 {
			sec.start, sec.innerStart = begin.paraStart, begin.paraEnd
		}
		if a.paraStart >= 0 {
			sec.end, sec.innerEnd = a.paraEnd, a.paraStart
		}
		if sec.innerStart > sec.innerEnd || !balanced(s[sec.innerStart:sec.innerEnd]) {
			delete(begins, base)
			continue
		}
		// Sections do not overlap: a begin marker before this one's end
		// belongs to no later section.
		clear(begins)
		if n := len(out); n > 0 && out[n-1].end > sec.start {
			continue
		}
		out = append(out, sec)
	}
	return out
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
