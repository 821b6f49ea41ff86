package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// editIssue is PUT /rest/api/{3,2}/issue/{key} ("Edit issue"): the fields
// it may set are the summary and the description (ADF on v3, wiki markup on
// v2, checked as on create), either under "fields" or as a "set" operation
// under "update"; any other field is "not on the appropriate screen", as
// Jira answers for fields missing from the edit screen. 204 on success; on Cloud,
// returnIssue=true answers 200 with the edited issue instead.
func (e *Emulator) editIssue(w http.ResponseWriter, r *http.Request) {
	v := jiraVerOf(r)
	base := e.base(r)
	obj, err := decodeMembers(r, "IssueUpdateDetails", "fields", "update", "historyMetadata")
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	var fields, update map[string]json.RawMessage
	if raw := obj["fields"]; !isNull(raw) && json.Unmarshal(raw, &fields) != nil {
		writeJiraError(w, http.StatusBadRequest, []string{"'fields' must be an object"}, nil)
		return
	}
	if raw := obj["update"]; !isNull(raw) && json.Unmarshal(raw, &update) != nil {
		writeJiraError(w, http.StatusBadRequest, []string{"'update' must be an object"}, nil)
		return
	}
	// Jira merges the two into one set of changes and refuses a field
	// named in both (IssueUpdateDetails: "Fields included in here cannot
	// be included in update").
	values := make(map[string]json.RawMessage, len(fields)+len(update))
	var messages []string
	errs := map[string]string{}
	for k, raw := range fields {
		values[k] = raw
	}
	for k, raw := range update {
		if _, dup := fields[k]; dup {
			messages = append(messages, fmt.Sprintf("Field '%s' cannot appear in both 'fields' and 'update'", k))
			continue
		}
		if k != "summary" && k != "description" {
			errs[k] = fmt.Sprintf(msgFieldCannotBeSet, k)
			continue
		}
		// Both fields support only "set"; the last operation wins, as
		// Jira applies them in order.
		var ops []map[string]json.RawMessage
		if json.Unmarshal(raw, &ops) != nil {
			errs[k] = "Operations must be an array of objects, e.g. [{\"set\":...}]."
			continue
		}
		for _, op := range ops {
			set, ok := op["set"]
			if len(op) != 1 || !ok {
				errs[k] = fmt.Sprintf("Field '%s' supports only the 'set' operation.", k)
				break
			}
			values[k] = set
		}
	}
	var (
		summary *string
		desc    *richText
	)
	for k, raw := range values {
		switch k {
		case "summary":
			s, ok := rawString(raw)
			switch {
			case !ok || s == "":
				errs["summary"] = "You must specify a summary of the issue."
			case len([]rune(s)) > maxSummaryLen:
				errs["summary"] = fmt.Sprintf("Summary must be less than %d characters.", maxSummaryLen)
			default:
				summary = &s
			}
		case "description":
			var rt richText
			if !isNull(raw) {
				var msg string
				rt, msg, err = e.validateRichText(raw, v)
				if err != nil {
					writeJiraError(w, http.StatusInternalServerError, []string{err.Error()}, nil)
					return
				}
				if msg != "" {
					errs["description"] = msg
					continue
				}
			}
			desc = &rt
		default:
			errs[k] = fmt.Sprintf(msgFieldCannotBeSet, k)
		}
	}
	if len(messages) > 0 || len(errs) > 0 {
		writeJiraError(w, http.StatusBadRequest, messages, errs)
		return
	}
	// returnIssue exists only on Cloud; Data Center ignores the unknown
	// query parameter like any other.
	returnIssue := !v.dc && r.URL.Query().Get("returnIssue") == "true"
	e.withIssue(w, r, func(is *issue) reply {
		if summary != nil {
			is.summary = *summary
		}
		if desc != nil {
			is.desc = *desc
		}
		if summary != nil || desc != nil {
			is.updated = e.now()
		}
		if returnIssue {
			return jsonReply(http.StatusOK, e.issueWireLocked(is, parseFieldSelection(nil, true), base, v))
		}
		return emptyReply(http.StatusNoContent)
	})
}
