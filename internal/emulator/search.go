package emulator

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Limits of POST /rest/api/3/search/jql.
const (
	defaultMaxResults = 50
	maxResultsIDs     = 5000 // when only id/key are requested
	maxResultsFields  = 100  // otherwise
	maxReconcile      = 50
)

const msgUnbounded = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."

// searchRequest is SearchAndReconcileRequestBean. Its "properties" member
// is accepted and has no effect: issues have no entity properties here.
type searchRequest struct {
	JQL             string   `json:"jql"`
	Fields          []string `json:"fields"`
	MaxResults      *int     `json:"maxResults"`
	NextPageToken   *string  `json:"nextPageToken"`
	Expand          string   `json:"expand"`
	FieldsByKeys    bool     `json:"fieldsByKeys"`
	ReconcileIssues idList   `json:"reconcileIssues"`
	FailFast        bool     `json:"failFast"`
}

// idList is an int64 array that, like Jira's JSON binding, also accepts
// ids written as numeric strings.
type idList []int64

func (l *idList) UnmarshalJSON(b []byte) error {
	var raw []json.Number
	if err := json.Unmarshal(b, &raw); err != nil {
		var strs []string
		if err2 := json.Unmarshal(b, &strs); err2 != nil {
			return err
		}
		for _, s := range strs {
			raw = append(raw, json.Number(s))
		}
	}
	out := make(idList, 0, len(raw))
	for _, n := range raw {
		id, err := n.Int64()
		if err != nil {
			return fmt.Errorf("reconcileIssues: %q is not an issue id", n.String())
		}
		out = append(out, id)
	}
	*l = out
	return nil
}

type searchResponse struct {
	Issues        []issueWire `json:"issues"`
	IsLast        bool        `json:"isLast"`
	NextPageToken string      `json:"nextPageToken,omitempty"`
}

func (e *Emulator) searchJQL(w http.ResponseWriter, r *http.Request) {
	req, q, ok := readSearch(w, r, decodeSearchBody, func(req searchRequest) string { return req.JQL })
	if !ok {
		return
	}
	if !q.bounded() {
		writeJiraError(w, http.StatusBadRequest, []string{msgUnbounded}, nil)
		return
	}
	if len(req.ReconcileIssues) > maxReconcile {
		writeJiraError(w, http.StatusBadRequest, []string{fmt.Sprintf("The number of reconcileIssues must not exceed %d.", maxReconcile)}, nil)
		return
	}
	fs := parseFieldSelection(req.Fields, false)
	limit := defaultMaxResults
	if req.MaxResults != nil && *req.MaxResults > 0 {
		limit = *req.MaxResults
	}
	if fs.idOnly() || (len(fs.names) == 1 && fs.names["key"] && !fs.all) {
		limit = min(limit, maxResultsIDs)
	} else {
		limit = min(limit, maxResultsFields)
	}
	offset := 0
	if req.NextPageToken != nil && *req.NextPageToken != "" {
		var err error
		if offset, err = decodePageToken(*req.NextPageToken, req.JQL); err != nil {
			writeJiraError(w, http.StatusBadRequest, []string{err.Error()}, nil)
			return
		}
	}
	reconcile := map[string]bool{}
	for _, id := range req.ReconcileIssues {
		reconcile[strconv.FormatInt(id, 10)] = true
	}

	base := e.base(r)
	e.locked(w, func() reply {
		if msgs := e.checkJQLValuesLocked(q); len(msgs) > 0 {
			return jiraErrorReply(http.StatusBadRequest, msgs, nil)
		}
		now := e.now()
		var hits []*issue
		for _, is := range e.st.issues {
			// Emulate the eventually consistent index: recent issues are not
			// searchable yet unless the caller reconciles them by id.
			if e.searchLag > 0 && now.Sub(is.created) < e.searchLag && !reconcile[is.id] {
				continue
			}
			if q.matches(is) {
				hits = append(hits, is)
			}
		}
		sortIssues(hits, q.orderBy)
		resp := searchResponse{Issues: []issueWire{}, IsLast: true}
		if offset < len(hits) {
			end := min(offset+limit, len(hits))
			for _, is := range hits[offset:end] {
				resp.Issues = append(resp.Issues, e.issueWireLocked(is, fs, base, jiraV3))
			}
			if end < len(hits) {
				resp.IsLast = false
				resp.NextPageToken = encodePageToken(end, req.JQL)
			}
		}
		return jsonReply(http.StatusOK, resp)
	})
}

// readSearch reads a search request from the POST body and parses its
// JQL, or answers 400 and returns false. The GET forms of the searches
// are not emulated: the clients POST, which keeps the JQL out of URLs.
func readSearch[T any](w http.ResponseWriter, r *http.Request, decode func(*http.Request) (T, error), jql func(T) string) (T, *jqlQuery, bool) {
	req, err := decode(r)
	if err != nil {
		bodyError(w, jiraAPI, err)
		return req, nil, false
	}
	q, err := parseJQL(jql(req))
	if err != nil {
		writeJiraError(w, http.StatusBadRequest, []string{err.Error()}, nil)
		return req, nil, false
	}
	return req, q, true
}

