package emulator

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// jiraFlavours are Jira Cloud REST v3 and Data Center REST v2, with a
// comment body each takes.
var jiraFlavours = []struct {
	name, prefix string
	dc           bool
	body         func(text string) any
}{
	{"cloud", "/rest/api/3", false, func(s string) any { return adfDoc(s) }},
	{"dc", "/rest/api/2", true, func(s string) any { return s }},
}

type commentList struct {
	StartAt    int                          `json:"startAt"`
	MaxResults int                          `json:"maxResults"`
	Total      int                          `json:"total"`
	Comments   []map[string]json.RawMessage `json:"comments"`
}

// commentProps decodes a comment's "properties" member; ok is false when
// the member is absent.
func commentProps(t *testing.T, c map[string]json.RawMessage) (props []struct {
	Self  string          `json:"self"`
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}, ok bool) {
	t.Helper()
	raw, ok := c["properties"]
	if !ok {
		return nil, false
	}
	if err := json.Unmarshal(raw, &props); err != nil {
		t.Fatalf("properties %s: %v", raw, err)
	}
	return props, true
}

func TestCommentProperties(t *testing.T) {
	for _, fl := range jiraFlavours {
		t.Run(fl.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			key := env.createIssue("x").Key
			path := fl.prefix + "/issue/" + key + "/comment"
			prop := []any{map[string]any{"key": "rollback-incident", "value": map[string]any{"id": "ev-1"}}}

			var created map[string]json.RawMessage
			env.expect("POST", path, map[string]any{"body": fl.body("tagged"), "properties": prop}, 201, &created)
			if _, ok := commentProps(t, created); ok {
				t.Errorf("create answer without expand has properties: %v", created)
			}
			env.expect("POST", path, map[string]any{"body": fl.body("plain")}, 201, nil)
			env.expect("POST", path+"?expand=renderedBody,properties", map[string]any{"body": fl.body("expanded"), "properties": prop}, 201, &created)
			if props, ok := commentProps(t, created); !ok || len(props) != 1 || props[0].Key != "rollback-incident" {
				t.Errorf("create answer with expand=properties: %v", created)
			}

			var list commentList
			env.expect("GET", path, nil, 200, &list)
			if list.Total != 3 || len(list.Comments) != 3 {
				t.Fatalf("list = %+v", list)
			}
			for _, c := range list.Comments {
				if _, ok := commentProps(t, c); ok {
					t.Errorf("comment listed without expand has properties: %v", c)
				}
			}
			env.expect("GET", path+"?expand=properties", nil, 200, &list)
			for i, c := range list.Comments {
				props, ok := commentProps(t, c)
				if !ok {
					t.Fatalf("comment %d: no properties member with expand=properties", i)
				}
				if i == 1 {
					if len(props) != 0 {
						t.Errorf("untagged comment has properties %v", props)
					}
					continue
				}
				var id string
				json.Unmarshal(c["id"], &id)
				if len(props) != 1 || props[0].Key != "rollback-incident" || string(props[0].Value) != `{"id":"ev-1"}` {
					t.Errorf("comment %d properties = %+v", i, props)
				}
				// Data Center's EntityPropertyBean has a self link; Cloud's
				// EntityProperty is {key, value} only.
				if wantSelf := fl.dc; (props[0].Self != "") != wantSelf ||
					(wantSelf && props[0].Self != env.srv.URL+"/rest/api/2/comment/"+id+"/properties/rollback-incident") {
					t.Errorf("comment %d property self = %q", i, props[0].Self)
				}
			}
			cs := env.em.Comments(key)
			if len(cs) != 3 || string(cs[0].Properties["rollback-incident"]) != `{"id":"ev-1"}` || cs[1].Properties != nil {
				t.Errorf("Comments() = %+v", cs)
			}
		})
	}
}

