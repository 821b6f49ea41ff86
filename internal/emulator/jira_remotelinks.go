package emulator

// Jira remote issue links, including the globalId upsert that makes
// linking idempotent.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"unicode/utf8"
)

// remoteLinkWire is Jira's RemoteIssueLink.
type remoteLinkWire struct {
	ID           int64           `json:"id"`
	Self         string          `json:"self"`
	GlobalID     string          `json:"globalId,omitempty"`
	Application  json.RawMessage `json:"application,omitempty"`
	Relationship *string         `json:"relationship,omitempty"`
	Object       json.RawMessage `json:"object"`
}

func remoteLinkSelf(base string, v jiraVer, issueKey string, id int64) string {
	return base + v.prefix + "/issue/" + issueKey + "/remotelink/" + strconv.FormatInt(id, 10)
}

func (l *remoteLink) wire(base string, v jiraVer, issueKey string) remoteLinkWire {
	return remoteLinkWire{
		ID:           l.id,
		Self:         remoteLinkSelf(base, v, issueKey, l.id),
		GlobalID:     l.globalID,
		Application:  l.application,
		Relationship: l.relationship,
		Object:       l.object,
	}
}

type remoteObject struct {
	URL     *string `json:"url"`
	Title   *string `json:"title"`
	Summary string  `json:"summary"`
}

func (e *Emulator) upsertRemoteLink(w http.ResponseWriter, r *http.Request) {
	obj, err := decodeObject(r)
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	for k := range obj {
		switch k {
		case "globalId", "application", "relationship", "object":
		default:
			writeJiraError(w, http.StatusBadRequest, []string{fmt.Sprintf("Unrecognized field %q: not a member of RemoteIssueLinkRequest", k)}, nil)
			return
		}
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

func (e *Emulator) getRemoteLinks(w http.ResponseWriter, r *http.Request) {
	base, v := e.base(r), jiraVerOf(r)
	q := r.URL.Query()
	e.withIssue(w, r, func(is *issue) reply {
		if q.Has("globalId") {
			gid := q.Get("globalId")
			for _, l := range is.links {
				if l.globalID == gid {
					return jsonReply(http.StatusOK, l.wire(base, v, is.key))
				}
			}
			return jiraErrorReply(http.StatusNotFound, []string{fmt.Sprintf("No remote link with global id '%s' exists on issue %s.", gid, is.key)}, nil)
		}
		out := make([]remoteLinkWire, 0, len(is.links))
		for _, l := range is.links {
			out = append(out, l.wire(base, v, is.key))
		}
		return jsonReply(http.StatusOK, out)
	})
}

func (e *Emulator) deleteRemoteLinkByGlobalID(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	gid := q.Get("globalId")
	if gid == "" {
		writeJiraError(w, http.StatusBadRequest, []string{"The global id of the remote link to delete must be provided."}, nil)
		return
	}
	e.withIssue(w, r, func(is *issue) reply {
		i := slices.IndexFunc(is.links, func(l *remoteLink) bool { return l.globalID == gid })
		if i < 0 {
			return jiraErrorReply(http.StatusNotFound, []string{fmt.Sprintf("No remote link with global id '%s' exists on issue %s.", gid, is.key)}, nil)
		}
		is.links = slices.Delete(is.links, i, i+1)
		return emptyReply(http.StatusNoContent)
	})
}

// linkIndex finds the link named by the {linkId} path value, or returns
// the 404 reply.
func linkIndex(r *http.Request, is *issue) (int, reply) {
	id, err := strconv.ParseInt(r.PathValue("linkId"), 10, 64)
	i := slices.IndexFunc(is.links, func(l *remoteLink) bool { return err == nil && l.id == id })
	if i < 0 {
		return i, jiraErrorReply(http.StatusNotFound, []string{fmt.Sprintf("Remote link with id '%s' does not exist on issue %s.", r.PathValue("linkId"), is.key)}, nil)
	}
	return i, reply{}
}

func (e *Emulator) getRemoteLink(w http.ResponseWriter, r *http.Request) {
	base, v := e.base(r), jiraVerOf(r)
	e.withIssue(w, r, func(is *issue) reply {
		i, notFound := linkIndex(r, is)
		if i < 0 {
			return notFound
		}
		return jsonReply(http.StatusOK, is.links[i].wire(base, v, is.key))
	})
}

func (e *Emulator) deleteRemoteLink(w http.ResponseWriter, r *http.Request) {
	e.withIssue(w, r, func(is *issue) reply {
		i, notFound := linkIndex(r, is)
		if i < 0 {
			return notFound
		}
		is.links = slices.Delete(is.links, i, i+1)
		return emptyReply(http.StatusNoContent)
	})
}
