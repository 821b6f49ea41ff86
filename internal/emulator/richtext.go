package emulator

// Jira Cloud REST v3 and Jira Data Center REST v2 share one state and one
// set of handlers. They differ in the rich-text format (ADF documents on
// Cloud, wiki-markup strings on Data Center), in the users they show, and
// in the API prefix of their links. Rich text is stored in the format it
// was written in and converted when the other API reads it, as Jira Cloud
// itself does between its v2 and v3 APIs.

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// jiraVer is the Jira REST API generation a request uses.
type jiraVer struct {
	prefix string // "/rest/api/3" or "/rest/api/2"
	dc     bool   // Data Center: wiki markup, DC users
}

var (
	jiraV3 = jiraVer{prefix: "/rest/api/3"}
	jiraV2 = jiraVer{prefix: "/rest/api/2", dc: true}
)

// jiraVerOf tells a Data Center v2 request from a Cloud v3 one.
func jiraVerOf(r *http.Request) jiraVer {
	if strings.HasPrefix(r.URL.Path, jiraV2.prefix+"/") {
		return jiraV2
	}
	return jiraV3
}

// msgNotString is what Jira answers for a non-string value in a string
// field, e.g. an ADF description sent to Data Center.
const msgNotString = "Operation value must be a string"

// richText is a description or comment body: ADF written over v3, or wiki
// markup written over v2. The zero value means unset.
type richText struct {
	adf    json.RawMessage // compact ADF; nil when wiki
	wiki   string
	isWiki bool
}

func (rt richText) isSet() bool { return rt.isWiki || rt.adf != nil }

// v3 returns the value for a v3 (ADF) reader: the stored ADF, or wiki
// markup converted to a plain ADF document.
func (rt richText) v3() json.RawMessage {
	if rt.isWiki {
		return wikiToADF(rt.wiki)
	}
	return rt.adf
}

// v2 returns the value for a v2 (wiki markup) reader: the stored markup,
// or ADF converted to wiki markup.
func (rt richText) v2() string {
	if rt.isWiki {
		return rt.wiki
	}
	return adfToWiki(rt.adf)
}

// value returns the wire value for v: ADF or a string, or nil when unset.
func (rt richText) value(v jiraVer) any {
	if !rt.isSet() {
		return nil
	}
	if v.dc {
		return rt.v2()
	}
	return rt.v3()
}

// validateRichText checks a rich-text field value as API version v does,
// returning Jira's message for errors[field], or "" when the value is
// valid. The error is for internal failures only.
func (e *Emulator) validateRichText(raw json.RawMessage, v jiraVer) (richText, string, error) {
	if v.dc {
		s, ok := rawString(raw)
		if !ok {
			return richText{}, msgNotString, nil
		}
		return richText{wiki: s, isWiki: true}, "", nil
	}
	msg, err := validateADF(raw, e.skipADFSchema.Load())
	if err != nil || msg != "" {
		return richText{}, msg, err
	}
	return richText{adf: compactJSON(raw)}, "", nil
}

// wikiToADF converts wiki markup to a plain ADF document: "hN." lines
// become headings, other text paragraphs (split at blank lines, lines
// joined by hard breaks). Inline markup is kept as literal text.
func wikiToADF(s string) json.RawMessage {
	type node = map[string]any
	content := []any{}
	var para []any
	flush := func() {
		if len(para) > 0 {
			content = append(content, node{"type": "paragraph", "content": para})
			para = nil
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			flush()
			continue
		}
		if lvl, text, ok := wikiHeading(trimmed); ok {
			flush()
			h := node{"type": "heading", "attrs": node{"level": lvl}}
			if text != "" {
				h["content"] = []any{node{"type": "text", "text": text}}
			}
			content = append(content, h)
			continue
		}
		if len(para) > 0 {
			para = append(para, node{"type": "hardBreak"})
		}
		para = append(para, node{"type": "text", "text": line})
	}
	flush()
	b, _ := json.Marshal(node{"type": "doc", "version": 1, "content": content})
	return b
}

// wikiHeading parses "hN. text".
func wikiHeading(line string) (int, string, bool) {
	if len(line) >= 3 && line[0] == 'h' && line[1] >= '1' && line[1] <= '6' && line[2] == '.' &&
		(len(line) == 3 || line[3] == ' ') {
		return int(line[1] - '0'), strings.TrimSpace(line[3:]), true
	}
	return 0, "", false
}

