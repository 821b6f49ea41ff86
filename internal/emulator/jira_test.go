package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestCreateIssue(t *testing.T) {
	env := newEnv(t, Options{})
	body := issueBody("Rollback: payments-api 1.42.0 -> 1.41.3", "rollback", "rbk-0123abcd", "rollback")
	f := body["fields"].(map[string]any)
	f["description"] = adfDoc("Automatic rollback")
	f["priority"] = map[string]any{"name": "High"}
	f["components"] = []any{map[string]any{"name": "payments-api"}}

	var c created
	env.expect("POST", "/rest/api/3/issue", body, http.StatusCreated, &c)
	if c.ID != "10000" || c.Key != "OPS-1" || c.Self != env.srv.URL+"/rest/api/3/issue/10000" {
		t.Errorf("created = %+v", c)
	}
	c2 := env.createIssue("second")
	if c2.ID != "10001" || c2.Key != "OPS-2" {
		t.Errorf("second = %+v", c2)
	}

	var got struct {
		ID     string `json:"id"`
		Key    string `json:"key"`
		Self   string `json:"self"`
		Fields struct {
			Summary     string          `json:"summary"`
			Description json.RawMessage `json:"description"`
			Labels      []string        `json:"labels"`
			IssueType   struct{ Name string }
			Project     struct{ Key string }
			Status      struct {
				Name           string
				StatusCategory struct{ Key string }
			}
			Priority   struct{ Name string }
			Components []struct{ Name string }
			Created    string `json:"created"`
		} `json:"fields"`
	}
	for _, ref := range []string{"OPS-1", "10000", "ops-1"} {
		env.expect("GET", "/rest/api/3/issue/"+ref, nil, 200, &got)
		if got.Key != "OPS-1" {
			t.Fatalf("GET %s key = %s", ref, got.Key)
		}
	}
	fl := got.Fields
	if fl.Summary != "Rollback: payments-api 1.42.0 -> 1.41.3" || fl.IssueType.Name != "Incident" ||
		fl.Project.Key != "OPS" || fl.Status.Name != "To Do" || fl.Status.StatusCategory.Key != "new" ||
		fl.Priority.Name != "High" || len(fl.Components) != 1 || fl.Created == "" {
		t.Errorf("fields = %+v", fl)
	}
	if strings.Join(fl.Labels, ",") != "rollback,rbk-0123abcd" {
		t.Errorf("labels = %v (duplicates should be dropped)", fl.Labels)
	}
	if !strings.Contains(string(fl.Description), "Automatic rollback") {
		t.Errorf("description = %s", fl.Description)
	}

	// fields= restricts the output.
	var only struct{ Fields map[string]any }
	env.expect("GET", "/rest/api/3/issue/OPS-1?fields=summary", nil, 200, &only)
	if len(only.Fields) != 1 || only.Fields["summary"] == nil {
		t.Errorf("fields=summary gave %v", only.Fields)
	}

	var je jiraErr
	env.expect("GET", "/rest/api/3/issue/OPS-99", nil, 404, &je)
	if len(je.ErrorMessages) != 1 || je.ErrorMessages[0] != msgIssueNotFound {
		t.Errorf("404 = %+v", je)
	}
}

