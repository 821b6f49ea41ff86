package emulator

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseJQL(t *testing.T) {
	tests := []struct {
		jql     string
		clauses []jqlClause
		order   []jqlOrder
		bounded bool
		err     string
	}{
		{
			jql:     `project = OPS AND labels = "rbk-0123abcd"`,
			clauses: []jqlClause{{field: "project", name: "project", values: []string{"OPS"}}, {field: "labels", name: "labels", values: []string{"rbk-0123abcd"}}},
			bounded: true,
		},
		{
			jql:     `project = "OPS" and labels = rbk-0123abcd`,
			clauses: []jqlClause{{field: "project", name: "project", values: []string{"OPS"}}, {field: "labels", name: "labels", values: []string{"rbk-0123abcd"}}},
			bounded: true,
		},
		{
			jql:     `labels in ("a", 'b', c) ORDER BY created DESC`,
			clauses: []jqlClause{{field: "labels", name: "labels", values: []string{"a", "b", "c"}}},
			order:   []jqlOrder{{field: "created", desc: true}},
			bounded: true,
		},
		{
			jql:     `labels = "say \"hi\"" AND labels != 'it\'s'`,
			clauses: []jqlClause{{field: "labels", name: "labels", values: []string{`say "hi"`}}, {field: "labels", name: "labels", negate: true, values: []string{"it's"}}},
			bounded: true,
		},
		{
			jql:     `issuekey NOT IN (OPS-1) AND statusCategory != Done AND type = Incident order by key asc, updated`,
			clauses: []jqlClause{{field: "key", name: "issuekey", negate: true, values: []string{"OPS-1"}}, {field: "statuscategory", name: "statusCategory", negate: true, values: []string{"Done"}}, {field: "issuetype", name: "type", values: []string{"Incident"}}},
			order:   []jqlOrder{{field: "key"}, {field: "updated"}},
			bounded: true,
		},
		{jql: `ORDER BY created DESC`, order: []jqlOrder{{field: "created", desc: true}}},
		{jql: ``},
		{jql: `   `},
		{jql: `project = OPS OR labels = x`, err: "Error in the JQL Query: The emulator supports only AND between clauses, not 'OR'. (line 1, character 15)"},
		{jql: `project = OPS labels = x`, err: "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'labels'. (line 1, character 15)"},
		{jql: `project ~ OPS`, err: "Error in the JQL Query: The emulator does not support the operator '~'"},
		{jql: `project`, err: "Error in the JQL Query: Expecting operator but got EOF"},
		{jql: `labels = "unterminated`, err: "has not been completed"},
		{jql: `labels = 'bad \q escape'`, err: "illegal"},
		{jql: `labels in (a, b`, err: "Expecting ',' or ')' but got EOF"},
		{jql: `labels = and`, err: "surround 'and' in quotation marks"},
		{jql: `labels is EMPTY`, err: "does not support the operator 'is'"},
		{jql: `(project = OPS)`, err: "parenthesised"},
		{jql: `not project = OPS`, err: "'NOT' before a clause"},
		{jql: `assignee = currentUser()`, err: "does not support searching on field 'assignee'"},
		{jql: `foo = bar`, err: "Field 'foo' does not exist or you do not have permission to view it."},
		{jql: `project in projectsWhereUserHasRole("x")`, err: "Expecting '(' but got 'projectsWhereUserHasRole'"},
		{jql: `project = currentProject()`, err: "does not support JQL functions"},
		{jql: `project = OPS ORDER BY summary`, err: "Not able to sort using field 'summary'"},
		{jql: `project = OPS ORDER created`, err: "Expecting 'by'"},
		{jql: "project = OPS\nAND bogus = 1", err: "Field 'bogus' does not exist"},
		{jql: "project = OPS\nAND labels x", err: "(line 2, character 12)"},
		{jql: `project = OPS ORDER BY created, created, created, created, created, created, created, created`, err: "more than 7"},
	}
	for _, tt := range tests {
		t.Run(tt.jql, func(t *testing.T) {
			q, err := parseJQL(tt.jql)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("parseJQL(%q) = %+v, want error containing %q", tt.jql, q, tt.err)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %q, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJQL(%q) error: %v", tt.jql, err)
			}
			if !reflect.DeepEqual(q.clauses, tt.clauses) {
				t.Errorf("clauses = %+v, want %+v", q.clauses, tt.clauses)
			}
			if !reflect.DeepEqual(q.orderBy, tt.order) {
				t.Errorf("order = %+v, want %+v", q.orderBy, tt.order)
			}
			if q.bounded() != tt.bounded {
				t.Errorf("bounded = %v, want %v", q.bounded(), tt.bounded)
			}
		})
	}
}

