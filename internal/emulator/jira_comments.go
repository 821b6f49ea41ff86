package emulator

// Jira issue comments: POST/GET /rest/api/{3,2}/issue/{issueIdOrKey}/comment.
// v3 bodies are ADF, v2 (Data Center) bodies wiki-markup strings.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// commentWire is Jira's Comment.
type commentWire struct {
	Self         string `json:"self"`
	ID           string `json:"id"`
	Author       any    `json:"author"`
	Body         any    `json:"body"`
	UpdateAuthor any    `json:"updateAuthor"`
	Created      string `json:"created"`
	Updated      string `json:"updated"`
	JSDPublic    *bool  `json:"jsdPublic,omitempty"` // Cloud only
}

func (e *Emulator) commentWire(is *issue, c *comment, base string, v jiraVer) commentWire {
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
	return w
}

func (e *Emulator) addComment(w http.ResponseWriter, r *http.Request) {
	v := jiraVerOf(r)
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
	rt, msg, err := validateRichText(body, v)
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
	e.withIssue(w, r, func(is *issue) reply {
		c := e.addCommentLocked(is, rt)
		return jsonReply(http.StatusCreated, e.commentWire(is, c, base, v))
	})
}

func (e *Emulator) addCommentLocked(is *issue, body richText) *comment {
	now := e.now()
	c := &comment{id: strconv.FormatInt(e.st.nextCommentID, 10), body: body, created: now}
	e.st.nextCommentID++
	is.comments = append(is.comments, c)
	is.updated = now
	return c
}

func (e *Emulator) listComments(w http.ResponseWriter, r *http.Request) {
	base := e.base(r)
	v := jiraVerOf(r)
	e.withIssue(w, r, func(is *issue) reply {
		comments := make([]commentWire, 0, len(is.comments))
		for _, c := range is.comments {
			comments = append(comments, e.commentWire(is, c, base, v))
		}
		return jsonReply(http.StatusOK, map[string]any{
			"startAt": 0, "maxResults": 5000, "total": len(comments), "comments": comments})
	})
}
