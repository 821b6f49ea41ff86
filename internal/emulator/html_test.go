package emulator

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestStorageToHTML(t *testing.T) {
	tests := []struct {
		name    string
		storage string
		want    []string // substrings that must appear
		notWant []string // substrings that must not appear
	}{
		{
			name:    "whitelisted tags",
			storage: `<h2>Impact</h2><p>A <b>bold</b> and <i>it</i> <code>x</code></p><ul><li>one</li></ul><table><tbody><tr><th>k</th><td colspan="2">v</td></tr></tbody></table><hr/><br/>`,
			want:    []string{"<h2>Impact</h2>", "<strong>bold</strong>", "<em>it</em>", "<code>x</code>", "<ul><li>one</li></ul>", `<td colspan="2">v</td>`, "<hr>", "<br>"},
		},
		{
			name:    "escaped text stays escaped",
			storage: `<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;</p>`,
			want:    []string{"&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;q&#34;"},
			notWant: []string{"<script>"},
		},
		{
			name:    "attributes dropped, unsafe links neutralised",
			storage: `<p style="color:red" onclick="evil()">x</p><a href="javascript:alert(1)">js</a><a href="https://example.com/?a=1&amp;b=&quot;2&quot;" onmouseover="x">ok</a><img src="x" onerror="alert(1)"/>`,
			want:    []string{"<p>x</p>", "js", `<a href="https://example.com/?a=1&amp;b=&#34;2&#34;" rel="noopener noreferrer">ok</a>`},
			notWant: []string{"onclick", "javascript:", "onmouseover", "<img", "onerror", "style=\"color:red"},
		},
		{
			name:    "unknown elements reduced to text",
			storage: `<div><iframe src="https://evil">inside</iframe><form><input value="v"/>text</form></div>`,
			want:    []string{"inside", "text"},
			notWant: []string{"<div", "<iframe", "<form", "<input"},
		},
		{
			name:    "jira macro",
			storage: `<ac:structured-macro ac:name="jira" ac:schema-version="1"><ac:parameter ac:name="server">System JIRA</ac:parameter><ac:parameter ac:name="key">OPS-7</ac:parameter></ac:structured-macro>`,
			want:    []string{`<a class="jira-issue" href="/browse/OPS-7">OPS-7</a>`},
			notWant: []string{"System JIRA"},
		},
		{
			name:    "jira macro key escaped",
			storage: `<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">"&gt;&lt;b&gt;x</ac:parameter></ac:structured-macro>`,
			want:    []string{"&#34;&gt;&lt;b&gt;x</a>"},
			notWant: []string{"<b>"},
		},
		{
			name:    "status macro",
			storage: `<ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Red</ac:parameter><ac:parameter ac:name="title">ROLLED BACK</ac:parameter></ac:structured-macro>`,
			want:    []string{`class="status"`, "#bf2600", ">ROLLED BACK</span>"},
		},
		{
			name:    "info macro",
			storage: `<ac:structured-macro ac:name="info"><ac:parameter ac:name="title">Automated &lt;postmortem&gt;</ac:parameter><ac:rich-text-body><p>From rbk-1.</p></ac:rich-text-body></ac:structured-macro>`,
			want:    []string{`class="panel"`, "<strong>Automated &lt;postmortem&gt;</strong>", "<p>From rbk-1.</p>"},
		},
		{
			name:    "code macro",
			storage: `<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter><ac:plain-text-body><![CDATA[kubectl argo rollouts undo <payments> && echo "</pre><script>"]]></ac:plain-text-body></ac:structured-macro>`,
			want:    []string{"<pre><code>kubectl argo rollouts undo &lt;payments&gt; &amp;&amp; echo &#34;&lt;/pre&gt;&lt;script&gt;&#34;</code></pre>"},
			notWant: []string{"<script>", "bash"},
		},
		{
			name:    "unknown macro shows body text",
			storage: `<ac:structured-macro ac:name="expand"><ac:parameter ac:name="title">More</ac:parameter><ac:rich-text-body><p>hidden detail</p></ac:rich-text-body></ac:structured-macro><ac:structured-macro ac:name="toc"/>`,
			want:    []string{"<p>hidden detail</p>"},
		},
		{
			name:    "page link",
			storage: `<ac:link><ri:page ri:content-title="Runbook &lt;1&gt;" ri:space-key="ENG"/></ac:link><ac:link><ri:page ri:content-title="X"/><ac:plain-text-link-body><![CDATA[see <this>]]></ac:plain-text-link-body></ac:link>`,
			want:    []string{"Runbook &lt;1&gt;", "see &lt;this&gt;"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := storageToHTML(tt.storage)
			if err != nil {
				t.Fatalf("storageToHTML: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(got), w) {
					t.Errorf("output %s\nmissing %s", got, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(string(got), w) {
					t.Errorf("output %s\nmust not contain %s", got, w)
				}
			}
		})
	}
}

func TestADFToHTML(t *testing.T) {
	doc := `{"type":"doc","version":1,"content":[
	  {"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Impact <b>"}]},
	  {"type":"paragraph","content":[
	    {"type":"text","text":"bold","marks":[{"type":"strong"},{"type":"em"}]},
	    {"type":"text","text":"link","marks":[{"type":"link","attrs":{"href":"https://argo.example/?a=1&b=2"}}]},
	    {"type":"text","text":"evil","marks":[{"type":"link","attrs":{"href":"javascript:alert(1)"}}]},
	    {"type":"hardBreak"},
	    {"type":"status","attrs":{"text":"ROLLED BACK","color":"red"}},
	    {"type":"inlineCard","attrs":{"url":"https://x.atlassian.net/wiki/spaces/ENG/pages/1"}},
	    {"type":"mention","attrs":{"id":"1","text":"@bot"}}
	  ]},
	  {"type":"panel","attrs":{"panelType":"warning"},"content":[{"type":"paragraph","content":[{"type":"text","text":"careful"}]}]},
	  {"type":"codeBlock","content":[{"type":"text","text":"echo '<x>'"}]},
	  {"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"item"}]}]}]},
	  {"type":"orderedList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"first"}]}]}]},
	  {"type":"table","content":[{"type":"tableRow","content":[
	    {"type":"tableHeader","content":[{"type":"paragraph","content":[{"type":"text","text":"H"}]}]},
	    {"type":"tableCell","content":[{"type":"paragraph","content":[{"type":"text","text":"C"}]}]}]}]},
	  {"type":"rule"},
	  {"type":"expand","attrs":{"title":"t"},"content":[{"type":"paragraph","content":[{"type":"text","text":"inside expand"}]}]}
	]}`
	got := string(adfToHTML(json.RawMessage(doc)))
	for _, w := range []string{
		"<h2>Impact &lt;b&gt;</h2>", "<strong><em>bold</em></strong>",
		`<a href="https://argo.example/?a=1&amp;b=2" rel="noopener noreferrer">link</a>`,
		"evil", "<br>", ">ROLLED BACK</span>", `<a href="https://x.atlassian.net/wiki/spaces/ENG/pages/1"`, "@bot",
		`class="panel"`, "careful", "<pre><code>echo &#39;&lt;x&gt;&#39;</code></pre>", "<ul><li><p>item</p></li></ul>",
		"<ol><li>", "<th><p>H</p></th><td><p>C</p></td>", "<hr>", "inside expand",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("ADF HTML missing %s\n%s", w, got)
		}
	}
	if strings.Contains(got, "javascript:") {
		t.Errorf("unsafe link rendered: %s", got)
	}
}

func TestHTMLViews(t *testing.T) {
	env := newEnv(t, Options{})
	evil := `<script>alert(1)</script>`
	body := issueBody("Rollback "+evil, "rbk-1")
	body["fields"].(map[string]any)["description"] = adfDoc("desc " + evil)
	var c created
	env.expect("POST", "/rest/api/3/issue", body, 201, &c)
	env.expect("POST", "/rest/api/3/issue/"+c.Key+"/comment", map[string]any{"body": adfDoc("comment " + evil)}, 201, nil)
	env.expect("POST", "/rest/api/3/issue/"+c.Key+"/remotelink", map[string]any{
		"globalId": "g", "object": map[string]any{"url": "https://wiki.example/p/1", "title": "Postmortem " + evil}}, 201, nil)
	env.expect("POST", "/rest/api/3/issue/"+c.Key+"/remotelink", map[string]any{
		"object": map[string]any{"url": "javascript:alert(1)", "title": "bad link"}}, 201, nil)

	spaceID, _ := env.spaceID("INCIDENTS")
	p := env.createPage(spaceID, "Postmortem "+evil, `<p>storage &lt;script&gt;alert(1)&lt;/script&gt;</p>`+
		`<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">`+c.Key+`</ac:parameter></ac:structured-macro>`)

	check := func(path string, want ...string) string {
		t.Helper()
		resp, data := env.do("GET", path, nil, noAuth())
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s Content-Type = %q", path, ct)
		}
		html := string(data)
		if strings.Contains(html, "<script>") {
			t.Errorf("GET %s contains an unescaped <script>:\n%s", path, html)
		}
		for _, w := range want {
			if !strings.Contains(html, w) {
				t.Errorf("GET %s missing %q", path, w)
			}
		}
		return html
	}

	check("/", "/browse/"+c.Key, "Rollback &lt;script&gt;alert(1)&lt;/script&gt;", "rbk-1", "/wiki/spaces/INCIDENTS/pages/"+p.ID+"/")
	html := check("/browse/"+c.Key,
		"Rollback &lt;script&gt;alert(1)&lt;/script&gt;",
		"desc &lt;script&gt;alert(1)&lt;/script&gt;",
		"comment &lt;script&gt;alert(1)&lt;/script&gt;",
		`<a href="https://wiki.example/p/1" rel="noopener noreferrer">Postmortem &lt;script&gt;alert(1)&lt;/script&gt;</a>`,
		"To Do", "rbk-1")
	if strings.Contains(html, `href="javascript:`) {
		t.Error("javascript: remote link rendered as a link")
	}
	check("/wiki"+p.Links["webui"],
		"Postmortem &lt;script&gt;alert(1)&lt;/script&gt;",
		"storage &lt;script&gt;alert(1)&lt;/script&gt;",
		`href="/browse/`+c.Key+`"`)
	check("/wiki/spaces/INCIDENTS", "Postmortem &lt;script&gt;")
	// Wrong space key in the URL redirects to the canonical one.
	resp, _ := env.do("GET", "/wiki/spaces/OTHER/pages/"+p.ID+"/x", nil, noAuth())
	if resp.StatusCode != 302 {
		t.Errorf("wrong space = %d", resp.StatusCode)
	}
	for _, path := range []string{"/browse/OPS-999", "/wiki/spaces/INCIDENTS/pages/1/x", "/wiki/spaces/NOPE"} {
		resp, _ := env.do("GET", path, nil, noAuth())
		if resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
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
			"<pre class=\"wiki\">h2. Impact &lt;script&gt;alert(1)&lt;/script&gt;\n* [bad|javascript:alert(1)]\n||a||\n|&lt;script&gt;alert(1)&lt;/script&gt;|</pre>",
			"<pre class=\"wiki\">comment *&lt;script&gt;alert(1)&lt;/script&gt;*</pre>",
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
