package emulator

// Jira issue comments: POST/GET /rest/api/{3,2}/issue/{issueIdOrKey}/comment.
// v3 bodies are ADF, v2 (Data Center) bodies wiki-markup strings.
//
// A comment can carry entity properties, set in the create body
// ("properties":[{"key","value"}], the Comment schema's "Optional on create
// and update" list on Cloud, CommentJsonBean.setProperties on Data Center)
// and read back with ?expand=properties, which lists them on each comment.
// Without that expansion a comment has no "properties" member.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// commentWire is Jira's Comment.
type commentWire struct {
	Self         string          `json:"self"`
	ID           string          `json:"id"`
	Author       any             `json:"author"`
	Body         any             `json:"body"`
	UpdateAuthor any             `json:"updateAuthor"`
	Created      string          `json:"created"`
	Updated      string          `json:"updated"`
	JSDPublic    *bool           `json:"jsdPublic,omitempty"` // Cloud only
	Properties   *[]propertyWire `json:"properties,omitempty"`
}

// propertyWire is an entity property in a comment: Cloud's EntityProperty
// {key, value}; Data Center's EntityPropertyBean adds its self link.
type propertyWire struct {
	Self  string          `json:"self,omitempty"`
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

func (e *Emulator) commentWire(is *issue, c *comment, base string, v jiraVer, withProps bool) commentWire {
	u := e.userFor(base, v)
	w := commentWire{
		Self:         base + v.prefix + "/issue/" + is.id + "/comment/" + c.id,
		ID:           c.id,
		Author:       u,
		Body:         c.body.value(v),
		UpdateAuthor: u,
		Created:      jiraTime(c.created),
		Updated:      jiraTime(c.created),
	}
	if !v.dc {
		public := true
		w.JSDPublic = &public
	}
	if withProps {
		props := make([]propertyWire, 0, len(c.props))
		for _, k := range slices.Sorted(maps.Keys(c.props)) {
			p := propertyWire{Key: k, Value: c.props[k]}
			if v.dc {
				p.Self = base + v.prefix + "/comment/" + c.id + "/properties/" + k
			}
			props = append(props, p)
		}
		w.Properties = &props
	}
	return w
}

// expands reports whether the expand parameter names item; it is a
// comma-separated list and may be repeated.
func expands(r *http.Request, item string) bool {
	return slices.ContainsFunc(queryList(r.URL.Query(), "expand"), func(s string) bool {
		return strings.TrimSpace(s) == item
	})
}

func (e *Emulator) addComment(w http.ResponseWriter, r *http.Request) {
	v := jiraVerOf(r)
	obj, err := decodeMembers(r, "Comment", "body", "visibility", "properties")
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	props, err := validateProperties(obj["properties"])
	if err != nil {
		writeJiraError(w, http.StatusBadRequest, []string{err.Error()}, nil)
		return
	}
	if v.dc {
		// Data Center's CommentJsonBean.setProperties casts each value to
		// a Map: any other JSON value is an uncaught ClassCastException.
		for _, val := range props {
			var m map[string]json.RawMessage
			if json.Unmarshal(val, &m) != nil || m == nil {
				writeJiraError(w, http.StatusInternalServerError, []string{"Internal server error"}, nil)
				return
			}
		}
	}
	body, ok := obj["body"]
	if !ok || isNull(body) {
		writeJiraError(w, http.StatusBadRequest, nil, map[string]string{"comment": "Comment body can not be empty!"})
		return
	}
	rt, msg, err := e.validateRichText(body, v)
	if err != nil {
		writeJiraError(w, http.StatusInternalServerError, []string{err.Error()}, nil)
		return
	}
	if msg == "" && rt.isWiki && strings.TrimSpace(rt.wiki) == "" {
		msg = "Comment body can not be empty!"
	}
	if msg != "" {
		writeJiraError(w, http.StatusBadRequest, nil, map[string]string{"comment": msg})
		return
	}
	base := e.base(r)
	withProps := expands(r, "properties")
	e.withIssue(w, r, func(is *issue) reply {
		c := e.addCommentLocked(is, rt, props)
		return jsonReply(http.StatusCreated, e.commentWire(is, c, base, v, withProps))
	})
}

// addCommentLocked appends a comment; props may be nil.
func (e *Emulator) addCommentLocked(is *issue, body richText, props map[string]json.RawMessage) *comment {
	now := e.now()
	c := &comment{id: strconv.FormatInt(e.st.nextCommentID, 10), body: body, props: props, created: now}
	e.st.nextCommentID++
	is.comments = append(is.comments, c)
	is.updated = now
	return c
}

// defaultCommentPage is the page size of GET …/comment without
// maxResults: Cloud documents 100; Data Center returns every comment.
const defaultCommentPage = 100

func (e *Emulator) listComments(w http.ResponseWriter, r *http.Request) {
	base := e.base(r)
	v := jiraVerOf(r)
	q := r.URL.Query()
	startAt, err := nonNegativeParam(q.Get("startAt"), 0)
	if err != nil {
		writeJiraError(w, http.StatusBadRequest, []string{fmt.Sprintf("The value '%s' is not valid for startAt.", q.Get("startAt"))}, nil)
		return
	}
	maxResults, err := nonNegativeParam(q.Get("maxResults"), -1)
	if err != nil {
		writeJiraError(w, http.StatusBadRequest, []string{fmt.Sprintf("The value '%s' is not valid for maxResults.", q.Get("maxResults"))}, nil)
		return
	}
	newestFirst := q.Get("orderBy") == "-created"
	withProps := expands(r, "properties")
	e.withIssue(w, r, func(is *issue) reply {
		all := slices.Clone(is.comments)
		if newestFirst {
			slices.Reverse(all)
		}
		limit := maxResults
		if limit < 0 {
			limit = defaultCommentPage
			if v.dc {
				limit = len(all)
			}
		}
		comments := []commentWire{}
		if startAt < len(all) {
			for _, c := range all[startAt:min(startAt+limit, len(all))] {
				comments = append(comments, e.commentWire(is, c, base, v, withProps))
			}
		}
		return jsonReply(http.StatusOK, map[string]any{
			"startAt": startAt, "maxResults": limit, "total": len(all), "comments": comments})
	})
}

// nonNegativeParam parses an optional non-negative integer parameter; def
// is the value when it is absent.
func nonNegativeParam(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a non-negative integer: %q", s)
	}
	return n, nil
}