func TestCreateIssueValidation(t *testing.T) {
	env := newEnv(t, Options{})
	long := strings.Repeat("x", 256)
	tests := []struct {
		name     string
		mutate   func(body, fields map[string]any)
		field    string // expected key in errors
		contains string
		message  string // expected in errorMessages instead
	}{
		{"unknown project", func(b, f map[string]any) { f["project"] = map[string]any{"key": "NOPE"} }, "project", "valid project is required", ""},
		{"missing project", func(b, f map[string]any) { delete(f, "project") }, "project", "", ""},
		{"project by id", nil, "", "", ""},
		{"unknown issuetype", func(b, f map[string]any) { f["issuetype"] = map[string]any{"name": "Epic"} }, "issuetype", "", ""},
		{"missing issuetype", func(b, f map[string]any) { delete(f, "issuetype") }, "issuetype", "", ""},
		{"missing summary", func(b, f map[string]any) { delete(f, "summary") }, "summary", "summary", ""},
		{"empty summary", func(b, f map[string]any) { f["summary"] = "  " }, "summary", "", ""},
		{"long summary", func(b, f map[string]any) { f["summary"] = long }, "summary", "255", ""},
		{"newline summary", func(b, f map[string]any) { f["summary"] = "a\nb" }, "summary", "newline", ""},
		{"string description", func(b, f map[string]any) { f["description"] = "plain text" }, "description", msgNotADF, ""},
		{"invalid ADF empty text", func(b, f map[string]any) { f["description"] = adfDoc("") }, "description", "/content/0/content/0/text", ""},
		{"ADF without version", func(b, f map[string]any) {
			f["description"] = map[string]any{"type": "doc", "content": []any{}}
		}, "description", "version", ""},
		{"ADF unknown node", func(b, f map[string]any) {
			f["description"] = map[string]any{"type": "doc", "version": 1, "content": []any{map[string]any{"type": "marquee"}}}
		}, "description", "marquee", ""},
		{"label with space", func(b, f map[string]any) { f["labels"] = []string{"ok", "Test Application"} }, "labels",
			"The label 'Test Application' contains spaces which is invalid.", ""},
		{"label too long", func(b, f map[string]any) { f["labels"] = []string{long} }, "labels", "255", ""},
		{"labels not strings", func(b, f map[string]any) { f["labels"] = []any{1} }, "labels", "", ""},
		{"custom field", func(b, f map[string]any) { f["customfield_10050"] = "prod" }, "customfield_10050",
			"Field 'customfield_10050' cannot be set. It is not on the appropriate screen, or unknown.", ""},
		{"unknown system field", func(b, f map[string]any) { f["assignee"] = map[string]any{"id": "x"} }, "assignee", "cannot be set", ""},
		{"bad priority", func(b, f map[string]any) { f["priority"] = map[string]any{"name": "Apocalyptic"} }, "priority", "", ""},
		{"unknown top-level key", func(b, f map[string]any) { b["bogus"] = true }, "", "", "bogus"},
		{"issue properties", func(b, f map[string]any) { b["properties"] = []any{map[string]any{"key": "k", "value": 1}} }, "", "", "properties"},
		{"update unsupported", func(b, f map[string]any) {
			b["update"] = map[string]any{"labels": []any{map[string]any{"add": "x"}}}
		}, "", "", "update"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := issueBody("valid summary")
			fields := body["fields"].(map[string]any)
			if tt.name == "project by id" {
				fields["project"] = map[string]any{"id": "10000"}
				fields["issuetype"] = map[string]any{"id": 10001}
				env.expect("POST", "/rest/api/3/issue", body, 201, nil)
				return
			}
			tt.mutate(body, fields)
			var je jiraErr
			env.expect("POST", "/rest/api/3/issue", body, 400, &je)
			if je.ErrorMessages == nil || je.Errors == nil {
				t.Errorf("error body must have errorMessages and errors: %+v", je)
			}
			if tt.message != "" {
				if len(je.ErrorMessages) == 0 || !strings.Contains(strings.Join(je.ErrorMessages, " "), tt.message) {
					t.Errorf("errorMessages = %v, want one containing %q", je.ErrorMessages, tt.message)
				}
				return
			}
			msg, ok := je.Errors[tt.field]
			if !ok {
				t.Fatalf("errors = %v, want key %q", je.Errors, tt.field)
			}
			if !strings.Contains(msg, tt.contains) {
				t.Errorf("errors[%s] = %q, want it to contain %q", tt.field, msg, tt.contains)
			}
		})
	}
	if n := len(env.em.Issues()); n != 1 {
		t.Errorf("only the valid request should create an issue; got %d", n)
	}

	// Several problems are reported together, like Jira does.
	var je jiraErr
	env.expect("POST", "/rest/api/3/issue", map[string]any{"fields": map[string]any{"labels": []string{"a b"}}}, 400, &je)
	for _, k := range []string{"project", "issuetype", "summary", "labels"} {
		if je.Errors[k] == "" {
			t.Errorf("missing errors[%s] in %v", k, je.Errors)
		}
	}
	// Exact message for a string description.
	body := issueBody("x")
	body["fields"].(map[string]any)["description"] = "text"
	je = jiraErr{}
	env.expect("POST", "/rest/api/3/issue", body, 400, &je)
	if je.Errors["description"] != "Operation value must be an Atlassian Document (see the Atlassian Document Format)" {
		t.Errorf("description error = %q", je.Errors["description"])
	}
	// Malformed JSON.
	env.expect("POST", "/rest/api/3/issue", `{"fields":`, 400, &je)
}

func TestCreateIssueWithTransition(t *testing.T) {
	env := newEnv(t, Options{})
	body := issueBody("x")
	body["transition"] = map[string]any{"id": "21"}
	var resp struct {
		Key        string
		Transition struct{ Status int }
	}
	env.expect("POST", "/rest/api/3/issue", body, 201, &resp)
	if resp.Transition.Status != 200 {
		t.Errorf("transition = %+v", resp.Transition)
	}
	if is, _ := env.em.Issue(resp.Key); is.Status != "In Progress" {
		t.Errorf("status = %s", is.Status)
	}
}

