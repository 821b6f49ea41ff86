package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// editIssue is PUT /rest/api/{3,2}/issue/{key} ("Edit issue"): the fields
// it may set are the summary and the description (ADF on v3, wiki markup on
// v2, checked as on create); any other field is "not on the appropriate
// screen", as Jira answers for fields missing from the edit screen. 204 on
// success.
func (e *Emulator) editIssue(w http.ResponseWriter, r *http.Request) {
	v := jiraVerOf(r)
	obj, err := decodeObject(r)
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	for k := range obj {
		switch k {
		case "fields", "update", "properties", "historyMetadata":
		default:
			writeJiraError(w, http.StatusBadRequest, []string{fmt.Sprintf("Unrecognized field %q: not a member of IssueUpdateDetails", k)}, nil)
			return
		}
	}
	var fields map[string]json.RawMessage
	if f := obj["fields"]; !isNull(f) {
		if err := json.Unmarshal(f, &fields); err != nil {
			writeJiraError(w, http.StatusBadRequest, []string{"'fields' must be an object"}, nil)
			return
		}
	}
	errs := map[string]string{}
	var (
		summary *string
		desc    *richText
	)
	for k, raw := range fields {
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
				rt, msg, err = validateRichText(raw, v)
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
	if len(errs) > 0 {
		writeJiraError(w, http.StatusBadRequest, nil, errs)
		return
	}
	e.withIssue(w, r, func(is *issue) reply {
		if summary != nil {
			is.summary = *summary
		}
		if desc != nil {
			is.desc = *desc
		}
		is.updated = e.now()
		return emptyReply(http.StatusNoContent)
	})
}
