package emulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Edit issue sets the description (ADF on v3, wiki markup on v2) and
// refuses what Jira refuses: a field not on the edit screen, an empty
// summary, a description of the wrong form, an unknown issue.
func TestEditIssue(t *testing.T) {
	for _, fl := range jiraFlavours {
		t.Run(fl.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			key := env.createIssue("to edit").Key
			path := fl.prefix + "/issue/" + key
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"description": fl.body("rewritten facts")}}, http.StatusNoContent, nil)
			if d := descriptionOf(env, key); !strings.Contains(d, "rewritten facts") {
				t.Errorf("description after the edit: %s", d)
			}
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"customfield_10001": "x"}}, http.StatusBadRequest, nil)
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"summary": ""}}, http.StatusBadRequest, nil)
			wrong := any(adfDoc("x"))
			if !fl.dc {
				wrong = "plain text where ADF is expected"
			}
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"description": wrong}}, http.StatusBadRequest, nil)
			env.expect("PUT", fl.prefix+"/issue/OPS-999", map[string]any{"fields": map[string]any{"description": fl.body("x")}}, http.StatusNotFound, nil)
			if d := descriptionOf(env, key); !strings.Contains(d, "rewritten facts") {
				t.Errorf("a refused edit changed the description: %s", d)
			}
		})
	}
}

// The refusals carry Jira's error collection: the field's message under
// "errors", body-level problems under "errorMessages"; none changes the
// issue.
func TestEditIssueRefusals(t *testing.T) {
	type errorCollection struct {
		ErrorMessages []string          `json:"errorMessages"`
		Errors        map[string]string `json:"errors"`
	}
	for _, fl := range jiraFlavours {
		t.Run(fl.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			key := env.createIssue("to edit").Key
			path := fl.prefix + "/issue/" + key
			before := issueByKey(env, key)

			var ec errorCollection
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"assignee": map[string]any{"name": "harry"}}}, http.StatusBadRequest, &ec)
			if got, want := ec.Errors["assignee"], "Field 'assignee' cannot be set. It is not on the appropriate screen, or unknown."; got != want {
				t.Errorf("uneditable field: errors[assignee] = %q, want %q", got, want)
			}
			ec = errorCollection{}
			env.expect("PUT", path, map[string]any{"update": map[string]any{"labels": []any{map[string]any{"add": "x"}}}}, http.StatusBadRequest, &ec)
			if !strings.Contains(ec.Errors["labels"], "cannot be set") {
				t.Errorf("uneditable field under update: %+v", ec)
			}
			ec = errorCollection{}
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"summary": strings.Repeat("s", 256)}}, http.StatusBadRequest, &ec)
			if !strings.Contains(ec.Errors["summary"], "255") {
				t.Errorf("summary of 256 characters: %+v", ec)
			}
			ec = errorCollection{}
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"summary": 7}}, http.StatusBadRequest, &ec)
			if ec.Errors["summary"] == "" {
				t.Errorf("summary not a string: %+v", ec)
			}
			ec = errorCollection{}
			env.expect("PUT", path, map[string]any{
				"fields": map[string]any{"summary": "a"},
				"update": map[string]any{"summary": []any{map[string]any{"set": "b"}}},
			}, http.StatusBadRequest, &ec)
			if len(ec.ErrorMessages) != 1 || ec.ErrorMessages[0] != "Field 'summary' cannot appear in both 'fields' and 'update'" {
				t.Errorf("a field in both fields and update: %+v", ec)
			}
			env.expect("PUT", path, map[string]any{"update": map[string]any{"summary": []any{map[string]any{"add": "b"}}}}, http.StatusBadRequest, nil)
			env.expect("PUT", path, map[string]any{"fields": "description"}, http.StatusBadRequest, nil)
			env.expect("PUT", path, map[string]any{"fieldz": map[string]any{}}, http.StatusBadRequest, nil)
			for _, body := range []string{`[]`, `"x"`, `null`, `{"fields":`, `{} {}`} {
				env.expect("PUT", path, body, http.StatusBadRequest, nil)
			}
			// One bad field refuses the whole edit: the good one is not
			// applied either.
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"summary": "new", "customfield_10001": "x"}}, http.StatusBadRequest, nil)

			ec = errorCollection{}
			env.expect("PUT", fl.prefix+"/issue/OPS-999", map[string]any{"fields": map[string]any{"summary": "x"}}, http.StatusNotFound, &ec)
			if len(ec.ErrorMessages) != 1 || ec.ErrorMessages[0] != msgIssueNotFound {
				t.Errorf("unknown issue: %+v", ec)
			}

			after := issueByKey(env, key)
			if after.Summary != before.Summary || string(after.Description) != string(before.Description) ||
				after.DescriptionWiki != before.DescriptionWiki || !after.Updated.Equal(before.Updated) {
				t.Errorf("a refused edit changed the issue:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

// An edit moves the issue's updated time and sets what it names, through
// "fields" or a "set" under "update"; the issue
// read back has the new values. Cloud's returnIssue answers the issue.
func TestEditIssueApplies(t *testing.T) {
	for _, fl := range jiraFlavours {
		t.Run(fl.name, func(t *testing.T) {
			now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
			env := newEnv(t, Options{Now: func() time.Time { return now }})
			key := env.createIssue("to edit").Key
			path := fl.prefix + "/issue/" + key
			now = now.Add(time.Hour)
			env.expect("PUT", path, map[string]any{
				"fields": map[string]any{"summary": "renamed"},
				"update": map[string]any{"description": []any{map[string]any{"set": fl.body("set by an operation")}}},
			}, http.StatusNoContent, nil)
			is := issueByKey(env, key)
			if is.Summary != "renamed" || !strings.Contains(descriptionOf(env, key), "set by an operation") {
				t.Errorf("after the edit: summary %q, description %s", is.Summary, descriptionOf(env, key))
			}
			if !is.Updated.Equal(now) || is.Created.Equal(now) {
				t.Errorf("updated %v, created %v; want updated %v", is.Updated, is.Created, now)
			}

			var got struct {
				Fields struct {
					Description json.RawMessage `json:"description"`
				} `json:"fields"`
			}
			env.expect("GET", path+"?fields=description", nil, http.StatusOK, &got)
			if !strings.Contains(string(got.Fields.Description), "set by an operation") {
				t.Errorf("GET fields=description: %s", got.Fields.Description)
			}
			if fl.dc != (len(got.Fields.Description) > 0 && got.Fields.Description[0] == '"') {
				t.Errorf("description in the wrong form for %s: %s", fl.name, got.Fields.Description)
			}

			// A null description clears it.
			env.expect("PUT", path, map[string]any{"fields": map[string]any{"description": nil}}, http.StatusNoContent, nil)
			env.expect("GET", path+"?fields=description", nil, http.StatusOK, &got)
			if string(got.Fields.Description) != "null" {
				t.Errorf("cleared description reads %s", got.Fields.Description)
			}

			resp, data := env.do("PUT", path+"?returnIssue=true", map[string]any{"fields": map[string]any{"summary": "again"}})
			if fl.dc {
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("Data Center has no returnIssue: %d %s", resp.StatusCode, data)
				}
			} else if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"summary":"again"`) {
				t.Errorf("returnIssue=true: %d %s", resp.StatusCode, data)
			}
		})
	}
}
