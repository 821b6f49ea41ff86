package emulator

// Jira remote issue links: the create, and the globalId upsert that makes
// linking idempotent. Reading and deleting links over the API are not
// emulated (no client does; tests read them with RemoteLinks).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

func remoteLinkSelf(base string, v jiraVer, issueKey string, id int64) string {
	return base + v.prefix + "/issue/" + issueKey + "/remotelink/" + strconv.FormatInt(id, 10)
}

type remoteObject struct {
	URL     *string `json:"url"`
	Title   *string `json:"title"`
	Summary string  `json:"summary"`
}

func (e *Emulator) upsertRemoteLink(w http.ResponseWriter, r *http.Request) {
	obj, err := decodeMembers(r, "RemoteIssueLinkRequest", "globalId", "application", "relationship", "object")
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	errs := map[string]string{}
	var globalID string
	if raw := obj["globalId"]; !isNull(raw) {
		s, ok := rawString(raw)
		switch {
		case !ok:
			errs["globalId"] = "'globalId' must be a string."
		case utf8.RuneCountInString(s) > maxGlobalIDLen:
			errs["globalId"] = fmt.Sprintf("'globalId' must be at most %d characters.", maxGlobalIDLen)
		default:
			globalID = s
		}
	}
	var relationship *string
	if raw := obj["relationship"]; !isNull(raw) {
		if s, ok := rawString(raw); ok {
			relationship = &s
		} else {
			errs["relationship"] = "'relationship' must be a string."
		}
	}
	var application json.RawMessage
	if raw := obj["application"]; !isNull(raw) {
		var app map[string]any
		if err := json.Unmarshal(raw, &app); err != nil {
			errs["application"] = "'application' must be an object."
		}
		application = compactJSON(raw)
	}
	var ro remoteObject
	objRaw := obj["object"]
	if !isNull(objRaw) {
		if err := json.Unmarshal(objRaw, &ro); err != nil {
			errs["object"] = "'object' must be an object with 'url' and 'title'."
		}
	}
	if _, bad := errs["object"]; !bad {
		if ro.Title == nil || *ro.Title == "" {
			errs["title"] = "'title' is required."
		}
		if ro.URL == nil || *ro.URL == "" {
			errs["url"] = "'url' is required."
		} else if u, err := url.Parse(*ro.URL); err != nil || u.Scheme == "" {
			errs["url"] = "'url' is not a valid URL."
		}
	}
	if len(errs) > 0 {
		writeJiraError(w, http.StatusBadRequest, nil, errs)
		return
	}
	base, v := e.base(r), jiraVerOf(r)
	e.withIssue(w, r, func(is *issue) reply {
		status := http.StatusCreated
		var link *remoteLink
		if globalID != "" {
			for _, l := range is.links {
				if l.globalID == globalID {
					link, status = l, http.StatusOK
					break
				}
			}
		}
		if link == nil {
			link = &remoteLink{id: e.st.nextLinkID, globalID: globalID}
			e.st.nextLinkID++
			is.links = append(is.links, link)
		}
		// On update, omitted members are set to null (documented upsert
		// semantics), so every member is overwritten.
		link.application = application
		link.relationship = relationship
		link.object = compactJSON(objRaw)
		link.url, link.title, link.summary = *ro.URL, *ro.Title, ro.Summary
		is.updated = e.now()
		return jsonReply(status, struct {
			ID   int64  `json:"id"`
			Self string `json:"self"`
		}{link.id, remoteLinkSelf(base, v, is.key, link.id)})
	})
}
