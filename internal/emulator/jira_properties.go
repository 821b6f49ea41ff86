package emulator

// Jira issue entity properties, settable at create time or one by one.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

type propertyInput struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// validateProperties checks entity properties as setIssueProperty does.
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

func (e *Emulator) listProperties(w http.ResponseWriter, r *http.Request) {
	base := e.base(r) + jiraVerOf(r).prefix
	e.withIssue(w, r, func(is *issue) reply {
		keys := make([]string, 0, len(is.props))
		for k := range is.props {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make([]map[string]string, 0, len(keys))
		for _, k := range keys {
			out = append(out, map[string]string{
				"self": base + "/issue/" + is.id + "/properties/" + url.PathEscape(k), "key": k})
		}
		return jsonReply(http.StatusOK, map[string]any{"keys": out})
	})
}

func (e *Emulator) getProperty(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("propertyKey")
	e.withIssue(w, r, func(is *issue) reply {
		v, ok := is.props[key]
		if !ok {
			return jiraErrorReply(http.StatusNotFound, []string{fmt.Sprintf("The property with key '%s' does not exist.", key)}, nil)
		}
		return jsonReply(http.StatusOK, map[string]any{"key": key, "value": v})
	})
}

func (e *Emulator) setProperty(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("propertyKey")
	value, err := readBody(r)
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	if err := validateProperty(key, value); err != nil {
		writeJiraError(w, http.StatusBadRequest, []string{err.Error()}, nil)
		return
	}
	e.withIssue(w, r, func(is *issue) reply {
		status := http.StatusOK
		if _, ok := is.props[key]; !ok {
			status = http.StatusCreated
		}
		if is.props == nil {
			is.props = map[string]json.RawMessage{}
		}
		is.props[key] = compactJSON(value)
		is.updated = e.now()
		return emptyReply(status)
	})
}

func (e *Emulator) deleteProperty(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("propertyKey")
	e.withIssue(w, r, func(is *issue) reply {
		if _, ok := is.props[key]; !ok {
			return jiraErrorReply(http.StatusNotFound, []string{fmt.Sprintf("The property with key '%s' does not exist.", key)}, nil)
		}
		delete(is.props, key)
		return emptyReply(http.StatusNoContent)
	})
}
