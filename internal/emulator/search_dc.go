package emulator

// Jira Data Center search: POST /rest/api/2/search. Unlike Cloud's
// /search/jql it pages by offset (startAt, maxResults) and reports a
// total, returns all navigable fields by default, allows unbounded JQL,
// and is read-after-write: a new issue is found at once (no SearchLag).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Data Center's jira.search.views.default.max.
const maxResultsDC = 1000

// dcSearchRequest is Data Center's SearchRequestBean. Its "properties"
// member is accepted and has no effect: issues have no entity properties
// here.
type dcSearchRequest struct {
	JQL           string          `json:"jql"`
	StartAt       *int            `json:"startAt"`
	MaxResults    *int            `json:"maxResults"`
	Fields        []string        `json:"fields"`
	Expand        json.RawMessage `json:"expand"` // string or array
	FieldsByKeys  bool            `json:"fieldsByKeys"`
	ValidateQuery json.RawMessage `json:"validateQuery"` // "strict"|"warn"|"none" or a boolean
}

type dcSearchResponse struct {
	Expand          string      `json:"expand"`
	StartAt         int         `json:"startAt"`
	MaxResults      int         `json:"maxResults"`
	Total           int         `json:"total"`
	Issues          []issueWire `json:"issues"`
	WarningMessages []string    `json:"warningMessages,omitempty"`
}

func (e *Emulator) searchDC(w http.ResponseWriter, r *http.Request) {
	req, q, ok := readSearch(w, r, decodeDCSearchBody, func(req dcSearchRequest) string { return req.JQL })
	if !ok {
		return
	}
	validate, err := parseValidateQuery(req.ValidateQuery)
	if err != nil {
		writeJiraError(w, http.StatusBadRequest, []string{err.Error()}, nil)
		return
	}
	fs := parseFieldSelection(req.Fields, true)
	startAt := 0
	if req.StartAt != nil && *req.StartAt > 0 {
		startAt = *req.StartAt
	}
	limit := defaultMaxResults
	if req.MaxResults != nil && *req.MaxResults >= 0 {
		// maxResults=0 is the usual way to ask only for the total.
		limit = min(*req.MaxResults, maxResultsDC)
	}

	base := e.base(r)
	e.locked(w, func() reply {
		resp := dcSearchResponse{Expand: "schema,names", StartAt: startAt, MaxResults: limit, Issues: []issueWire{}}
		if msgs := e.checkJQLValuesLocked(q); len(msgs) > 0 {
			switch validate {
			case "strict":
				return jiraErrorReply(http.StatusBadRequest, msgs, nil)
			case "warn":
				resp.WarningMessages = msgs
			}
		}
		var hits []*issue
		for _, is := range e.st.issues {
			if q.matches(is) {
				hits = append(hits, is)
			}
		}
		sortIssues(hits, q.orderBy)
		resp.Total = len(hits)
		if startAt < len(hits) {
			for _, is := range hits[startAt:min(startAt+limit, len(hits))] {
				resp.Issues = append(resp.Issues, e.issueWireLocked(is, fs, base, jiraV2))
			}
		}
		return jsonReply(http.StatusOK, resp)
	})
}

// parseValidateQuery normalizes validateQuery: "strict" (the default and
// true), "warn", or "none" (false).
func parseValidateQuery(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "strict", nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		if b {
			return "strict", nil
		}
		return "none", nil
	}
	s, _ := rawString(raw)
	switch strings.ToLower(s) {
	case "strict", "true":
		return "strict", nil
	case "warn":
		return "warn", nil
	case "none", "false":
		return "none", nil
	}
	return "", fmt.Errorf("Invalid value for validateQuery: %s. Valid values are strict, warn, none.", raw)
}

func decodeDCSearchBody(r *http.Request) (dcSearchRequest, error) {
	// A client that sends Cloud's nextPageToken or reconcileIssues to
	// Data Center learns it here.
	var req dcSearchRequest
	err := decodeBean(r, &req, "SearchRequestBean", "jql", "startAt", "maxResults", "fields", "expand",
		"properties", "fieldsByKeys", "validateQuery")
	return req, err
}
