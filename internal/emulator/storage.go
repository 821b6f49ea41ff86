package emulator

import (
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"strings"
)

// Confluence storage format is an XML dialect of XHTML with ac: (macros,
// links) and ri: (resource identifiers) elements. A body is a root-less
// fragment, so it is parsed inside a wrapper element that declares both
// namespaces.
const (
	acNS = "http://atlassian.com/content"
	riNS = "http://atlassian.com/resource/identifier"

	storageOpen  = `<root xmlns:ac="` + acNS + `" xmlns:ri="` + riNS + `">`
	storageClose = `</root>`
)

// xnode is a parsed storage element or text node.
type xnode struct {
	name     xml.Name
	attrs    []xml.Attr
	children []*xnode
	text     string
	isText   bool
}

// validateStorage rejects bodies Confluence would reject: malformed XML
// (with the parser's message) and <script> elements, which Confluence
// never stores; rejecting them lets tests prove that callers escape text.
func validateStorage(body string) error {
	_, err := parseStorage(body)
	return err
}

func parseStorage(body string) (*xnode, error) {
	dec := xml.NewDecoder(strings.NewReader(storageOpen + body + storageClose))
	dec.Strict = true
	dec.Entity = xml.HTMLEntity // Confluence accepts &nbsp; and friends.
	var root *xnode
	var stack []*xnode
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("Error parsing xhtml: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, errors.New("Error parsing xhtml: content after the end of the body (stray closing tag?)")
			}
			if t.Name.Space == "" && strings.EqualFold(t.Name.Local, "script") {
				return nil, errors.New("Error parsing xhtml: script elements are not allowed in storage format")
			}
			t = t.Copy()
			n := &xnode{name: t.Name, attrs: t.Attr}
			if root == nil {
				root = n
			} else {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if strings.TrimSpace(string(t)) != "" {
					return nil, errors.New("Error parsing xhtml: content after the end of the body (stray closing tag?)")
				}
				continue
			}
			parent := stack[len(stack)-1]
			parent.children = append(parent.children, &xnode{text: string(t), isText: true})
		}
		// Comments, processing instructions and directives carry no
		// content worth keeping.
	}
	if root == nil {
		return nil, errors.New("Error parsing xhtml: empty document")
	}
	return root, nil
}

// storageToHTML converts a storage body into safe HTML: a whitelist of
// tags without attributes (except http(s) links and table spans), a few
// macros rendered natively, everything else reduced to its text, and all
// text escaped.
func storageToHTML(body string) (template.HTML, error) {
	root, err := parseStorage(body)
	if err != nil {
		return "", err
	}
	var hw htmlWriter
	hw.nodes(root.children)
	// The builder only ever receives escaped text and constant markup.
	return template.HTML(hw.String()), nil
}

// htmlWriter accumulates HTML; text goes through text() (escaped), markup
// through tag() with constant names only.
type htmlWriter struct {
	strings.Builder
}

func (hw *htmlWriter) text(s string) { hw.WriteString(template.HTMLEscapeString(s)) }

func (hw *htmlWriter) tag(s string) { hw.WriteString(s) }

// attr writes ` name="value"` with the value escaped.
func (hw *htmlWriter) attr(name, value string) {
	hw.WriteString(" " + name + `="` + template.HTMLEscapeString(value) + `"`)
}

// allowedTag maps a storage element to the HTML tag it is rendered as, if
// it is on the whitelist.
func allowedTag(name string) (string, bool) {
	switch name {
	case "p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tbody", "thead", "tr", "th", "td",
		"ul", "ol", "li", "strong", "em", "code", "pre", "a", "br", "hr", "blockquote", "span":
		return name, true
	case "b":
		return "strong", true
	case "i":
		return "em", true
	}
	return "", false
}

// safeURL reports whether href may be rendered as a link.
func safeURL(href string) bool {
	u, err := url.Parse(strings.TrimSpace(href))
	if err != nil {
		return false
	}
	s := strings.ToLower(u.Scheme)
	return (s == "http" || s == "https") && u.Host != ""
}

