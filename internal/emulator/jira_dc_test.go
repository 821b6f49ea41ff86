package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"function/internal/adfschema"
)

func withBearer(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func dcIssueBody(summary string, desc any, labels ...string) map[string]any {
	b := issueBody(summary, labels...)
	if desc != nil {
		b["fields"].(map[string]any)["description"] = desc
	}
	return b
}

func TestJiraDCCreateIssue(t *testing.T) {
	env := newEnv(t, Options{})
	tests := []struct {
		name     string
		body     any
		want     int
		wantBody string // exact, when set
	}{
		{"wiki description", dcIssueBody("Rollback", "h2. Impact\n*bold* [link|https://x.example]", "rbk-1"), 201, ""},
		{"no description", dcIssueBody("Rollback", nil), 201, ""},
		{"ADF description", dcIssueBody("Rollback", adfDoc("x")), 400,
			`{"errorMessages":[],"errors":{"description":"Operation value must be a string"}}`},
		{"missing summary and bad label", map[string]any{"fields": map[string]any{
			"project": map[string]any{"key": "OPS"}, "issuetype": map[string]any{"name": "Incident"}, "labels": []string{"a b"}}}, 400,
			`{"errorMessages":[],"errors":{"labels":"The label 'a b' contains spaces which is invalid.","summary":"You must specify a summary of the issue."}}`},
		{"unknown project", map[string]any{"fields": map[string]any{
			"project": map[string]any{"key": "NOPE"}, "issuetype": map[string]any{"name": "Incident"}, "summary": "x"}}, 400, ""},
		{"custom field", dcIssueBody("x", "y"), 201, ""},
	}
	tests[5].body.(map[string]any)["fields"].(map[string]any)["customfield_10050"] = "prod"
	tests[5].want = 400
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := env.do("POST", "/rest/api/2/issue", tt.body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, data)
			}
			if tt.wantBody != "" && strings.TrimSpace(string(data)) != tt.wantBody {
				t.Errorf("body = %s\nwant   %s", data, tt.wantBody)
			}
			if tt.want == 201 {
				var c created
				if err := json.Unmarshal(data, &c); err != nil || !strings.HasSuffix(c.Self, "/rest/api/2/issue/"+c.ID) || c.Key == "" {
					t.Errorf("created = %s", data)
				}
			}
		})
	}
	if n := len(env.em.Issues()); n != 2 {
		t.Errorf("%d issues, want 2", n)
	}
}

// TestJiraDCCrossAPI checks that v2 and v3 share the issues, each seeing
// rich text in its own format.
func TestJiraDCCrossAPI(t *testing.T) {
	env := newEnv(t, Options{})
	wiki := "h2. Impact\nline one\nline two\n\n*bold*"
	var dc created
	env.expect("POST", "/rest/api/2/issue", dcIssueBody("Over DC", wiki, "rbk-dc"), 201, &dc)
	var cloud created
	env.expect("POST", "/rest/api/3/issue", dcIssueBody("Over Cloud", adfDoc("cloud text")), 201, &cloud)

	snap, _ := env.em.Issue(dc.Key)
	if snap.DescriptionWiki != wiki || snap.Description != nil {
		t.Errorf("snapshot description = %q / %s", snap.DescriptionWiki, snap.Description)
	}

	// v2 reads its own wiki text and Cloud's ADF as wiki markup.
	var got struct {
		Self   string `json:"self"`
		Fields struct {
			Description any `json:"description"`
			Status      struct {
				Self string `json:"self"`
			} `json:"status"`
		} `json:"fields"`
	}
	env.expect("GET", "/rest/api/2/issue/"+dc.Key, nil, 200, &got)
	if got.Fields.Description != wiki || !strings.Contains(got.Self, "/rest/api/2/issue/") ||
		!strings.Contains(got.Fields.Status.Self, "/rest/api/2/status/") {
		t.Errorf("v2 GET = %+v", got)
	}
	env.expect("GET", "/rest/api/2/issue/"+cloud.Key, nil, 200, &got)
	if got.Fields.Description != "cloud text" {
		t.Errorf("v2 GET of an ADF issue: description = %#v", got.Fields.Description)
	}

	// v3 reads the wiki text as a valid ADF document.
	var v3 struct {
		Fields struct {
			Description json.RawMessage `json:"description"`
		} `json:"fields"`
	}
	env.expect("GET", "/rest/api/3/issue/"+dc.Key, nil, 200, &v3)
	if err := adfschema.ValidateJSON(v3.Fields.Description); err != nil {
		t.Errorf("v3 description of a wiki issue is not valid ADF: %v\n%s", err, v3.Fields.Description)
	}
	if !strings.Contains(string(v3.Fields.Description), `"heading"`) || !strings.Contains(string(v3.Fields.Description), "line two") {
		t.Errorf("v3 description = %s", v3.Fields.Description)
	}

	// A v2-created issue is found by v3 search, and a v3 one by v2 search.
	var sr searchResult
	env.expect("POST", "/rest/api/3/search/jql", map[string]any{"jql": `labels = "rbk-dc"`, "fields": []string{"key"}}, 200, &sr)
	if keys := sr.keys(); len(keys) != 1 || keys[0] != dc.Key {
		t.Errorf("v3 search found %v, want [%s]", keys, dc.Key)
	}
	var dr dcSearch
	env.expect("POST", "/rest/api/2/search", map[string]any{"jql": "key = " + cloud.Key}, 200, &dr)
	if dr.Total != 1 || dr.Issues[0].Key != cloud.Key {
		t.Errorf("v2 search = %+v", dr)
	}

	// The HTML view shows the wiki description as its source.
	_, html := env.do("GET", "/browse/"+dc.Key, nil, noAuth())
	if !strings.Contains(string(html), "<pre class=\"wiki\">h2. Impact\n") || !strings.Contains(string(html), "*bold*</pre>") {
		t.Errorf("issue view does not show the wiki markup:\n%s", html)
	}
}

