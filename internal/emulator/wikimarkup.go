package emulator

// A renderer for the subset of Jira wiki markup (Data Center's rich-text
// format) that people actually send, so that the HTML view shows issues
// created over /rest/api/2 readably:
//
//	h1. – h6.          headings
//	*bold* _italic_    inline emphasis, {{monospace}}
//	[text|url] [url]   links, rendered only for http(s) URLs
//	* item, # item     bullet and numbered lists, nested by repeating
//	||th||th||, |td|   tables
//	{code}, {noformat} preformatted blocks (with or without :parameters)
//	{panel:title=T}    panels, whose content is rendered recursively
//	bq. text, ----     quotes and rules
//
// Everything else is text. Like the ADF and storage renderers, it only
// ever emits constant markup and escaped text.

import (
	"html/template"
	"strings"
	"unicode"
	"unicode/utf8"
)

// wikiToHTML renders wiki markup as safe HTML.
func wikiToHTML(s string) template.HTML {
	var hw htmlWriter
	hw.wikiBlocks(strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n"), 0)
	// The builder only ever receives escaped text and constant markup.
	return template.HTML(hw.String())
}

// maxWikiDepth bounds panel nesting.
const maxWikiDepth = 8

// wikiMacro parses a block macro opening "{name}" or "{name:params}" at the
// start of line, returning the name, its parameters and the rest of the
// line after the closing brace.
func wikiMacro(line string, names ...string) (name string, params map[string]string, rest string, ok bool) {
	for _, n := range names {
		if !strings.HasPrefix(line, "{"+n) {
			continue
		}
		after := line[len(n)+1:]
		if !strings.HasPrefix(after, "}") && !strings.HasPrefix(after, ":") {
			continue
		}
		end := strings.IndexByte(after, '}')
		if end < 0 {
			return "", nil, "", false
		}
		params = map[string]string{}
		if strings.HasPrefix(after, ":") {
			for _, kv := range strings.Split(after[1:end], "|") {
				k, v, _ := strings.Cut(kv, "=")
				params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		return n, params, after[end+1:], true
	}
	return "", nil, "", false
}

// wikiCollect gathers the body of a block macro that opened with rest on
// its first line: the lines up to the closing "{name}". It returns the
// body lines, the text after the closing tag (to be rendered as a line of
// its own) and the index of the next unread line.
func wikiCollect(lines []string, i int, name, rest string) (body []string, after string, next int) {
	closing := "{" + name + "}"
	if j := strings.Index(rest, closing); j >= 0 {
		return []string{rest[:j]}, rest[j+len(closing):], i
	}
	if rest != "" {
		body = append(body, rest)
	}
	for ; i < len(lines); i++ {
		if j := strings.Index(lines[i], closing); j >= 0 {
			if lines[i][:j] != "" {
				body = append(body, lines[i][:j])
			}
			return body, lines[i][j+len(closing):], i + 1
		}
		body = append(body, lines[i])
	}
	return body, "", i // unclosed: the rest of the text
}

func (hw *htmlWriter) wikiBlocks(lines []string, depth int) {
	var para []string
	flushPara := func() {
		if len(para) == 0 {
			return
		}
		hw.tag("<p>")
		for i, l := range para {
			if i > 0 {
				hw.tag("<br>")
			}
			hw.wikiInline(l)
		}
		hw.tag("</p>")
		para = nil
	}
	var lists []string // open list tags, outermost first
	closeLists := func(to int) {
		for len(lists) > to {
			hw.tag("</li></" + lists[len(lists)-1] + ">")
			lists = lists[:len(lists)-1]
		}
	}
	var table [][]string // pending table rows, raw
	flushTable := func() {
		if len(table) == 0 {
			return
		}
		hw.tag(`<table class="grid"><tbody>`)
		for _, row := range table {
			hw.wikiTableRow(row)
		}
		hw.tag("</tbody></table>")
		table = nil
	}
	flushAll := func() {
		flushPara()
		closeLists(0)
		flushTable()
	}

	for i := 0; i < len(lines); {
		line := strings.TrimSpace(lines[i])
		i++
		if name, params, rest, ok := wikiMacro(line, "code", "noformat", "panel"); ok {
			flushAll()
			body, after, next := wikiCollect(lines, i, name, rest)
			i = next
			if name == "panel" && depth < maxWikiDepth {
				hw.panel("panel", params["title"], func() { hw.wikiBlocks(body, depth+1) })
			} else {
				hw.tag("<pre><code>")
				hw.text(strings.Trim(strings.Join(body, "\n"), "\n"))
				hw.tag("</code></pre>")
			}
			if strings.TrimSpace(after) != "" {
				// Render what follows the closing tag as a line of its own.
				lines = append(lines[:i:i], append([]string{after}, lines[i:]...)...)
			}
			continue
		}
		if strings.HasPrefix(line, "|") {
			flushPara()
			closeLists(0)
			table = append(table, []string{line})
			continue
		}
		flushTable()
		if line == "" {
			flushPara()
			closeLists(0)
			continue
		}
		if marker, text, ok := wikiListItem(line); ok {
			flushPara()
			level := len(marker)
			tag := "ul"
			if marker[level-1] == '#' {
				tag = "ol"
			}
			switch {
			case level > len(lists):
				for len(lists) < level {
					hw.tag("<" + tag + "><li>")
					lists = append(lists, tag)
				}
			default:
				closeLists(level)
				if lists[level-1] != tag {
					closeLists(level - 1)
					hw.tag("<" + tag + "><li>")
					lists = append(lists, tag)
				} else {
					hw.tag("</li><li>")
				}
			}
			hw.wikiInline(text)
			continue
		}
		closeLists(0)
		if lvl, text, ok := wikiHeading(line); ok {
			flushPara()
			h := "h" + string(rune('0'+lvl))
			hw.tag("<" + h + ">")
			hw.wikiInline(text)
			hw.tag("</" + h + ">")
			continue
		}
		if strings.HasPrefix(line, "bq. ") {
			flushPara()
			hw.tag("<blockquote>")
			hw.wikiInline(strings.TrimSpace(line[4:]))
			hw.tag("</blockquote>")
			continue
		}
		if line == "----" {
			flushPara()
			hw.tag("<hr>")
			continue
		}
		para = append(para, line)
	}
	flushAll()
}

// wikiListItem parses "* text", "** text", "# text" and mixed markers
// such as "#* text".
func wikiListItem(line string) (marker, text string, ok bool) {
	n := 0
	for n < len(line) && (line[n] == '*' || line[n] == '#') {
		n++
	}
	if n == 0 || n >= len(line) || line[n] != ' ' {
		return "", "", false
	}
	return line[:n], strings.TrimSpace(line[n:]), true
}

// wikiTableRow renders "||a||b||" (header cells) or "|a|b|" (cells).
func (hw *htmlWriter) wikiTableRow(row []string) {
	line := row[0]
	hw.tag("<tr>")
	for _, cell := range splitWikiCells(line) {
		tag := "td"
		if cell.header {
			tag = "th"
		}
		hw.tag("<" + tag + ">")
		hw.wikiInline(strings.TrimSpace(cell.text))
		hw.tag("</" + tag + ">")
	}
	hw.tag("</tr>")
}

type wikiCell struct {
	header bool
	text   string
}

// splitWikiCells splits a table line at | and || outside [links] and
// {{monospace}}.
func splitWikiCells(line string) []wikiCell {
	var cells []wikiCell
	var cur *wikiCell
	bracket, mono := 0, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case strings.HasPrefix(line[i:], "{{"):
			mono = true
		case strings.HasPrefix(line[i:], "}}"):
			mono = false
		case c == '[' && !mono:
			bracket++
		case c == ']' && bracket > 0 && !mono:
			bracket--
		case c == '|' && bracket == 0 && !mono:
			header := i+1 < len(line) && line[i+1] == '|'
			if header {
				i++
			}
			cells = append(cells, wikiCell{header: header})
			cur = &cells[len(cells)-1]
			continue
		}
		if cur != nil {
			cur.text += string(c)
		}
	}
	// The closing | of the row opens an empty last cell; drop it.
	if n := len(cells); n > 0 && strings.TrimSpace(cells[n-1].text) == "" {
		cells = cells[:n-1]
	}
	return cells
}

// wikiInline renders inline markup: *bold*, _italic_, {{monospace}} and
// [text|url] links; everything else is escaped text.
func (hw *htmlWriter) wikiInline(s string) {
	var lit strings.Builder
	flush := func() {
		hw.text(lit.String())
		lit.Reset()
	}
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "{{"):
			if j := strings.Index(s[i+2:], "}}"); j > 0 {
				flush()
				hw.tag("<code>")
				hw.text(s[i+2 : i+2+j])
				hw.tag("</code>")
				i += j + 4
				continue
			}
		case s[i] == '[':
			if j := strings.IndexByte(s[i:], ']'); j > 1 {
				flush()
				hw.wikiLink(s[i+1 : i+j])
				i += j + 1
				continue
			}
		case s[i] == '*' || s[i] == '_':
			if j := wikiSpanEnd(s, i); j > 0 {
				flush()
				tag := "strong"
				if s[i] == '_' {
					tag = "em"
				}
				hw.tag("<" + tag + ">")
				hw.wikiInline(s[i+1 : j])
				hw.tag("</" + tag + ">")
				i = j + 1
				continue
			}
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		lit.WriteRune(r)
		i += n
	}
	flush()
}