func attrValue(n *xnode, space, local string) string {
	for _, a := range n.attrs {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func textContent(n *xnode) string {
	if n == nil {
		return ""
	}
	if n.isText {
		return n.text
	}
	var sb strings.Builder
	for _, c := range n.children {
		sb.WriteString(textContent(c))
	}
	return sb.String()
}

func child(n *xnode, space, local string) *xnode {
	for _, c := range n.children {
		if !c.isText && c.name.Space == space && c.name.Local == local {
			return c
		}
	}
	return nil
}

func (hw *htmlWriter) nodes(ns []*xnode) {
	for _, n := range ns {
		hw.node(n)
	}
}

func (hw *htmlWriter) node(n *xnode) {
	if n.isText {
		hw.text(n.text)
		return
	}
	switch n.name.Space {
	case "":
		hw.element(n)
	case acNS:
		hw.acElement(n)
	case riNS:
		// Resource identifiers have no content of their own.
	default:
		hw.nodes(n.children)
	}
}

func (hw *htmlWriter) element(n *xnode) {
	tag, ok := allowedTag(strings.ToLower(n.name.Local))
	if !ok {
		hw.nodes(n.children)
		return
	}
	switch tag {
	case "br", "hr":
		hw.tag("<" + tag + ">")
		return
	case "a":
		href := attrValue(n, "", "href")
		if !safeURL(href) {
			hw.nodes(n.children)
			return
		}
		hw.tag("<a")
		hw.attr("href", href)
		hw.tag(` rel="noopener noreferrer">`)
	case "th", "td":
		hw.tag("<" + tag)
		for _, name := range []string{"colspan", "rowspan"} {
			if v := attrValue(n, "", name); v != "" && strings.Trim(v, "0123456789") == "" && len(v) < 4 {
				hw.attr(name, v)
			}
		}
		hw.tag(">")
	default:
		hw.tag("<" + tag + ">")
	}
	hw.nodes(n.children)
	hw.tag("</" + tag + ">")
}

func (hw *htmlWriter) acElement(n *xnode) {
	switch n.name.Local {
	case "structured-macro", "macro":
		hw.macro(n)
	case "link":
		hw.acLink(n)
	case "parameter", "task-id", "task-status":
	case "plain-text-body", "plain-text-link-body":
		hw.text(textContent(n))
	case "task-list":
		hw.tag(`<ul style="list-style:none;padding-left:1em">`)
		hw.nodes(n.children)
		hw.tag("</ul>")
	case "task":
		hw.tag("<li>")
		if strings.TrimSpace(textContent(child(n, acNS, "task-status"))) == "complete" {
			hw.text("☑ ")
		} else {
			hw.text("☐ ")
		}
		hw.nodes(n.children)
		hw.tag("</li>")
	default:
		hw.nodes(n.children)
	}
}

func (hw *htmlWriter) acLink(n *xnode) {
	hw.tag(`<span class="ac-link" style="color:#0052cc">`)
	if b := child(n, acNS, "link-body"); b != nil {
		hw.nodes(b.children)
	} else if b := child(n, acNS, "plain-text-link-body"); b != nil {
		hw.text(textContent(b))
	} else if pg := child(n, riNS, "page"); pg != nil {
		hw.text(attrValue(pg, riNS, "content-title"))
	} else if at := child(n, riNS, "attachment"); at != nil {
		hw.text(attrValue(at, riNS, "filename"))
	}
	hw.tag("</span>")
}

// statusColours returns background and text colours for the status
// macro's colour parameter (and ADF status colours).
func statusColours(colour string) [2]string {
	switch strings.ToLower(colour) {
	case "red":
		return [2]string{"#ffebe6", "#bf2600"}
	case "yellow":
		return [2]string{"#fffae6", "#974f0c"}
	case "green":
		return [2]string{"#e3fcef", "#006644"}
	case "blue":
		return [2]string{"#deebff", "#0747a6"}
	case "purple":
		return [2]string{"#eae6ff", "#403294"}
	}
	return [2]string{"#dfe1e6", "#42526e"}
}

// panelColours returns background and border colours for panel-like
// macros and ADF panel types.
func panelColours(kind string) [2]string {
	switch kind {
	case "info":
		return [2]string{"#deebff", "#4c9aff"}
	case "note":
		return [2]string{"#eae6ff", "#8777d9"}
	case "warning":
		return [2]string{"#fffae6", "#ffab00"}
	case "error":
		return [2]string{"#ffebe6", "#ff5630"}
	case "tip", "success":
		return [2]string{"#e3fcef", "#57d9a3"}
	}
	return [2]string{"#f4f5f7", "#c1c7d0"}
}

func (hw *htmlWriter) macro(n *xnode) {
	name := strings.ToLower(attrValue(n, acNS, "name"))
	params := map[string]string{}
	for _, c := range n.children {
		if !c.isText && c.name.Space == acNS && c.name.Local == "parameter" {
			params[strings.ToLower(attrValue(c, acNS, "name"))] = strings.TrimSpace(textContent(c))
		}
	}
	rich := child(n, acNS, "rich-text-body")
	plain := child(n, acNS, "plain-text-body")
	switch name {
	case "jira":
		if key := params["key"]; key != "" {
			hw.tag(`<a class="jira-issue"`)
			hw.attr("href", "/browse/"+url.PathEscape(key))
			hw.tag(">")
			hw.text(key)
			hw.tag("</a>")
		} else if jql := params["jqlquery"]; jql != "" {
			hw.text("Jira issues: " + jql)
		}
	case "status":
		hw.statusBadge(params["title"], params["colour"])
	case "info", "note", "warning", "tip", "panel":
		hw.panel(name, params["title"], func() {
			if rich != nil {
				hw.nodes(rich.children)
			}
		})
	case "code", "noformat":
		hw.tag("<pre><code>")
		if plain != nil {
			hw.text(textContent(plain))
		}
		hw.tag("</code></pre>")
	default:
		if rich != nil {
			hw.nodes(rich.children)
		} else if plain != nil {
			hw.text(textContent(plain))
		}
	}
}

func (hw *htmlWriter) statusBadge(title, colour string) {
	c := statusColours(colour)
	if title == "" {
		title = colour
	}
	hw.tag(`<span class="status" style="display:inline-block;padding:0 4px;border-radius:3px;font-size:11px;font-weight:700;text-transform:uppercase;background:` +
		c[0] + ";color:" + c[1] + `">`)
	hw.text(title)
	hw.tag("</span>")
}

func (hw *htmlWriter) panel(kind, title string, content func()) {
	c := panelColours(kind)
	hw.tag(`<div class="panel" style="margin:8px 0;padding:8px 12px;border-radius:3px;background:` +
		c[0] + ";border-left:4px solid " + c[1] + `">`)
	if title != "" {
		hw.tag("<strong>")
		hw.text(title)
		hw.tag("</strong>")
	}
	content()
	hw.tag("</div>")
}