func TestJiraDCComments(t *testing.T) {
	env := newEnv(t, Options{})
	c := env.createIssue("x")
	tests := []struct {
		name string
		body any
		want int
		msg  string
	}{
		{"wiki", map[string]any{"body": "Rolled back *v1.42*"}, 201, ""},
		{"ADF", map[string]any{"body": adfDoc("x")}, 400, msgNotString},
		{"empty", map[string]any{"body": "  "}, 400, "Comment body can not be empty!"},
		{"missing", map[string]any{}, 400, "Comment body can not be empty!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := env.do("POST", "/rest/api/2/issue/"+c.Key+"/comment", tt.body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, data)
			}
			if tt.msg != "" {
				var je jiraErr
				_ = json.Unmarshal(data, &je)
				if je.Errors["comment"] != tt.msg {
					t.Errorf("errors = %v, want comment %q", je.Errors, tt.msg)
				}
				return
			}
			var cw struct {
				Body      any            `json:"body"`
				Author    map[string]any `json:"author"`
				JSDPublic *bool          `json:"jsdPublic"`
			}
			_ = json.Unmarshal(data, &cw)
			if cw.Body != "Rolled back *v1.42*" || cw.Author["name"] != "bot" || cw.Author["accountId"] != nil || cw.JSDPublic != nil {
				t.Errorf("DC comment = %s", data)
			}
		})
	}
	comments := env.em.Comments(c.Key)
	if len(comments) != 1 || comments[0].BodyWiki != "Rolled back *v1.42*" || comments[0].Body != nil {
		t.Fatalf("comments = %+v", comments)
	}
	// v3 lists the wiki comment as ADF.
	var list struct {
		Comments []struct {
			Body json.RawMessage `json:"body"`
		} `json:"comments"`
	}
	env.expect("GET", "/rest/api/3/issue/"+c.Key+"/comment", nil, 200, &list)
	if len(list.Comments) != 1 || adfschema.ValidateJSON(list.Comments[0].Body) != nil {
		t.Errorf("v3 comments = %+v", list)
	}
}

func TestJiraDCRemoteLinksAndTransitions(t *testing.T) {
	env := newEnv(t, Options{})
	c := env.createIssue("x")
	link := map[string]any{"globalId": "rollback-postmortem:k", "object": map[string]any{"url": "https://wiki.example/p/1", "title": "Postmortem"}}
	var l struct {
		ID   int64  `json:"id"`
		Self string `json:"self"`
	}
	env.expect("POST", "/rest/api/2/issue/"+c.Key+"/remotelink", link, 201, &l)
	if !strings.Contains(l.Self, "/rest/api/2/issue/"+c.Key+"/remotelink/") {
		t.Errorf("self = %s", l.Self)
	}
	env.expect("POST", "/rest/api/2/issue/"+c.Key+"/remotelink", link, 200, nil)
	if links := env.em.RemoteLinks(c.Key); len(links) != 1 {
		t.Errorf("links = %v", links)
	}

	var tr struct {
		Transitions []struct {
			ID string `json:"id"`
		} `json:"transitions"`
	}
	env.expect("GET", "/rest/api/2/issue/"+c.Key+"/transitions", nil, 200, &tr)
	if len(tr.Transitions) != 2 {
		t.Errorf("transitions = %+v", tr)
	}
	env.expect("POST", "/rest/api/2/issue/"+c.Key+"/transitions", map[string]any{
		"transition": map[string]any{"id": "31"},
		"update":     map[string]any{"comment": []any{map[string]any{"add": map[string]any{"body": "Resolved by rollback"}}}},
	}, 204, nil)
	env.expect("POST", "/rest/api/2/issue/"+c.Key+"/transitions", map[string]any{
		"transition": map[string]any{"id": "21"},
		"update":     map[string]any{"comment": []any{map[string]any{"add": map[string]any{"body": adfDoc("x")}}}},
	}, 400, nil)
	is, _ := env.em.Issue(c.Key)
	if is.Status != "Done" || is.Comments != 1 {
		t.Errorf("issue = %+v", is)
	}
}

