// Package adf builds Atlassian Document Format documents structurally. Text
// goes into text nodes and never into markup, so event text cannot change a
// document's structure. The builders drop empty text, which ADF forbids.
package adf

// Doc is an ADF document (version 1).
type Doc struct {
	Version int    `json:"version"`
	Type    string `json:"type"`
	Content []Node `json:"content"`
}

// Node is any ADF node.
type Node struct {
	Type    string         `json:"type"`
	Attrs   map[string]any `json:"attrs,omitempty"`
	Content []Node         `json:"content,omitempty"`
	Text    string         `json:"text,omitempty"`
	Marks   []Mark         `json:"marks,omitempty"`
}

// Mark formats a text node.
type Mark struct {
	Type  string         `json:"type"`
	Attrs map[string]any `json:"attrs,omitempty"`
}

// NewDoc returns a document of the non-empty blocks.
func NewDoc(blocks ...Node) Doc {
	return Doc{Version: 1, Type: "doc", Content: nonEmpty(blocks)}
}

// nonEmpty drops zero nodes, which builders return for empty input.
func nonEmpty(nodes []Node) []Node {
	out := make([]Node, 0, len(nodes))
	for _, n := range nodes {
		if n.Type != "" {
			out = append(out, n)
		}
	}
	return out
}

// Text is plain text; empty text yields no node.
func Text(s string, marks ...Mark) Node {
	if s == "" {
		return Node{}
	}
	return Node{Type: "text", Text: s, Marks: marks}
}

// Strong, Code and Link are text marks.
func Strong() Mark { return Mark{Type: "strong"} }
func Code() Mark   { return Mark{Type: "code"} }
func Link(href string) Mark {
	return Mark{Type: "link", Attrs: map[string]any{"href": href}}
}

// Paragraph holds inline nodes; with none it yields no node.
func Paragraph(inline ...Node) Node {
	c := nonEmpty(inline)
	if len(c) == 0 {
		return Node{}
	}
	return Node{Type: "paragraph", Content: c}
}

// Heading of level 1 to 6.
func Heading(level int, text string) Node {
	t := Text(text)
	if t.Type == "" {
		return Node{}
	}
	return Node{Type: "heading", Attrs: map[string]any{"level": level}, Content: []Node{t}}
}

// Panel of type info, note, tip, warning, error or success.
func Panel(panelType string, blocks ...Node) Node {
	c := nonEmpty(blocks)
	if len(c) == 0 {
		return Node{}
	}
	return Node{Type: "panel", Attrs: map[string]any{"panelType": panelType}, Content: c}
}

// BulletList of items, each item a list of blocks; empty items are dropped.
func BulletList(items ...[]Node) Node {
	var li []Node
	for _, blocks := range items {
		if c := nonEmpty(blocks); len(c) > 0 {
			li = append(li, Node{Type: "listItem", Content: c})
		}
	}
	if len(li) == 0 {
		return Node{}
	}
	return Node{Type: "bulletList", Content: li}
}

// Row is one row of a two-column facts table.
type Row struct {
	Name  string
	Value []Node // inline nodes
}

// FactsTable is a two-column table of name → value; rows without a value
// are left out, and no rows yield no node.
func FactsTable(rows ...Row) Node {
	var trs []Node
	for _, r := range rows {
		v := nonEmpty(r.Value)
		if len(v) == 0 {
			continue
		}
		trs = append(trs, Node{Type: "tableRow", Content: []Node{
			{Type: "tableHeader", Content: []Node{Paragraph(Text(r.Name, Strong()))}},
			{Type: "tableCell", Content: []Node{{Type: "paragraph", Content: v}}},
		}})
	}
	if len(trs) == 0 {
		return Node{}
	}
	return Node{Type: "table", Attrs: map[string]any{"isNumberColumnEnabled": false, "layout": "default"}, Content: trs}
}

// CodeBlock is preformatted text, e.g. commands to copy; language may be
// empty. Empty text yields no node.
func CodeBlock(language, text string) Node {
	if text == "" {
		return Node{}
	}
	n := Node{Type: "codeBlock", Content: []Node{{Type: "text", Text: text}}}
	if language != "" {
		n.Attrs = map[string]any{"language": language}
	}
	return n
}

// Table is a table with a header row; each cell is a list of inline
// nodes. A cell without content holds an empty paragraph, which ADF
// allows; rows shorter than the header are padded so that every row has
// the header's width.
func Table(header []string, rows ...[][]Node) Node {
	if len(rows) == 0 {
		return Node{}
	}
	cell := func(typ string, inline []Node) Node {
		p := Node{Type: "paragraph", Content: nonEmpty(inline)}
		return Node{Type: typ, Content: []Node{p}}
	}
	var head []Node
	for _, h := range header {
		head = append(head, cell("tableHeader", []Node{Text(h, Strong())}))
	}
	trs := []Node{{Type: "tableRow", Content: head}}
	for _, r := range rows {
		var cells []Node
		for i := range header {
			var inline []Node
			if i < len(r) {
				inline = r[i]
			}
			cells = append(cells, cell("tableCell", inline))
		}
		trs = append(trs, Node{Type: "tableRow", Content: cells})
	}
	return Node{Type: "table", Attrs: map[string]any{"isNumberColumnEnabled": false, "layout": "default"}, Content: trs}
}
