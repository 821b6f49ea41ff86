package emulator

import (
	"encoding/json"
	"strings"
	"testing"

	"function/internal/adfschema"
)

func TestWikiToHTML(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings, in order
		not  []string
	}{
		{"heading", "h2. Impact", []string{"<h2>Impact</h2>"}, nil},
		{"not a heading", "h7. x", []string{"<p>h7. x</p>"}, nil},
		{"bold and italic", "a *bold* and _it_ here", []string{"<p>a <strong>bold</strong> and <em>it</em> here</p>"}, nil},
		{"stars inside words stay", "2*3*4", []string{"<p>2*3*4</p>"}, []string{"<strong>"}},
		{"monospace", "run {{kubectl <rollout>}}", []string{"<code>kubectl &lt;rollout&gt;</code>"}, nil},
		{"link", "[Argo|https://argo.example/r?a=1&b=2]", []string{`<a href="https://argo.example/r?a=1&amp;b=2" rel="noopener noreferrer">Argo</a>`}, nil},
		{"bare link", "[https://x.example]", []string{`<a href="https://x.example" rel="noopener noreferrer">https://x.example</a>`}, nil},
		{"javascript link", "[click|javascript:alert(1)]", []string{"<p>click</p>"}, []string{"href", "javascript"}},
		{"page link is text", "[Some page]", []string{"<p>[Some page]</p>"}, nil},
		{"paragraph lines", "one\ntwo\n\nthree", []string{"<p>one<br>two</p><p>three</p>"}, nil},
		{"bullets", "* a\n* b\n** b1\n* c", []string{"<ul><li>a</li><li>b<ul><li>b1</li></ul></li><li>c</li></ul>"}, nil},
		{"numbered", "# a\n# b", []string{"<ol><li>a</li><li>b</li></ol>"}, nil},
		{"table", "||Service||Env||\n|payments-api|prod|\n|[link|https://x.example]|*x*|",
			[]string{`<table class="grid"><tbody><tr><th>Service</th><th>Env</th></tr><tr><td>payments-api</td><td>prod</td></tr>`,
				`<td><a href="https://x.example" rel="noopener noreferrer">link</a></td><td><strong>x</strong></td></tr></tbody></table>`}, nil},
		{"code block", "{code:go}\nfmt.Println(\"<b>\")\n*not bold*\n{code}\nafter",
			[]string{"<pre><code>fmt.Println(&#34;&lt;b&gt;&#34;)\n*not bold*</code></pre>", "<p>after</p>"}, []string{"<strong>"}},
		{"noformat on one line", "{noformat}x <y>{noformat} tail", []string{"<pre><code>x &lt;y&gt;</code></pre><p>tail</p>"}, nil},
		{"unclosed code", "{code}\nrest", []string{"<pre><code>rest</code></pre>"}, nil},
		{"panel", "{panel:title=Summary <b>|borderStyle=solid}\n*Rolled back*\n{panel}",
			[]string{`<div class="panel"`, "<strong>Summary &lt;b&gt;</strong>", "<p><strong>Rolled back</strong></p></div>"}, nil},
		{"quote and rule", "bq. quoted\n----", []string{"<blockquote>quoted</blockquote><hr>"}, nil},
		{"script is text", "<script>alert(1)</script> h1. x", []string{"&lt;script&gt;alert(1)&lt;/script&gt;"}, []string{"<script>"}},
		{"unknown macro is text", "{color:red}red{color}", []string{"<p>{color:red}red{color}</p>"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(wikiToHTML(tt.in))
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("wikiToHTML(%q) =\n%s\nmissing %q", tt.in, got, w)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("wikiToHTML(%q) = %s, must not contain %q", tt.in, got, n)
				}
			}
		})
	}
}

func TestWikiADFConversions(t *testing.T) {
	for _, in := range []string{"", "plain", "h1. Title\n\npara one\npara two\n\nh3.\n* item", "  \n\n  "} {
		adf := wikiToADF(in)
		if err := adfschema.ValidateJSON(adf); err != nil {
			t.Errorf("wikiToADF(%q) is not valid ADF: %v\n%s", in, err, adf)
		}
	}
	doc, _ := json.Marshal(map[string]any{"type": "doc", "version": 1, "content": []any{
		map[string]any{"type": "heading", "attrs": map[string]any{"level": 2}, "content": []any{map[string]any{"type": "text", "text": "Impact"}}},
		map[string]any{"type": "paragraph", "content": []any{
			map[string]any{"type": "text", "text": "see "},
			map[string]any{"type": "text", "text": "Argo", "marks": []any{map[string]any{"type": "link", "attrs": map[string]any{"href": "https://argo.example"}}}},
			map[string]any{"type": "text", "text": " now", "marks": []any{map[string]any{"type": "strong"}}},
		}},
		map[string]any{"type": "bulletList", "content": []any{
			map[string]any{"type": "listItem", "content": []any{map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": "a"}}}}},
		}},
	}})
	want := "h2. Impact\nsee [Argo|https://argo.example] *now*\n* a"
	if got := adfToWiki(doc); got != want {
		t.Errorf("adfToWiki = %q, want %q", got, want)
	}
}

func TestHTMLViewsDCAndBackstage(t *testing.T) {
	env := newEnv(t, Options{})
	evil := `<script>alert(1)</script>`
	var c created
	env.expect("POST", "/rest/api/2/issue", dcIssueBody("DC "+evil, "h2. Impact "+evil+"\n* [bad|javascript:alert(1)]\n||a||\n|"+evil+"|"), 201, &c)
	env.expect("POST", "/rest/api/2/issue/"+c.Key+"/comment", map[string]any{"body": "comment *" + evil + "*"}, 201, nil)
	env.notifyOK(entityNote("user:default/jdoe", map[string]any{"title": "Note " + evil, "description": "desc " + evil,
		"link": "https://x.example/?q=" + evil, "scope": "scope " + evil}))
	env.notifyOK(map[string]any{"recipients": map[string]any{"type": "broadcast"},
		"payload": map[string]any{"title": "Relative", "link": "/catalog/x"}})

	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/browse/" + c.Key, []string{
			"DC &lt;script&gt;alert(1)&lt;/script&gt;",
			"<h2>Impact &lt;script&gt;alert(1)&lt;/script&gt;</h2>",
			"<li>bad</li>",
			"<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>",
			"comment <strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>",
		}},
		{"/", []string{
			"Backstage notifications",
			"user:default/jdoe",
			`<a href="https://x.example/?q=%3cscript%3ealert%281%29%3c/script%3e" rel="noopener noreferrer">Note &lt;script&gt;alert(1)&lt;/script&gt;</a>`,
			"desc &lt;script&gt;alert(1)&lt;/script&gt;",
			"scope &lt;script&gt;alert(1)&lt;/script&gt;",
			"<em>broadcast</em>",
			"Relative <span class=\"meta\">(/catalog/x)</span>",
		}},
	} {
		resp, data := env.do("GET", tt.path, nil, noAuth())
		html := string(data)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", tt.path, resp.StatusCode)
		}
		if strings.Contains(html, "<script>") || strings.Contains(html, `href="javascript`) {
			t.Errorf("GET %s has unescaped markup:\n%s", tt.path, html)
		}
		for _, w := range tt.want {
			if !strings.Contains(html, w) {
				t.Errorf("GET %s missing %q\n%s", tt.path, w, html)
			}
		}
	}
}
