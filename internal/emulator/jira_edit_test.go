package emulator

import (
	"net/http"
	"strings"
	"testing"
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