func TestComments(t *testing.T) {
	env := newEnv(t, Options{})
	c := env.createIssue("x")
	inline := map[string]any{"type": "doc", "version": 1, "content": []any{map[string]any{"type": "paragraph", "content": []any{
		map[string]any{"type": "text", "text": "Postmortem page: "},
		map[string]any{"type": "inlineCard", "attrs": map[string]any{"url": "https://x.atlassian.net/wiki/spaces/ENG/pages/123"}},
	}}}}
	var cm struct {
		ID      string          `json:"id"`
		Self    string          `json:"self"`
		Body    json.RawMessage `json:"body"`
		Created string          `json:"created"`
		Author  struct{ AccountID string }
	}
	env.expect("POST", "/rest/api/3/issue/"+c.Key+"/comment", map[string]any{"body": inline}, 201, &cm)
	if cm.ID == "" || !strings.HasSuffix(cm.Self, "/comment/"+cm.ID) || cm.Created == "" || cm.Author.AccountID == "" ||
		!strings.Contains(string(cm.Body), "inlineCard") {
		t.Errorf("comment = %+v", cm)
	}
	var je jiraErr
	env.expect("POST", "/rest/api/3/issue/"+c.Key+"/comment", map[string]any{"body": "plain"}, 400, &je)
	if !strings.Contains(je.Errors["comment"], msgNotADF) {
		t.Errorf("string body error = %+v", je)
	}
	env.expect("POST", "/rest/api/3/issue/"+c.Key+"/comment", map[string]any{"body": adfDoc("")}, 400, &je)
	env.expect("POST", "/rest/api/3/issue/"+c.Key+"/comment", map[string]any{}, 400, &je)
	env.expect("POST", "/rest/api/3/issue/OPS-42/comment", map[string]any{"body": adfDoc("x")}, 404, &je)
	if cs := env.em.Comments(c.Key); len(cs) != 1 || cs[0].ID != cm.ID {
		t.Errorf("Comments() = %+v", cs)
	}
	var list struct {
		Total    int
		Comments []struct{ ID string }
	}
	env.expect("GET", "/rest/api/3/issue/"+c.Key+"/comment", nil, 200, &list)
	if list.Total != 1 {
		t.Errorf("list = %+v", list)
	}
}

func TestRemoteLinkUpsert(t *testing.T) {
	env := newEnv(t, Options{})
	c := env.createIssue("x")
	path := "/rest/api/3/issue/" + c.Key + "/remotelink"
	full := map[string]any{
		"globalId":     "rollback-postmortem:rbk-7f3a9c",
		"application":  map[string]any{"type": "com.example.rollback-bot", "name": "Rollback Bot"},
		"relationship": "postmortem",
		"object": map[string]any{"url": "https://x.atlassian.net/wiki/spaces/ENG/pages/123", "title": "Postmortem",
			"summary": "Confluence postmortem"},
	}
	var first struct {
		ID   int64  `json:"id"`
		Self string `json:"self"`
	}
	env.expect("POST", path, full, 201, &first)
	if first.ID == 0 || first.Self != env.srv.URL+"/rest/api/3/issue/"+c.Key+"/remotelink/10000" {
		t.Errorf("created = %+v", first)
	}
	// The id is a JSON number, not a string.
	_, raw := env.do("POST", path, full)
	if !strings.Contains(string(raw), `"id":10000`) {
		t.Errorf("id should be numeric: %s", raw)
	}

	// Same globalId, fewer fields: 200, same id, omitted fields nulled.
	partial := map[string]any{
		"globalId": "rollback-postmortem:rbk-7f3a9c",
		"object":   map[string]any{"url": "https://x.atlassian.net/wiki/spaces/ENG/pages/124", "title": "Postmortem v2"},
	}
	var second struct{ ID int64 }
	env.expect("POST", path, partial, 200, &second)
	if second.ID != first.ID {
		t.Errorf("update changed id %d -> %d", first.ID, second.ID)
	}
	links := env.em.RemoteLinks(c.Key)
	if len(links) != 1 {
		t.Fatalf("links = %+v", links)
	}
	l := links[0]
	if l.URL != "https://x.atlassian.net/wiki/spaces/ENG/pages/124" || l.Title != "Postmortem v2" ||
		l.Relationship != "" || l.Application != nil || l.Summary != "" {
		t.Errorf("after update = %+v", l)
	}

	// Without globalId every POST creates a new link.
	noGID := map[string]any{"object": map[string]any{"url": "https://example.com/a", "title": "A"}}
	env.expect("POST", path, noGID, 201, nil)
	env.expect("POST", path, noGID, 201, nil)
	if n := len(env.em.RemoteLinks(c.Key)); n != 3 {
		t.Errorf("links = %d, want 3", n)
	}

	// Validation.
	tests := []struct {
		name  string
		body  map[string]any
		field string
		want  string
	}{
		{"no title", map[string]any{"object": map[string]any{"url": "https://e.x/"}}, "title", "'title' is required."},
		{"no url", map[string]any{"object": map[string]any{"title": "t"}}, "url", "'url' is required."},
		{"no object", map[string]any{"globalId": "g"}, "title", "'title' is required."},
		{"long globalId", map[string]any{"globalId": strings.Repeat("g", 256), "object": map[string]any{"url": "https://e.x/", "title": "t"}}, "globalId", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var je jiraErr
			env.expect("POST", path, tt.body, 400, &je)
			if _, ok := je.Errors[tt.field]; !ok || !strings.Contains(je.Errors[tt.field], tt.want) {
				t.Errorf("errors = %v, want %s: %q", je.Errors, tt.field, tt.want)
			}
		})
	}
	env.expect("POST", "/rest/api/3/issue/OPS-99/remotelink", full, 404, nil)
}