type searchResult struct {
	Issues []struct {
		ID     string         `json:"id"`
		Key    string         `json:"key"`
		Self   string         `json:"self"`
		Fields map[string]any `json:"fields"`
	} `json:"issues"`
	IsLast        bool    `json:"isLast"`
	NextPageToken *string `json:"nextPageToken"`
}

func (r searchResult) keys() []string {
	var out []string
	for _, is := range r.Issues {
		out = append(out, is.Key)
	}
	return out
}

func TestSearchJQL(t *testing.T) {
	env := newEnv(t, Options{Projects: map[string][]string{"OPS": {"Incident", "Task"}, "SRE": {"Incident"}}})
	a := env.createIssue("a", "rollback", "rbk-0123abcd")
	env.createIssue("b", "rollback", "rbk-ffff0000")
	env.createIssue("c")
	sre := issueBody("d", "rbk-0123abcd")
	sre["fields"].(map[string]any)["project"] = map[string]any{"key": "SRE"}
	env.expect("POST", "/rest/api/3/issue", sre, 201, nil)

	// Default fields: ids only.
	var res searchResult
	env.expect("POST", "/rest/api/3/search/jql", map[string]any{"jql": `project = OPS AND labels = "rbk-0123abcd"`}, 200, &res)
	if len(res.Issues) != 1 || res.Issues[0].ID != a.ID || res.Issues[0].Key != "" || res.Issues[0].Fields != nil || !res.IsLast || res.NextPageToken != nil {
		t.Fatalf("default-fields result = %+v", res)
	}

	tests := []struct {
		jql  string
		want string
	}{
		{`project = OPS AND labels = "rbk-0123abcd"`, "OPS-1"},
		{`project = "ops" AND labels = rbk-0123abcd`, "OPS-1"},
		{`labels = 'rbk-0123abcd'`, "SRE-1,OPS-1"},
		{`labels = rbk-0123abcd ORDER BY created ASC`, "OPS-1,SRE-1"},
		{`labels in ("rbk-0123abcd", "rbk-ffff0000") AND project = OPS ORDER BY key`, "OPS-1,OPS-2"},
		{`project = OPS AND labels != rbk-0123abcd`, "OPS-2"},
		{`project = OPS AND labels not in (rollback)`, ""},
		{`project = OPS ORDER BY created DESC`, "OPS-3,OPS-2,OPS-1"},
		{`key = OPS-2`, "OPS-2"},
		{`issuekey in (OPS-1, SRE-1) order by key desc`, "SRE-1,OPS-1"},
		{`project = OPS AND status = "To Do" AND statusCategory != Done AND issuetype = Incident`, "OPS-3,OPS-2,OPS-1"},
		{`project in (OPS, SRE) AND labels = nothing-here`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.jql, func(t *testing.T) {
			var res searchResult
			env.expect("POST", "/rest/api/3/search/jql", map[string]any{"jql": tt.jql, "fields": []string{"key", "summary"}}, 200, &res)
			if got := strings.Join(res.keys(), ","); got != tt.want {
				t.Errorf("keys = %q, want %q", got, tt.want)
			}
			for _, is := range res.Issues {
				if is.Self == "" || is.Fields["summary"] == nil || len(is.Fields) != 1 {
					t.Errorf("issue = %+v", is)
				}
			}
		})
	}

	// Errors.
	errTests := []struct {
		name string
		body any
		want string
	}{
		{"unbounded empty", map[string]any{"jql": ""}, msgUnbounded},
		{"unbounded order only", map[string]any{"jql": "ORDER BY created DESC"}, msgUnbounded},
		{"no jql", map[string]any{}, msgUnbounded},
		{"syntax", map[string]any{"jql": "project = OPS OR project = SRE"}, "Error in the JQL Query:"},
		{"unknown project", map[string]any{"jql": "project = NOPE"}, "The value 'NOPE' does not exist for the field 'project'."},
		{"unknown status", map[string]any{"jql": "project = OPS AND status = Blocked"}, "The value 'Blocked' does not exist for the field 'status'."},
		{"unknown key", map[string]any{"jql": "key = OPS-999"}, "An issue with key 'OPS-999' does not exist for field 'key'."},
		{"invalid key", map[string]any{"jql": "key = x"}, "The issue key 'x' for field 'key' is invalid."},
		{"unknown body key", map[string]any{"jql": "project = OPS", "startAt": 0}, "startAt"},
		{"wrong type", map[string]any{"jql": "project = OPS", "fields": "summary"}, "fields"},
		{"too many reconcile", map[string]any{"jql": "project = OPS", "reconcileIssues": make([]int, 51)}, "50"},
		{"bad token", map[string]any{"jql": "project = OPS", "nextPageToken": "garbage"}, "token"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			var je jiraErr
			env.expect("POST", "/rest/api/3/search/jql", tt.body, 400, &je)
			if !strings.Contains(strings.Join(je.ErrorMessages, "|"), tt.want) {
				t.Errorf("errorMessages = %q, want %q", je.ErrorMessages, tt.want)
			}
		})
	}
}

