package emulator

// Jira workflow transitions over the default workflow in workflow.go.

import (
	"encoding/json"
	"fmt"
	"net/http"
)

type transitionWire struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	To            any    `json:"to"`
	HasScreen     bool   `json:"hasScreen"`
	IsGlobal      bool   `json:"isGlobal"`
	IsInitial     bool   `json:"isInitial"`
	IsAvailable   bool   `json:"isAvailable"`
	IsConditional bool   `json:"isConditional"`
	IsLooped      bool   `json:"isLooped"`
}

func (e *Emulator) getTransitions(w http.ResponseWriter, r *http.Request) {
	base := e.base(r)
	v := jiraVerOf(r)
	only := r.URL.Query().Get("transitionId")
	e.withIssue(w, r, func(is *issue) reply {
		out := []transitionWire{}
		for s := statusToDo; s < numStatuses; s++ {
			i := s.info()
			if s == is.status || (only != "" && only != i.transitionID) {
				continue
			}
			out = append(out, transitionWire{ID: i.transitionID, Name: i.name, To: statusWireOf(s, base, v),
				IsGlobal: true, IsAvailable: true})
		}
		return jsonReply(http.StatusOK, map[string]any{"expand": "transitions", "transitions": out})
	})
}

func (e *Emulator) doTransition(w http.ResponseWriter, r *http.Request) {
	ver := jiraVerOf(r)
	obj, err := decodeMembers(r, "IssueUpdateDetails", "transition", "fields", "update", "historyMetadata")
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	tr, ok := decodeRef(obj["transition"])
	if isNull(obj["transition"]) || !ok || tr.ID == "" {
		writeJiraError(w, http.StatusBadRequest, []string{"Missing 'transition' identifier"}, nil)
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
	errs := map[string]string{}
	var resolution string
	for k, v := range fields {
		if k != "resolution" {
			errs[k] = fmt.Sprintf(msgFieldCannotBeSet, k)
			continue
		}
		ref, ok := decodeRef(v)
		if !ok || ref.Name == "" {
			errs[k] = "Specify the resolution by name, e.g. {\"name\":\"Done\"}."
			continue
		}
		resolution = ref.Name
	}
	var commentBodies []richText
	for k, v := range update {
		if k != "comment" {
			errs[k] = fmt.Sprintf(msgFieldCannotBeSet, k)
			continue
		}
		var ops []struct {
			Add *struct {
				Body json.RawMessage `json:"body"`
			} `json:"add"`
		}
		if err := json.Unmarshal(v, &ops); err != nil {
			errs["comment"] = "Operation must be an array of {\"add\":{\"body\":...}}."
			continue
		}
		for _, op := range ops {
			if op.Add == nil || isNull(op.Add.Body) {
				errs["comment"] = "Comment body can not be empty!"
				continue
			}
			rt, msg, err := e.validateRichText(op.Add.Body, ver)
			if err != nil {
				writeJiraError(w, http.StatusInternalServerError, []string{err.Error()}, nil)
				return
			}
			if msg != "" {
				errs["comment"] = msg
				continue
			}
			commentBodies = append(commentBodies, rt)
		}
	}
	if len(errs) > 0 {
		writeJiraError(w, http.StatusBadRequest, nil, errs)
		return
	}
	tid := tr.ID
	e.withIssue(w, r, func(is *issue) reply {
		to, ok := statusByTransition(tid)
		if !ok || to == is.status {
			return jiraErrorReply(http.StatusBadRequest, []string{fmt.Sprintf("Transition id '%s' is not valid for this issue.", tid)}, nil)
		}
		is.setStatus(to, resolution, e.now())
		for _, b := range commentBodies {
			e.addCommentLocked(is, b, nil)
		}
		return emptyReply(http.StatusNoContent)
	})
}