func TestTransitions(t *testing.T) {
	env := newEnv(t, Options{})
	c := env.createIssue("x")
	path := "/rest/api/3/issue/" + c.Key + "/transitions"
	var tr struct {
		Transitions []struct {
			ID string
			To struct {
				Name           string
				StatusCategory struct{ Key string }
			}
		}
	}
	env.expect("GET", path, nil, 200, &tr)
	byName := map[string]string{}
	for _, x := range tr.Transitions {
		byName[x.To.Name] = x.ID
	}
	if len(tr.Transitions) != 2 || byName["In Progress"] == "" || byName["Done"] == "" {
		t.Fatalf("transitions from To Do = %+v", tr)
	}
	env.expect("POST", path, map[string]any{"transition": map[string]any{"id": byName["In Progress"]}}, 204, nil)
	env.expect("POST", path, map[string]any{"transition": map[string]any{"id": byName["In Progress"]}}, 400, nil)
	env.expect("POST", path, map[string]any{"transition": map[string]any{"id": "999"}}, 400, nil)
	env.expect("POST", path, map[string]any{}, 400, nil)
	env.expect("POST", path, map[string]any{
		"transition": map[string]any{"id": byName["Done"]},
		"update":     map[string]any{"comment": []any{map[string]any{"add": map[string]any{"body": adfDoc("Resolved by rollback")}}}},
	}, 204, nil)
	var issue struct {
		Fields struct {
			Status struct {
				Name           string
				StatusCategory struct{ Key string }
			}
			Resolution *struct{ Name string }
		}
	}
	env.expect("GET", "/rest/api/3/issue/"+c.Key, nil, 200, &issue)
	if issue.Fields.Status.Name != "Done" || issue.Fields.Status.StatusCategory.Key != "done" ||
		issue.Fields.Resolution == nil || issue.Fields.Resolution.Name != "Done" {
		t.Errorf("after Done = %+v", issue.Fields)
	}
	if n := len(env.em.Comments(c.Key)); n != 1 {
		t.Errorf("transition comment not added: %d", n)
	}
	env.expect("POST", "/rest/api/3/issue/OPS-99/transitions", map[string]any{"transition": map[string]any{"id": "11"}}, 404, nil)
}

func TestSearchRemoved(t *testing.T) {
	env := newEnv(t, Options{})
	for _, m := range []string{"GET", "POST"} {
		var body any
		if m == "POST" {
			body = map[string]any{"jql": "project = OPS"}
		}
		resp, data := env.do(m, "/rest/api/3/search", body)
		if resp.StatusCode != http.StatusGone {
			t.Errorf("%s /search = %d", m, resp.StatusCode)
		}
		var je jiraErr
		if json.Unmarshal(data, &je) != nil || len(je.ErrorMessages) != 1 || !strings.Contains(je.ErrorMessages[0], "CHANGE-2046") {
			t.Errorf("%s /search body = %s", m, data)
		}
	}
}

// SkipADFSchema leaves out the schema check, not the shape check, and can
// be turned back on.
func TestSkipADFSchema(t *testing.T) {
	env := newEnv(t, Options{})
	unknownNode := map[string]any{"type": "doc", "version": 1, "content": []any{map[string]any{"type": "marquee"}}}
	create := func(desc any, status int) {
		t.Helper()
		body := issueBody("skip schema")
		body["fields"].(map[string]any)["description"] = desc
		env.expect("POST", "/rest/api/3/issue", body, status, nil)
	}
	env.em.SkipADFSchema(true)
	create(unknownNode, 201)
	create("plain text", 400)
	create(42, 400)
	env.em.SkipADFSchema(false)
	create(unknownNode, 400)
}
