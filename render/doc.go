package render

import (
	"cmp"
	"strings"

	"function/render/adf"
)

// The Jira description is built once, as a small document of blocks, and
// written out as ADF (Jira Cloud) and as wiki markup (Data Center), so that
// the two cannot drift apart.

// span is a piece of inline text.
type span struct {
	text   string
	strong bool
	code   bool   // monospace in ADF; plain in wiki markup
	href   string // a link; only ever an http(s) URL (checked where built)
}

func plain(s string) span           { return span{text: s} }
func bold(s string) span            { return span{text: s, strong: true} }
func mono(s string) span            { return span{text: s, code: true} }
func linked(text, href string) span { return span{text: cmp.Or(text, href), href: href} }

type blockKind int

const (
	bPara blockKind = iota
	bHeading
	bFacts // two columns, names in the first
	bTable // a header row, then rows
	bList  // bullets
	bCode  // preformatted
	bPanel // a coloured box around spans
)

type block struct {
	kind   blockKind
	spans  []span   // bPara, bHeading, bPanel
	facts  []Fact   // bFacts
	header []string // bTable
	rows   [][][]span
	items  [][]span // bList
	code   string   // bCode
	panel  string   // bPanel: "error" or "success"
	title  string   // bPanel title (a fixed word, never event text)
}

func para(spans ...span) block    { return block{kind: bPara, spans: spans} }
func heading(text string) block   { return block{kind: bHeading, spans: []span{plain(text)}} }
func factsTable(fs []Fact) block  { return block{kind: bFacts, facts: fs} }
func list(items ...[]span) block  { return block{kind: bList, items: items} }
func codeBlock(text string) block { return block{kind: bCode, code: text} }

// empty reports whether the block has nothing to show, so that no
// renderer writes an empty heading, table or list.
func (b block) empty() bool {
	switch b.kind {
	case bFacts:
		return len(b.facts) == 0
	case bTable:
		return len(b.rows) == 0
	case bList:
		return len(b.items) == 0
	case bCode:
		return b.code == ""
	}
	for _, s := range b.spans {
		if s.text != "" {
			return false
		}
	}
	return true
}

func spansADF(spans []span) []adf.Node {
	var out []adf.Node
	for _, s := range spans {
		var marks []adf.Mark
		if s.strong {
			marks = append(marks, adf.Strong())
		}
		if s.code {
			marks = append(marks, adf.Code())
		}
		if s.href != "" {
			marks = append(marks, adf.Link(s.href))
		}
		out = append(out, adf.Text(s.text, marks...))
	}
	return out
}

func toADF(blocks []block) adf.Doc {
	var nodes []adf.Node
	for _, b := range blocks {
		if b.empty() {
			continue
		}
		switch b.kind {
		case bPara:
			nodes = append(nodes, adf.Paragraph(spansADF(b.spans)...))
		case bHeading:
			nodes = append(nodes, adf.Heading(3, b.spans[0].text))
		case bPanel:
			nodes = append(nodes, adf.Panel(b.panel, adf.Paragraph(spansADF(b.spans)...)))
		case bFacts:
			var rows []adf.Row
			for _, f := range b.facts {
				rows = append(rows, adf.Row{Name: f.Name, Value: []adf.Node{adf.Text(f.Value)}})
			}
			nodes = append(nodes, adf.FactsTable(rows...))
		case bTable:
			var rows [][][]adf.Node
			for _, r := range b.rows {
				var cells [][]adf.Node
				for _, c := range r {
					cells = append(cells, spansADF(c))
				}
				rows = append(rows, cells)
			}
			nodes = append(nodes, adf.Table(b.header, rows...))
		case bList:
			var items [][]adf.Node
			for _, it := range b.items {
				items = append(items, []adf.Node{adf.Paragraph(spansADF(it)...)})
			}
			nodes = append(nodes, adf.BulletList(items...))
		case bCode:
			nodes = append(nodes, adf.CodeBlock("bash", b.code))
		}
	}
	return adf.NewDoc(nodes...)
}

func spansWiki(spans []span) string {
	var b strings.Builder
	for _, s := range spans {
		if s.text == "" {
			continue
		}
		// Wiki formats must hug their text: "*Message:* x", never
		// "*Message: *x", which Jira shows with the asterisks.
		text := strings.TrimSpace(s.text)
		lead, trail, _ := strings.Cut(s.text, text)
		t := WikiText(text)
		switch {
		case s.href != "":
			t = wikiLink(text, s.href)
			// Code stays plain text in wiki markup: inside {{…}} Jira's
			// handling of the escapes event text needs is not documented.
		}
		if s.strong && text != "" {
			t = "*" + t + "*"
		}
		b.WriteString(WikiText(lead) + t + WikiText(trail))
	}
	return b.String()
}

// panelColours are Jira's own panel backgrounds for the ADF panel types.
var panelColours = map[string]string{"error": "#FFEBE6", "success": "#E3FCEF"}

func toWiki(blocks []block) string {
	var b strings.Builder
	for _, bl := range blocks {
		if bl.empty() {
			continue
		}
		switch bl.kind {
		case bPara:
			b.WriteString(spansWiki(bl.spans) + "\n")
		case bHeading:
			b.WriteString("h3. " + spansWiki(bl.spans) + "\n")
		case bPanel:
			b.WriteString("{panel:title=" + bl.title + "|bgColor=" + panelColours[bl.panel] + "}\n" + spansWiki(bl.spans) + "\n{panel}\n")
		case bFacts:
			for _, f := range bl.facts {
				b.WriteString("||" + WikiText(f.Name) + "|" + WikiText(f.Value) + "|\n")
			}
		case bTable:
			b.WriteString("||")
			for _, h := range bl.header {
				b.WriteString(WikiText(h) + "||")
			}
			b.WriteString("\n")
			for _, r := range bl.rows {
				b.WriteString("|")
				for _, c := range r {
					b.WriteString(spansWiki(c) + "|")
				}
				b.WriteString("\n")
			}
		case bList:
			for _, it := range bl.items {
				b.WriteString("* " + spansWiki(it) + "\n")
			}
		case bCode:
			b.WriteString(wikiCode(bl.code) + "\n")
		}
	}
	return b.String()
}