type dcSearch struct {
	Expand     string `json:"expand"`
	StartAt    int    `json:"startAt"`
	MaxResults int    `json:"maxResults"`
	Total      int    `json:"total"`
	Issues     []struct {
		ID     string         `json:"id"`
		Key    string         `json:"key"`
		Self   string         `json:"self"`
		Fields map[string]any `json:"fields"`
	} `json:"issues"`
	WarningMessages []string `json:"warningMessages"`
}

func TestJiraDCSearch(t *testing.T) {
	// SearchLag hides new issues from Cloud's /search/jql only: Data
	// Center search is read-after-write.
	env := newEnv(t, Options{SearchLag: time.Hour})
	var keys []string
	for i := 0; i < 5; i++ {
		var c created
		env.expect("POST", "/rest/api/2/issue", dcIssueBody("s", "wiki", "rbk-page"), 201, &c)
		keys = append(keys, c.Key)
	}
	tests := []struct {
		name       string
		body       any
		want       int
		total      int
		startAt    int
		maxResults int
		keys       []string
	}{
		{"first page", map[string]any{"jql": "labels = rbk-page ORDER BY key ASC", "maxResults": 2}, 200, 5, 0, 2, keys[:2]},
		{"second page", map[string]any{"jql": "labels = rbk-page ORDER BY key ASC", "startAt": 2, "maxResults": 2}, 200, 5, 2, 2, keys[2:4]},
		{"past the end", map[string]any{"jql": "labels = rbk-page", "startAt": 9}, 200, 5, 9, 50, nil},
		{"count only", map[string]any{"jql": "labels = rbk-page", "maxResults": 0}, 200, 5, 0, 0, nil},
		{"unbounded is fine on DC", map[string]any{"jql": "", "maxResults": 1}, 200, 5, 0, 1, keys[4:]},
		{"capped at 1000", map[string]any{"jql": "project = OPS", "maxResults": 5000}, 200, 5, 0, 1000, nil},
		{"Cloud paging token", map[string]any{"jql": "project = OPS", "nextPageToken": "x"}, 400, 0, 0, 0, nil},
		{"unknown project", map[string]any{"jql": "project = NOPE"}, 400, 0, 0, 0, nil},
		{"unknown project, warn", map[string]any{"jql": "project = NOPE", "validateQuery": "warn"}, 200, 0, 0, 50, nil},
		{"bad JQL", map[string]any{"jql": "summary ~ x"}, 400, 0, 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sr dcSearch
			resp, data := env.do("POST", "/rest/api/2/search", tt.body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, data)
			}
			if tt.want != 200 {
				return
			}
			if err := json.Unmarshal(data, &sr); err != nil {
				t.Fatal(err)
			}
			if sr.Total != tt.total || sr.StartAt != tt.startAt || sr.MaxResults != tt.maxResults || sr.Expand != "schema,names" {
				t.Errorf("total/startAt/maxResults = %d/%d/%d, want %d/%d/%d", sr.Total, sr.StartAt, sr.MaxResults, tt.total, tt.startAt, tt.maxResults)
			}
			if tt.keys != nil {
				var got []string
				for _, is := range sr.Issues {
					got = append(got, is.Key)
				}
				if strings.Join(got, ",") != strings.Join(tt.keys, ",") {
					t.Errorf("keys = %v, want %v", got, tt.keys)
				}
			}
			if tt.name == "unknown project, warn" && len(sr.WarningMessages) != 1 {
				t.Errorf("warnings = %v", sr.WarningMessages)
			}
		})
	}
	// Issues come with all navigable fields by default, description as wiki.
	var sr dcSearch
	env.expect("POST", "/rest/api/2/search", map[string]any{"jql": "key = " + keys[0]}, 200, &sr)
	if len(sr.Issues) != 1 || sr.Issues[0].Fields["description"] != "wiki" || sr.Issues[0].Fields["summary"] != "s" ||
		!strings.Contains(sr.Issues[0].Self, "/rest/api/2/issue/") {
		t.Errorf("issue = %+v", sr.Issues)
	}
	// Meanwhile Cloud's eventually consistent search does not see them yet.
	var cr searchResult
	env.expect("POST", "/rest/api/3/search/jql", map[string]any{"jql": "labels = rbk-page"}, 200, &cr)
	if len(cr.Issues) != 0 {
		t.Errorf("v3 search within the lag found %d issues", len(cr.Issues))
	}
}