// wikiSpanEnd finds the closing delimiter of a *bold* or _italic_ span
// opening at i: the opener must not follow a word character nor precede
// a space, and the closer must not follow a space nor precede a word
// character. It returns -1 if there is none.
func wikiSpanEnd(s string, i int) int {
	d := s[i]
	if i > 0 {
		if r, _ := utf8.DecodeLastRuneInString(s[:i]); isAlnum(r) {
			return -1
		}
	}
	if i+1 >= len(s) || s[i+1] == ' ' || s[i+1] == d {
		return -1
	}
	for j := i + 2; j < len(s); j++ {
		if s[j] != d || s[j-1] == ' ' {
			continue
		}
		if j+1 < len(s) {
			if r, _ := utf8.DecodeRuneInString(s[j+1:]); isAlnum(r) {
				continue
			}
		}
		return j
	}
	return -1
}

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// wikiLink renders the inside of [...]: "text|url", "url" or anything else
// as literal text. Only http(s) URLs become links.
func (hw *htmlWriter) wikiLink(inner string) {
	text, href, hasText := strings.Cut(inner, "|")
	if !hasText {
		href = inner
	}
	href = strings.TrimSpace(href)
	if safeURL(href) {
		if !hasText {
			text = href
		}
		hw.tag("<a")
		hw.attr("href", href)
		hw.tag(` rel="noopener noreferrer">`)
		hw.wikiInline(text)
		hw.tag("</a>")
		return
	}
	if hasText {
		// An unsafe or non-URL target: keep the words, drop the link.
		hw.wikiInline(text)
		return
	}
	hw.text("[" + inner + "]")
}