type propertyInput struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// validateProperties checks a comment's entity properties with the limits
// of Jira's entity property API (a key of 1–255 characters, a JSON value of
// at most 32,768 bytes), in its words.
func validateProperties(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if isNull(raw) {
		return nil, nil
	}
	var in []propertyInput
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, errors.New("properties must be an array of {\"key\",\"value\"} objects")
	}
	out := map[string]json.RawMessage{}
	for _, p := range in {
		if err := validateProperty(p.Key, p.Value); err != nil {
			return nil, err
		}
		out[p.Key] = compactJSON(p.Value)
	}
	return out, nil
}

func validateProperty(key string, value json.RawMessage) error {
	switch {
	case strings.TrimSpace(key) == "":
		return errors.New("The property key cannot be empty.")
	case utf8.RuneCountInString(key) > maxPropertyKeyLen:
		return fmt.Errorf("The property key cannot be longer than %d characters.", maxPropertyKeyLen)
	case isNull(value):
		return errors.New("The property value cannot be empty.")
	case !json.Valid(value):
		return errors.New("The property value must be valid JSON.")
	case len(compactJSON(value)) > maxPropertyValueLen:
		return fmt.Errorf("The property value cannot be longer than %d bytes.", maxPropertyValueLen)
	}
	return nil
}