func TestJiraDCMyself(t *testing.T) {
	env := newEnv(t, Options{})
	var me map[string]any
	env.expect("GET", "/rest/api/2/myself", nil, 200, &me)
	if me["name"] != "bot" || me["key"] == nil || me["accountId"] != nil || me["emailAddress"] != DefaultEmail {
		t.Errorf("DC myself = %v", me)
	}
}

func TestBearerAuth(t *testing.T) {
	env := newEnv(t, Options{BearerToken: "dc-pat-123"})
	spaceID, _ := env.spaceID("INCIDENTS")
	_ = spaceID
	tests := []struct {
		name string
		path string
		opt  reqOpt
		want int
	}{
		{"v2 bearer", "/rest/api/2/myself", withBearer("dc-pat-123"), 200},
		{"v2 bearer lower-case scheme", "/rest/api/2/myself", withHeader("Authorization", "bearer dc-pat-123"), 200},
		{"v2 wrong bearer", "/rest/api/2/myself", withBearer("nope"), 401},
		{"v2 PAT as Basic password", "/rest/api/2/myself", withAuth(DefaultEmail, "dc-pat-123"), 401},
		{"v2 basic", "/rest/api/2/myself", nil, 200},
		{"v3 bearer", "/rest/api/3/myself", withBearer("dc-pat-123"), 401},
		{"v3 API token as bearer", "/rest/api/3/myself", withBearer(DefaultAPIToken), 401},
		{"v1 DC bearer", "/rest/api/space/INCIDENTS", withBearer("dc-pat-123"), 200},
		{"v1 DC basic", "/rest/api/space/INCIDENTS", nil, 200},
		{"v1 Cloud site path bearer", "/wiki/rest/api/space/INCIDENTS", withBearer("dc-pat-123"), 401},
		{"v1 Cloud site path basic", "/wiki/rest/api/space/INCIDENTS", nil, 200},
		{"v2 Confluence Cloud bearer", "/wiki/api/v2/spaces", withBearer("dc-pat-123"), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []reqOpt
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			resp, data := env.do("GET", tt.path, nil, opts...)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, data)
			}
		})
	}
	// Without a configured PAT, Bearer is rejected everywhere.
	plain := newEnv(t, Options{})
	plain.expect("GET", "/rest/api/2/myself", nil, 401, nil, withBearer(""))
}

func TestJiraDCRateLimitHeaders(t *testing.T) {
	env := newEnv(t, Options{RateLimit: RateLimit{PerSecond: 2, Burst: 2}, Now: (&fakeClock{t: time.Unix(1e9, 0)}).Now})
	resp, _ := env.do("GET", "/rest/api/2/myself", nil)
	if resp.Header.Get("X-RateLimit-FillRate") != "2" || resp.Header.Get("X-RateLimit-Interval-Seconds") != "1" ||
		resp.Header.Get("X-RateLimit-NearLimit") != "" {
		t.Errorf("admitted DC headers = %v", resp.Header)
	}
	env.do("GET", "/rest/api/2/myself", nil)
	resp, data := env.do("GET", "/rest/api/2/myself", nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Reason") != "" ||
		resp.Header.Get("X-RateLimit-Reset") != "" {
		t.Errorf("DC 429 = %d %v %s", resp.StatusCode, resp.Header, data)
	}
	// Injected 429s carry no Cloud reason on Data Center either.
	env.em.SetRateLimit(RateLimit{})
	env.em.FailNext("POST /rest/api/2/issue", 429, 1)
	resp, _ = env.do("POST", "/rest/api/2/issue", dcIssueBody("x", "y"))
	if resp.StatusCode != 429 || resp.Header.Get("RateLimit-Reason") != "" || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("DC fault 429 = %d %v", resp.StatusCode, resp.Header)
	}
}
