package emulator

// Jira issue comments: POST/GET /rest/api/3/issue/{issueIdOrKey}/comment.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// commentWire is Jira's Comment.
type commentWire struct {
	Self         string          `json:"self"`
	ID           string          `json:"id"`
	Author       userWire        `json:"author"`
	Body         json.RawMessage `json:"body"`
	UpdateAuthor userWire        `json:"updateAuthor"`
	Created      string          `json:"created"`
	Updated      string          `json:"updated"`
	JSDPublic    bool            `json:"jsdPublic"`
}

func (e *Emulator) commentWire(is *issue, c *comment, base string) commentWire {
	u := e.user(base)
	return commentWire{
		Self:         base + "/rest/api/3/issue/" + is.id + "/comment/" + c.id,
		ID:           c.id,
		Author:       u,
		Body:         c.body,
		UpdateAuthor: u,
		Created:      jiraTime(c.created),
		Updated:      jiraTime(c.created),
		JSDPublic:    true,
	}
}

func (e *Emulator) addComment(w http.ResponseWriter, r *http.Request) {
	obj, err := decodeObject(r)
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	for k := range obj {
		switch k {
		case "body", "visibility", "properties":
		default:
			writeJiraError(w, http.StatusBadRequest, []string{fmt.Sprintf("Unrecognized field %q: not a member of Comment", k)}, nil)
			return
		}
	}
	body, ok := obj["body"]
	if !ok || isNull(body) {
		writeJiraError(w, http.StatusBadRequest, nil, map[string]string{"comment": "Comment body can not be empty!"})
		return
	}
	msg, err := validateADF(body)
	if err != nil {
		writeJiraError(w, http.StatusInternalServerError, []string{err.Error()}, nil)
		return
	}
	if msg != "" {
		writeJiraError(w, http.StatusBadRequest, nil, map[string]string{"comment": msg})
		return
	}
	base := e.base(r)
	e.withIssue(w, r, func(is *issue) reply {
		c := e.addCommentLocked(is, body)
		return jsonReply(http.StatusCreated, e.commentWire(is, c, base))
	})
}

func (e *Emulator) addCommentLocked(is *issue, body json.RawMessage) *comment {
	now := e.now()
	c := &comment{id: strconv.FormatInt(e.st.nextCommentID, 10), body: compactJSON(body), created: now}
	e.st.nextCommentID++
	is.comments = append(is.comments, c)
	is.updated = now
	return c
}

func (e *Emulator) listComments(w http.ResponseWriter, r *http.Request) {
	base := e.base(r)
	e.withIssue(w, r, func(is *issue) reply {
		comments := make([]commentWire, 0, len(is.comments))
		for _, c := range is.comments {
			comments = append(comments, e.commentWire(is, c, base))
		}
		return jsonReply(http.StatusOK, map[string]any{
			"startAt": 0, "maxResults": 5000, "total": len(comments), "comments": comments})
	})
}