// adfToWiki converts an ADF document to wiki markup, roughly as Jira
// Cloud's v2 API renders ADF fields.
func adfToWiki(raw json.RawMessage) string {
	var doc any
	if len(raw) == 0 || json.Unmarshal(raw, &doc) != nil {
		return ""
	}
	var blocks []string
	adfWikiBlocks(doc, "", &blocks)
	return strings.Join(blocks, "\n")
}

func adfContent(n map[string]any) []any {
	c, _ := n["content"].([]any)
	return c
}

// adfWikiBlocks appends the wiki lines of node v; list is the list marker
// prefix of the enclosing lists ("*", "**", "#").
func adfWikiBlocks(v any, list string, out *[]string) {
	n, ok := v.(map[string]any)
	if !ok {
		return
	}
	children := func(list string) {
		for _, c := range adfContent(n) {
			adfWikiBlocks(c, list, out)
		}
	}
	switch adfString(n, "type") {
	case "doc", "blockquote", "layoutSection", "layoutColumn", "expand", "nestedExpand":
		children(list)
	case "paragraph":
		text := adfWikiInline(n)
		if list != "" {
			text = list + " " + text
		}
		*out = append(*out, text)
	case "heading":
		level, _ := adfAttrs(n)["level"].(float64)
		*out = append(*out, "h"+strconv.Itoa(min(max(int(level), 1), 6))+". "+adfWikiInline(n))
	case "bulletList":
		children(list + "*")
	case "orderedList":
		children(list + "#")
	case "listItem":
		children(list)
	case "codeBlock":
		*out = append(*out, "{code}", adfPlainText(n), "{code}")
	case "panel":
		*out = append(*out, "{panel}")
		children("")
		*out = append(*out, "{panel}")
	case "rule":
		*out = append(*out, "----")
	case "table":
		for _, row := range adfContent(n) {
			rn, _ := row.(map[string]any)
			var sb strings.Builder
			sep := "|"
			for _, cell := range adfContent(rn) {
				cn, _ := cell.(map[string]any)
				sep = "|"
				if adfString(cn, "type") == "tableHeader" {
					sep = "||"
				}
				var parts []string
				for _, p := range adfContent(cn) {
					pn, _ := p.(map[string]any)
					parts = append(parts, adfWikiInline(pn))
				}
				sb.WriteString(sep + strings.Join(parts, " "))
			}
			sb.WriteString(sep)
			*out = append(*out, sb.String())
		}
	default:
		if t := adfPlainText(n); t != "" {
			*out = append(*out, t)
		}
	}
}

// adfWikiInline renders the inline content of a block node as wiki markup.
func adfWikiInline(n map[string]any) string {
	var sb strings.Builder
	for _, c := range adfContent(n) {
		cn, ok := c.(map[string]any)
		if !ok {
			continue
		}
		attrs := adfAttrs(cn)
		switch adfString(cn, "type") {
		case "text":
			text := adfString(cn, "text")
			// Marks wrap the text without its surrounding spaces: wiki
			// markup does not open "*" before a space.
			core := strings.TrimSpace(text)
			lead := text[:strings.Index(text, core)]
			trail := text[len(lead)+len(core):]
			text = core
			marks, _ := cn["marks"].([]any)
			if core == "" {
				marks = nil
			}
			for _, m := range marks {
				mark, _ := m.(map[string]any)
				switch adfString(mark, "type") {
				case "strong":
					text = "*" + text + "*"
				case "em":
					text = "_" + text + "_"
				case "code":
					text = "{{" + text + "}}"
				case "link":
					text = "[" + text + "|" + adfString(adfAttrs(mark), "href") + "]"
				}
			}
			sb.WriteString(lead + text + trail)
		case "hardBreak":
			sb.WriteString("\n")
		case "inlineCard":
			sb.WriteString("[" + adfString(attrs, "url") + "]")
		case "status":
			sb.WriteString(adfString(attrs, "text"))
		default:
			sb.WriteString(adfPlainText(cn))
		}
	}
	return sb.String()
}
