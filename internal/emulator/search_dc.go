package emulator

// Jira Data Center search: GET/POST /rest/api/2/search. Unlike Cloud's
// /search/jql it pages by offset (startAt, maxResults) and reports a
// total, returns all navigable fields by default, allows unbounded JQL,
// and is read-after-write: a new issue is found at once (no SearchLag).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Data Center's jira.search.views.default.max.
const maxResultsDC = 1000

// dcSearchRequest is Data Center's SearchRequestBean.
type dcSearchRequest struct {
	JQL           string          `json:"jql"`
	StartAt       *int            `json:"startAt"`
	MaxResults    *int            `json:"maxResults"`
	Fields        []string        `json:"fields"`
	Expand        json.RawMessage `json:"expand"` // string or array
	Properties    []string        `json:"properties"`
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
	var req dcSearchRequest
	var err error
	if r.Method == http.MethodPost {
		req, err = decodeDCSearchBody(r)
	} else {
		req, err = decodeDCSearchQuery(r)
	}
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	validate, err := parseValidateQuery(req.ValidateQuery)
	if err != nil {
		writeJiraError(w, http.StatusBadRequest, []string{err.Error()}, nil)
		return
	}
	q, err := parseJQL(req.JQL)
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
				resp.Issues = append(resp.Issues, e.issueWireLocked(is, fs, req.Properties, base, jiraV2))
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
	obj, err := decodeObject(r)
	if err != nil {
		return dcSearchRequest{}, err
	}
	for k := range obj {
		switch k {
		case "jql", "startAt", "maxResults", "fields", "expand", "properties", "fieldsByKeys", "validateQuery":
		default:
			// A client that sends Cloud's nextPageToken or reconcileIssues
			// to Data Center learns it here.
			return dcSearchRequest{}, fmt.Errorf("Unrecognized field %q: not a member of SearchRequestBean", k)
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return dcSearchRequest{}, fmt.Errorf("re-encode search request: %w", err)
	}
	var req dcSearchRequest
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return dcSearchRequest{}, fmt.Errorf("Invalid value for field %q: expected %s", te.Field, te.Type)
		}
		return dcSearchRequest{}, fmt.Errorf("invalid search request: %w", err)
	}
	return req, nil
}

func decodeDCSearchQuery(r *http.Request) (dcSearchRequest, error) {
	q := r.URL.Query()
	req := dcSearchRequest{
		JQL:        q.Get("jql"),
		Fields:     queryList(q, "fields"),
		Properties: queryList(q, "properties"),
	}
	for _, name := range []string{"startAt", "maxResults"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return req, fmt.Errorf("Invalid value for query parameter '%s': %q", name, v)
		}
		if name == "startAt" {
			req.StartAt = &n
		} else {
			req.MaxResults = &n
		}
	}
	if v := q.Get("validateQuery"); v != "" {
		req.ValidateQuery, _ = json.Marshal(v)
	}
	return req, nil
}