func TestCommentPropertiesRejected(t *testing.T) {
	big := strings.Repeat("x", maxPropertyValueLen)
	for _, fl := range jiraFlavours {
		t.Run(fl.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			key := env.createIssue("x").Key
			path := fl.prefix + "/issue/" + key + "/comment"
			tests := []struct {
				name  string
				props any
				msg   string
			}{
				{"object instead of array", map[string]any{"key": "k", "value": map[string]any{}}, `properties must be an array of {"key","value"} objects`},
				{"string", "rollback-incident", `properties must be an array of {"key","value"} objects`},
				{"array of strings", []any{"k"}, `properties must be an array of {"key","value"} objects`},
				{"no key", []any{map[string]any{"value": map[string]any{"id": "1"}}}, "The property key cannot be empty."},
				{"long key", []any{map[string]any{"key": strings.Repeat("k", 256), "value": map[string]any{}}}, "The property key cannot be longer than 255 characters."},
				{"no value", []any{map[string]any{"key": "k"}}, "The property value cannot be empty."},
				{"null value", []any{map[string]any{"key": "k", "value": nil}}, "The property value cannot be empty."},
				{"value too long", []any{map[string]any{"key": "k", "value": map[string]any{"v": big}}}, "The property value cannot be longer than 32768 bytes."},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var je jiraErr
					env.expect("POST", path, map[string]any{"body": fl.body("x"), "properties": tt.props}, 400, &je)
					if len(je.ErrorMessages) != 1 || je.ErrorMessages[0] != tt.msg || je.Errors == nil {
						t.Errorf("error = %+v, want %q", je, tt.msg)
					}
				})
			}
			// A value that is not an object: Cloud takes any JSON value;
			// Data Center's bean casts it to a map and fails with a 500.
			resp, data := env.do("POST", path, map[string]any{"body": fl.body("x"), "properties": []any{map[string]any{"key": "k", "value": "text"}}})
			if want := map[bool]int{false: 201, true: 500}[fl.dc]; resp.StatusCode != want {
				t.Errorf("string value: status %d, want %d: %s", resp.StatusCode, want, data)
			}
			if n, want := len(env.em.Comments(key)), map[bool]int{false: 1, true: 0}[fl.dc]; n != want {
				t.Errorf("comments after the rejected creates = %d, want %d", n, want)
			}
		})
	}
}

func TestCommentPaging(t *testing.T) {
	for _, fl := range jiraFlavours {
		t.Run(fl.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			key := env.createIssue("x").Key
			path := fl.prefix + "/issue/" + key + "/comment"
			var ids []string
			for i := range 5 {
				var c struct{ ID string }
				env.expect("POST", path, map[string]any{"body": fl.body("c" + strconv.Itoa(i))}, 201, &c)
				ids = append(ids, c.ID)
			}
			page := func(query string) (commentList, []string) {
				t.Helper()
				var l commentList
				env.expect("GET", path+query, nil, 200, &l)
				var got []string
				for _, c := range l.Comments {
					var id string
					json.Unmarshal(c["id"], &id)
					got = append(got, id)
				}
				return l, got
			}
			l, got := page("")
			// Cloud pages by 100 by default; Data Center returns them all.
			if want := map[bool]int{false: 100, true: 5}[fl.dc]; l.MaxResults != want || l.Total != 5 || len(got) != 5 {
				t.Errorf("default page = %+v", l)
			}
			l, got = page("?startAt=1&maxResults=2")
			if l.StartAt != 1 || l.MaxResults != 2 || l.Total != 5 || strings.Join(got, ",") != strings.Join(ids[1:3], ",") {
				t.Errorf("page 2 = %+v %v", l, got)
			}
			l, got = page("?startAt=4&maxResults=2")
			if l.Total != 5 || strings.Join(got, ",") != ids[4] {
				t.Errorf("last page = %+v %v", l, got)
			}
			if l, got = page("?startAt=7"); l.Total != 5 || len(got) != 0 {
				t.Errorf("past the end = %+v %v", l, got)
			}
			if _, got = page("?orderBy=-created&maxResults=1"); len(got) != 1 || got[0] != ids[4] {
				t.Errorf("newest first = %v", got)
			}
			for _, q := range []string{"?startAt=-1", "?startAt=x", "?maxResults=two"} {
				var je jiraErr
				env.expect("GET", path+q, nil, 400, &je)
				if len(je.ErrorMessages) != 1 {
					t.Errorf("%s: %+v", q, je)
				}
			}
		})
	}
}