func decodeSearchBody(r *http.Request) (searchRequest, error) {
	// The bean is additionalProperties:false.
	var req searchRequest
	err := decodeBean(r, &req, "SearchAndReconcileRequestBean", "jql", "fields", "maxResults", "nextPageToken",
		"expand", "properties", "fieldsByKeys", "reconcileIssues", "failFast")
	return req, err
}

// Page tokens are opaque to clients; binding them to the query catches
// clients that change the JQL between pages.
func encodePageToken(offset int, jql string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d:%s", offset, queryHash(jql))))
}

func decodePageToken(tok, jql string) (int, error) {
	errInvalid := errors.New("The provided next page token is invalid or expired.")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, errInvalid
	}
	off, hash, ok := strings.Cut(string(b), ":")
	n, err := strconv.Atoi(off)
	if !ok || err != nil || n < 0 || hash != queryHash(jql) {
		return 0, errInvalid
	}
	return n, nil
}

func queryHash(jql string) string {
	sum := sha256.Sum256([]byte(jql))
	return hex.EncodeToString(sum[:6])
}

var issueKeyPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*-[0-9]+$`)

// checkJQLValuesLocked rejects values Jira would reject: unknown projects,
// statuses and issue types, and unknown or malformed issue keys.
func (e *Emulator) checkJQLValuesLocked(q *jqlQuery) []string {
	var msgs []string
	notExist := func(c jqlClause, v string) {
		msgs = append(msgs, fmt.Sprintf("The value '%s' does not exist for the field '%s'.", v, c.name))
	}
	for _, c := range q.clauses {
		for _, v := range c.values {
			switch c.field {
			case "project":
				if e.project(v) == nil {
					notExist(c, v)
				}
			case "status":
				if _, ok := statusByName(v); !ok {
					notExist(c, v)
				}
			case "statuscategory":
				found := false
				for s := statusToDo; s < numStatuses; s++ {
					found = found || categoryMatches(s, v)
				}
				if !found {
					notExist(c, v)
				}
			case "issuetype":
				if !e.issueTypeExists(v) {
					notExist(c, v)
				}
			case "key":
				if _, err := strconv.ParseInt(v, 10, 64); err != nil && !issueKeyPattern.MatchString(v) {
					msgs = append(msgs, fmt.Sprintf("The issue key '%s' for field '%s' is invalid.", v, c.name))
				} else if e.st.lookupIssue(v) == nil {
					msgs = append(msgs, fmt.Sprintf("An issue with key '%s' does not exist for field '%s'.", v, c.name))
				}
			}
		}
	}
	return msgs
}

func (e *Emulator) issueTypeExists(v string) bool {
	for _, p := range e.projects {
		for _, it := range p.issueTypes {
			if strings.EqualFold(it.name, v) || it.id == v {
				return true
			}
		}
	}
	return false
}

func (q *jqlQuery) matches(is *issue) bool {
	for _, c := range q.clauses {
		if !c.matches(is) {
			return false
		}
	}
	return true
}

func (c jqlClause) matches(is *issue) bool {
	if c.field == "labels" {
		// JQL semantics: "labels != x" and "labels not in (...)" never match
		// issues without labels.
		hit := false
		for _, v := range c.values {
			hit = hit || slices.ContainsFunc(is.labels, func(l string) bool { return strings.EqualFold(l, v) })
		}
		if c.negate {
			return len(is.labels) > 0 && !hit
		}
		return hit
	}
	hit := false
	for _, v := range c.values {
		switch c.field {
		case "project":
			hit = hit || strings.EqualFold(is.project.key, v) || is.project.id == v
		case "key":
			hit = hit || strings.EqualFold(is.key, v) || is.id == v
		case "status":
			s, ok := statusByName(v)
			hit = hit || (ok && s == is.status)
		case "statuscategory":
			hit = hit || categoryMatches(is.status, v)
		case "issuetype":
			hit = hit || strings.EqualFold(is.issueType.name, v) || is.issueType.id == v
		}
	}
	return hit != c.negate
}

// sortIssues orders search hits; without ORDER BY, newest first.
func sortIssues(hits []*issue, order []jqlOrder) {
	if len(order) == 0 {
		order = []jqlOrder{{field: "created", desc: true}}
	}
	slices.SortStableFunc(hits, func(a, b *issue) int {
		for _, o := range order {
			var c int
			switch o.field {
			case "created":
				c = a.created.Compare(b.created)
			case "updated":
				c = a.updated.Compare(b.updated)
			case "key":
				c = strings.Compare(a.project.key, b.project.key)
				if c == 0 {
					c = keyNumber(a.key) - keyNumber(b.key)
				}
			}
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		// Ties (same timestamp) fall back to creation order, matching the
		// primary direction, so paging is deterministic.
		c := compareIDs(a.id, b.id)
		if order[0].desc {
			c = -c
		}
		return c
	})
}

func keyNumber(key string) int {
	_, n, _ := strings.Cut(key, "-")
	i, _ := strconv.Atoi(n)
	return i
}

func compareIDs(a, b string) int {
	x, _ := strconv.ParseInt(a, 10, 64)
	y, _ := strconv.ParseInt(b, 10, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