func TestSearchPaging(t *testing.T) {
	env := newEnv(t, Options{})
	for i := range 7 {
		env.createIssue(fmt.Sprintf("issue %d", i), "page-me")
	}
	var all []string
	var token *string
	pages := 0
	for {
		body := map[string]any{"jql": "labels = page-me ORDER BY key ASC", "maxResults": 3, "fields": []string{"key"}}
		if token != nil {
			body["nextPageToken"] = *token
		}
		var res searchResult
		env.expect("POST", "/rest/api/3/search/jql", body, 200, &res)
		pages++
		all = append(all, res.keys()...)
		if res.IsLast {
			if res.NextPageToken != nil {
				t.Error("last page must not carry a nextPageToken")
			}
			break
		}
		if res.NextPageToken == nil || len(res.Issues) != 3 {
			t.Fatalf("page %d = %+v", pages, res)
		}
		token = res.NextPageToken
	}
	if pages != 3 || strings.Join(all, ",") != "OPS-1,OPS-2,OPS-3,OPS-4,OPS-5,OPS-6,OPS-7" {
		t.Errorf("pages = %d, keys = %v", pages, all)
	}
	// A token is bound to its query.
	var je jiraErr
	first := searchResult{}
	env.expect("POST", "/rest/api/3/search/jql", map[string]any{"jql": "labels = page-me", "maxResults": 3}, 200, &first)
	env.expect("POST", "/rest/api/3/search/jql", map[string]any{"jql": "labels = other", "nextPageToken": *first.NextPageToken}, 400, &je)
}

func TestSearchLag(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}
	env := newEnv(t, Options{SearchLag: 30 * time.Second, Now: clock.Now})
	c := env.createIssue("fresh", "rbk-lag")
	jql := map[string]any{"jql": `project = OPS AND labels = "rbk-lag"`}

	var res searchResult
	env.expect("POST", "/rest/api/3/search/jql", jql, 200, &res)
	if len(res.Issues) != 0 {
		t.Fatalf("fresh issue visible before the lag: %+v", res)
	}
	// GET /issue is strongly consistent.
	env.expect("GET", "/rest/api/3/issue/"+c.Key, nil, 200, nil)

	// reconcileIssues makes it visible (ids as numbers).
	var id int64
	fmt.Sscan(c.ID, &id)
	withReconcile := map[string]any{"jql": jql["jql"], "reconcileIssues": []int64{id}}
	env.expect("POST", "/rest/api/3/search/jql", withReconcile, 200, &res)
	if len(res.Issues) != 1 || res.Issues[0].ID != c.ID {
		t.Fatalf("reconciled search = %+v", res)
	}
	res = searchResult{}
	env.expect("POST", "/rest/api/3/search/jql", map[string]any{"jql": jql["jql"], "reconcileIssues": []string{c.ID}}, 200, &res)
	if len(res.Issues) != 1 {
		t.Fatalf("reconcileIssues as strings = %+v", res)
	}

	// After the lag it is visible without reconciliation.
	clock.Advance(31 * time.Second)
	env.expect("POST", "/rest/api/3/search/jql", jql, 200, &res)
	if len(res.Issues) != 1 {
		t.Fatalf("issue not visible after lag: %+v", res)
	}

	// SetSearchLag applies at runtime.
	env.em.SetSearchLag(time.Hour)
	env.expect("POST", "/rest/api/3/search/jql", jql, 200, &res)
	if len(res.Issues) != 0 {
		t.Fatalf("issue visible despite SetSearchLag(1h): %+v", res)
	}
	env.em.SetSearchLag(0)
	env.expect("POST", "/rest/api/3/search/jql", jql, 200, &res)
	if len(res.Issues) != 1 {
		t.Fatalf("issue not visible with lag 0: %+v", res)
	}
}
