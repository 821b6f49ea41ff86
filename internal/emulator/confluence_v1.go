package emulator

// Confluence REST v1 content API, served twice over the same pages as the
// v2 API:
//
//   - /wiki/rest/api/... is the Cloud site path: deprecated, but still
//     working with Basic auth. _links.base is <base>/wiki and web UI links
//     are Cloud's /spaces/KEY/pages/ID/Title.
//   - /rest/api/... is Confluence Data Center (no /wiki context path),
//     which also takes Bearer PATs. _links.base is <base>, and web UI
//     links are /display/KEY/Title or /pages/viewpage.action?pageId=ID.
//
// Errors use the v1 body {"statusCode","data","message","reason"}; the
// message carries the Java exception class, as the real services do.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Exception prefixes of v1 error messages.
const (
	v1BadRequest = "com.atlassian.confluence.api.service.exceptions.api.BadRequestException: "
	v1Conflict   = "com.atlassian.confluence.api.service.exceptions.api.ConflictException: "
	v1NotFound   = "com.atlassian.confluence.api.service.exceptions.api.NotFoundException: "
	v1Permission = "com.atlassian.confluence.api.service.exceptions.PermissionException: "
)

// v1 list paging.
const (
	defaultV1Limit = 25
	maxV1Limit     = 200
)

// v1Site is the mount a v1 request came through.
type v1Site struct {
	prefix string // "/wiki/rest/api" (Cloud) or "/rest/api" (Data Center)
	dc     bool
}

func v1SiteOf(r *http.Request) v1Site {
	if strings.HasPrefix(r.URL.Path, "/wiki/") {
		return v1Site{prefix: "/wiki/rest/api"}
	}
	return v1Site{prefix: "/rest/api", dc: true}
}

// linkBase is _links.base: the site plus its context path.
func (s v1Site) linkBase(base string) string { return base + s.context() }

func (s v1Site) context() string {
	if s.dc {
		return ""
	}
	return "/wiki"
}

// v1DuplicateTitle is the duplicate-title message: Cloud's current text,
// or the title and space key as Data Center (and older Cloud builds) say.
func (s v1Site) duplicateTitle(title, key string) string {
	if s.dc {
		return fmt.Sprintf("A page with this title already exists: A page already exists with the title %s in the space with key %s", title, key)
	}
	return msgDuplicateTitle
}

// dcWebUI is a page's Data Center web UI path: /display/KEY/Title when the
// title is safe in a URL, /pages/viewpage.action?pageId= otherwise (as
// Confluence's isSafeTitleForUrl decides), and always for non-current pages.
func (p *page) dcWebUI() string {
	if p.status == "current" && dcSafeTitle(p.title) {
		return "/display/" + url.PathEscape(p.space.key) + "/" + url.QueryEscape(p.title)
	}
	return "/pages/viewpage.action?pageId=" + p.id
}

func dcSafeTitle(t string) bool {
	if strings.TrimSpace(t) != t || t == "" || strings.Contains(t, "..") {
		return false
	}
	for _, r := range t {
		if r < 0x20 || r > 0x7e || strings.ContainsRune(`?&/\#;%+:<>"'[]{}|^`+"`", r) {
			return false
		}
	}
	return true
}

func (s v1Site) webui(p *page) string {
	if s.dc {
		return p.dcWebUI()
	}
	return p.webui()
}

func (s v1Site) spaceWebUI(sp *space) string {
	if s.dc {
		return "/display/" + url.PathEscape(sp.key)
	}
	return "/spaces/" + url.PathEscape(sp.key)
}

// v1User is the author as v1 shows it: an accountId on Cloud, a username
// and userKey on Data Center.
func (e *Emulator) v1User(base string, s v1Site) map[string]any {
	name, _, _ := strings.Cut(e.email, "@")
	if s.dc {
		key := e.accountID()
		return map[string]any{"type": "known", "username": name, "userKey": key, "displayName": name,
			"_links": map[string]string{"self": base + s.prefix + "/user?key=" + key}}
	}
	id := e.accountID()
	return map[string]any{"type": "known", "accountId": id, "accountType": "atlassian",
		"email": e.email, "publicName": name, "displayName": name, "isExternalCollaborator": false,
		"_links": map[string]string{"self": base + s.prefix + "/user?accountId=" + id}}
}

// v1Expansions is a parsed expand parameter.
type v1Expansions map[string]bool

func parseV1Expand(values ...string) v1Expansions {
	ex := v1Expansions{}
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if b, ok := strings.CutPrefix(item, "body."); ok {
				ex["body"] = true
				ex["body."+strings.SplitN(b, ".", 2)[0]] = true
				continue
			}
			ex[strings.SplitN(item, ".", 2)[0]] = true
		}
	}
	return ex
}

// v1ContentWire is v1 Content.
type v1ContentWire struct {
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Status     string            `json:"status"`
	Title      string            `json:"title"`
	Space      map[string]any    `json:"space,omitempty"`
	History    map[string]any    `json:"history,omitempty"`
	Version    map[string]any    `json:"version,omitempty"`
	Ancestors  *[]map[string]any `json:"ancestors,omitempty"`
	Container  map[string]any    `json:"container,omitempty"`
	Body       map[string]any    `json:"body,omitempty"`
	Extensions map[string]any    `json:"extensions"`
	Links      map[string]string `json:"_links"`
	Expandable map[string]string `json:"_expandable"`
}

func (e *Emulator) v1SpaceLocked(sp *space, base string, s v1Site) map[string]any {
	id, _ := strconv.ParseInt(sp.id, 10, 64)
	return map[string]any{
		"id": id, "key": sp.key, "name": sp.name, "type": "global", "status": "current",
		"_links": map[string]string{"webui": s.spaceWebUI(sp), "self": base + s.prefix + "/space/" + url.PathEscape(sp.key)},
		"_expandable": map[string]string{
			"settings": s.prefix + "/space/" + sp.key + "/settings", "metadata": "", "operations": "",
			"lookAndFeel": s.prefix + "/settings/lookandfeel?spaceKey=" + sp.key, "identifiers": "",
			"permissions": "", "icon": "", "description": "", "theme": s.prefix + "/space/" + sp.key + "/theme",
			"history": "", "homepage": s.prefix + "/content/" + sp.homepageID,
		},
	}
}

// v1ContentLocked renders p with the expansions in ex.
func (e *Emulator) v1ContentLocked(p *page, ex v1Expansions, base string, s v1Site) v1ContentWire {
	self := base + s.prefix + "/content/" + p.id
	rel := "/rest/api/content/" + p.id // relative to _links.base on both sites
	w := v1ContentWire{
		ID: p.id, Type: "page", Status: p.status, Title: p.title,
		Extensions: map[string]any{"position": p.position},
		Links: map[string]string{
			"webui":      s.webui(p),
			"edit":       "/pages/resumedraft.action?draftId=" + p.id,
			"tinyui":     "/x/" + tinyCode(p.id),
			"collection": "/rest/api/content",
			"base":       s.linkBase(base),
			"context":    s.context(),
			"self":       self,
		},
		Expandable: map[string]string{},
	}
	if s.dc {
		w.Links["edit"] = "/pages/editpage.action?pageId=" + p.id
	}
	author := e.v1User(base, s)
	expandable := func(name, value string) {
		if !ex[name] {
			w.Expandable[name] = value
		}
	}
	if ex["space"] {
		w.Space = e.v1SpaceLocked(p.space, base, s)
	}
	expandable("space", "/rest/api/space/"+p.space.key)
	if ex["container"] {
		w.Container = e.v1SpaceLocked(p.space, base, s)
	}
	expandable("container", "/rest/api/space/"+p.space.key)
	if ex["history"] {
		w.History = map[string]any{"latest": true, "createdBy": author, "createdDate": wikiTime(p.created),
			"_links": map[string]string{"self": self + "/history"}}
	}
	expandable("history", rel+"/history")
	if ex["version"] {
		w.Version = map[string]any{"by": author, "when": wikiTime(p.modified), "message": p.versionMsg,
			"number": p.version, "minorEdit": p.minorEdit,
			"_links": map[string]string{"self": base + s.prefix + "/content/" + p.id + "/version/" + strconv.Itoa(p.version)}}
	}
	expandable("version", "")
	if ex["ancestors"] {
		anc := []map[string]any{}
		for _, a := range e.ancestorsLocked(p) {
			anc = append(anc, map[string]any{"id": a.id, "type": "page", "status": a.status, "title": a.title,
				"_links": map[string]string{"webui": s.webui(a), "self": base + s.prefix + "/content/" + a.id}})
		}
		w.Ancestors = &anc
	}
	expandable("ancestors", "")
	if ex["body"] {
		body := map[string]any{}
		bodyExpandable := map[string]string{}
		for _, f := range []string{"storage", "view", "export_view", "styled_view", "editor", "anonymous_export_view", "atlas_doc_format", "dynamic"} {
			switch {
			case !ex["body."+f]:
				bodyExpandable[f] = ""
			case f == "storage":
				body[f] = map[string]any{"value": p.body, "representation": "storage", "embeddedContent": []any{},
					"_expandable": map[string]string{"content": rel}}
			case f == "view" || f == "export_view" || f == "styled_view" || f == "anonymous_export_view":
				html, err := storageToHTML(p.body)
				if err != nil {
					html = "" // stored bodies were validated on write
				}
				body[f] = map[string]any{"value": string(html), "representation": f,
					"_expandable": map[string]string{"content": rel}}
			default:
				// Deliberate deviation: only storage and view renderings.
				bodyExpandable[f] = ""
			}
		}
		body["_expandable"] = bodyExpandable
		w.Body = body
	}
	expandable("body", "")
	for k, v := range map[string]string{"childTypes": "", "metadata": "", "operations": "", "schedulePublishDate": "",
		"children": rel + "/child", "descendants": rel + "/descendant", "restrictions": rel + "/restriction/byOperation"} {
		w.Expandable[k] = v
	}
	return w
}

// ancestorsLocked returns p's ancestors, root first.
func (e *Emulator) ancestorsLocked(p *page) []*page {
	var out []*page
	seen := map[string]bool{p.id: true}
	for id := p.parentID; id != "" && !seen[id]; {
		a, ok := e.st.pageByID[id]
		if !ok {
			break
		}
		seen[id] = true
		out = append(out, a)
		id = a.parentID
	}
	slices.Reverse(out)
	return out
}

// v1Write is a validated POST or PUT body.
type v1Write struct {
	id        string
	spaceKey  string
	hasSpace  bool // the body names a space (on update: one it must not change)
	status    string
	title     string
	hasTitle  bool
	parentID  string
	body      string
	hasBody   bool
	version   int
	message   string
	minorEdit bool
}

// parseV1Write validates a v1 content body; update selects the PUT rules
// (version required, space optional, body optional; the title and space
// rules of an update are checked against the page by v1UpdateErrors).
func parseV1Write(obj map[string]json.RawMessage, update bool) (v1Write, error) {
	var in v1Write
	var err error
	typ, ok := rawString(obj["type"])
	switch {
	case isNull(obj["type"]) && !update:
		return in, errors.New("Content type must be specified.")
	case isNull(obj["type"]):
	case !ok:
		return in, errors.New("type must be a string.")
	case typ == "page":
	case typ == "blogpost":
		return in, errors.New("The emulator supports only content of type page.")
	default:
		return in, fmt.Errorf("Unsupported content type: %s", typ)
	}
	if in.id, err = rawID(obj["id"], "id"); err != nil {
		return in, err
	}
	var sp struct {
		Key string `json:"key"`
	}
	switch {
	case update && !isNull(obj["space"]):
		if json.Unmarshal(obj["space"], &sp) != nil {
			return in, errors.New("space must be an object with a key.")
		}
		in.spaceKey, in.hasSpace = sp.Key, true
	case update:
	case isNull(obj["space"]) || json.Unmarshal(obj["space"], &sp) != nil || strings.TrimSpace(sp.Key) == "":
		return in, errors.New("Space key must be specified when creating content.")
	default:
		in.spaceKey, in.hasSpace = sp.Key, true
	}
	in.status = "current"
	if raw := obj["status"]; !isNull(raw) {
		s, _ := rawString(raw)
		if s != "current" && s != "draft" {
			return in, fmt.Errorf("Unsupported content status: %s", raw)
		}
		in.status = s
	}
	if raw := obj["title"]; !isNull(raw) {
		if in.title, ok = rawString(raw); !ok {
			return in, errors.New("title must be a string.")
		}
		in.hasTitle = true
	}
	switch {
	case update:
	case strings.TrimSpace(in.title) == "" && in.status != "draft":
		return in, errors.New("Content title is required.")
	case utf8.RuneCountInString(in.title) > maxTitleLen:
		return in, fmt.Errorf("Title cannot be longer than %d characters.", maxTitleLen)
	}
	if raw := obj["ancestors"]; !isNull(raw) {
		var anc []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &anc); err != nil {
			return in, errors.New("ancestors must be an array of {\"id\"} objects.")
		}
		if len(anc) > 1 {
			return in, errors.New("Only one ancestor can be specified: the direct parent.")
		}
		if len(anc) == 1 {
			if in.parentID, err = rawID(anc[0]["id"], "ancestors.id"); err != nil {
				return in, err
			}
			if in.parentID == "" {
				return in, errors.New("The ancestor id must be specified.")
			}
		}
	}
	if raw := obj["body"]; !isNull(raw) {
		var body map[string]json.RawMessage
		if err := json.Unmarshal(raw, &body); err != nil {
			return in, errors.New("body must be an object.")
		}
		for k, v := range body {
			if k == "storage" || isNull(v) {
				continue
			}
			// Deliberate deviation: only the storage representation.
			return in, fmt.Errorf("body.%s is not supported by the emulator; use body.storage.", k)
		}
		if st := body["storage"]; !isNull(st) {
			var storage struct {
				Value          *string `json:"value"`
				Representation string  `json:"representation"`
			}
			if err := json.Unmarshal(st, &storage); err != nil || storage.Value == nil {
				return in, errors.New("body.storage.value is required.")
			}
			if storage.Representation != "" && storage.Representation != "storage" {
				return in, fmt.Errorf("body.storage.representation must be storage, not %s.", storage.Representation)
			}
			if err := validateStorage(*storage.Value); err != nil {
				return in, err
			}
			in.body, in.hasBody = *storage.Value, true
		}
	}
	if update {
		var v struct {
			Number    *int   `json:"number"`
			Message   string `json:"message"`
			MinorEdit bool   `json:"minorEdit"`
		}
		if isNull(obj["version"]) || json.Unmarshal(obj["version"], &v) != nil || v.Number == nil {
			return in, errors.New("Must supply an incremented version when updating Content. No version supplied.")
		}
		in.version, in.message, in.minorEdit = *v.Number, v.Message, v.MinorEdit
	}
	return in, nil
}

// readV1Write reads the body of a content create (or update) with
// parseV1Write, or answers 413 or 400 and returns false.
func readV1Write(w http.ResponseWriter, r *http.Request, update bool) (v1Write, bool) {
	obj, err := decodeObject(r)
	if errors.Is(err, errTooLarge) {
		writeV1Error(w, http.StatusRequestEntityTooLarge, "Request entity too large")
		return v1Write{}, false
	}
	var in v1Write
	if err == nil {
		in, err = parseV1Write(obj, update)
	}
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, v1BadRequest+err.Error())
		return v1Write{}, false
	}
	return in, true
}

func (e *Emulator) v1CreateContent(w http.ResponseWriter, r *http.Request) {
	site := v1SiteOf(r)
	in, ok := readV1Write(w, r, false)
	if !ok {
		return
	}
	// The create response expands what the caller sent; ?expand= adds more.
	ex := parseV1Expand("space,history,version,ancestors,body.storage", r.URL.Query().Get("expand"))
	base := e.base(r)
	e.locked(w, func() reply {
		sp := e.st.spaceByKey(in.spaceKey)
		if sp == nil {
			return v1ErrorReply(http.StatusForbidden, v1Permission+
				fmt.Sprintf("Could not create content: space %s does not exist or you do not have permission to create content in it.", in.spaceKey))
		}
		if in.parentID != "" {
			if parent, ok := e.st.pageByID[in.parentID]; !ok || parent.space != sp || parent.status == "trashed" {
				return v1ErrorReply(http.StatusNotFound, v1NotFound+
					fmt.Sprintf("Could not find parent page with id %s in space %s.", in.parentID, sp.key))
			}
		}
		if in.status != "draft" && e.titleTakenLocked(sp, in.title, "") {
			return v1ErrorReply(http.StatusBadRequest, v1BadRequest+site.duplicateTitle(in.title, sp.key))
		}
		// Without ancestors, v1 creates a top-level page (v2 would put it
		// under the space homepage).
		p := e.st.addPage(sp, in.title, in.parentID, in.body, e.now().UTC())
		p.status = in.status
		return jsonReply(http.StatusOK, e.v1ContentLocked(p, ex, base, site))
	})
}

// v1Statuses parses the status parameter, against the statuses the site
// knows. Data Center's ContentStatus is current, trashed, deleted,
// historical, draft, and "any" (which the REST docs define as current and
// trashed); it has no archived status, so asking for one is a 400. Cloud
// archives pages, and its "any" means every status.
func v1Statuses(q url.Values, site v1Site, def ...string) ([]string, error) {
	st := queryList(q, "status")
	if len(st) == 0 {
		return def, nil
	}
	for _, s := range st {
		switch s {
		case "current", "trashed", "draft", "deleted", "historical":
			// deleted and historical are valid filters that match no
			// page the emulator keeps.
		case "archived":
			if site.dc {
				return nil, fmt.Errorf("Unsupported content status: %s", s)
			}
		case "any":
			if site.dc {
				return []string{"current", "trashed"}, nil
			}
			return []string{"current", "archived", "trashed", "draft"}, nil
		default:
			return nil, fmt.Errorf("Unsupported content status: %s", s)
		}
	}
	return st, nil
}

func v1IntParam(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("Invalid value for '%s': %s", name, v)
	}
	return n, nil
}

func (e *Emulator) v1ListContent(w http.ResponseWriter, r *http.Request) {
	site := v1SiteOf(r)
	q := r.URL.Query()
	statuses, err := v1Statuses(q, site, "current")
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, v1BadRequest+err.Error())
		return
	}
	start, err := v1IntParam(q, "start", 0)
	if err == nil {
		var limit int
		if limit, err = v1IntParam(q, "limit", defaultV1Limit); err == nil {
			if limit == 0 {
				limit = defaultV1Limit
			}
			e.v1List(w, r, site, q, statuses, start, min(limit, maxV1Limit))
			return
		}
	}
	writeV1Error(w, http.StatusBadRequest, v1BadRequest+err.Error())
}

func (e *Emulator) v1List(w http.ResponseWriter, r *http.Request, site v1Site, q url.Values, statuses []string, start, limit int) {
	typ := q.Get("type")
	if typ == "" {
		typ = "page"
	}
	spaceKey, title, hasTitle := q.Get("spaceKey"), q.Get("title"), q.Has("title")
	ex := parseV1Expand(q["expand"]...)
	base := e.base(r)
	e.locked(w, func() reply {
		var hits []*page
		if typ == "page" {
			for _, p := range e.st.pages {
				if (spaceKey == "" || strings.EqualFold(p.space.key, spaceKey)) &&
					slices.Contains(statuses, p.status) &&
					(!hasTitle || strings.EqualFold(p.title, title)) {
					hits = append(hits, p)
				}
			}
		}
		results := []v1ContentWire{}
		if start < len(hits) {
			for _, p := range hits[start:min(start+limit, len(hits))] {
				results = append(results, e.v1ContentLocked(p, ex, base, site))
			}
		}
		links := map[string]string{
			"self":    base + site.prefix + "/content" + encodedQuery(q),
			"base":    site.linkBase(base),
			"context": site.context(),
		}
		if start+limit < len(hits) {
			nq := url.Values{}
			for k, v := range q {
				nq[k] = v
			}
			nq.Set("limit", strconv.Itoa(limit))
			nq.Set("start", strconv.Itoa(start+limit))
			// Relative to _links.base, as Confluence gives it.
			links["next"] = "/rest/api/content?" + nq.Encode()
		}
		return jsonReply(http.StatusOK, map[string]any{
			"results": results, "start": start, "limit": limit, "size": len(results), "_links": links})
	})
}

func encodedQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func v1NotFoundContent(id string) reply {
	return v1ErrorReply(http.StatusNotFound, v1NotFound+"No content found with id: ContentId{id="+id+"}")
}

func (e *Emulator) v1GetContent(w http.ResponseWriter, r *http.Request) {
	site := v1SiteOf(r)
	q := r.URL.Query()
	statuses, err := v1Statuses(q, site, "current")
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, v1BadRequest+err.Error())
		return
	}
	expand := q["expand"]
	if !q.Has("expand") {
		expand = []string{"space,history,version"}
	}
	ex := parseV1Expand(expand...)
	id := r.PathValue("id")
	base := e.base(r)
	e.locked(w, func() reply {
		p, ok := e.st.pageByID[id]
		if !ok || !slices.Contains(statuses, p.status) {
			return v1NotFoundContent(id)
		}
		return jsonReply(http.StatusOK, e.v1ContentLocked(p, ex, base, site))
	})
}

func (e *Emulator) v1UpdateContent(w http.ResponseWriter, r *http.Request) {
	site := v1SiteOf(r)
	in, ok := readV1Write(w, r, true)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if in.id != "" && in.id != id {
		writeV1Error(w, http.StatusBadRequest, v1BadRequest+
			fmt.Sprintf("The id in the body (%s) does not match the id in the path (%s).", in.id, id))
		return
	}
	ex := parseV1Expand("space,history,version,ancestors,body.storage", r.URL.Query().Get("expand"))
	base := e.base(r)
	e.locked(w, func() reply {
		p, ok := e.st.pageByID[id]
		if !ok || p.status == "trashed" {
			return v1NotFoundContent(id)
		}
		if errs := v1UpdateErrors(p, in); len(errs) > 0 {
			return v1ValidationReply(http.StatusBadRequest, v1BadRequest+
				"Could not update Content of type : class com.atlassian.confluence.pages.Page with id "+p.id, errs...)
		}
		if in.version != p.version+1 {
			return v1ErrorReply(http.StatusConflict, v1Conflict+
				fmt.Sprintf("Version must be incremented on update. Current version is: %d", p.version))
		}
		if in.parentID != "" && in.parentID != p.parentID {
			parent, ok := e.st.pageByID[in.parentID]
			if !ok || parent.space != p.space || parent == p || parent.status == "trashed" {
				return v1ErrorReply(http.StatusNotFound, v1NotFound+
					fmt.Sprintf("Could not find parent page with id %s in space %s.", in.parentID, p.space.key))
			}
		}
		if in.status != "draft" && e.titleTakenLocked(p.space, in.title, p.id) {
			return v1ErrorReply(http.StatusBadRequest, v1BadRequest+site.duplicateTitle(in.title, p.space.key))
		}
		if in.parentID != "" {
			p.parentID = in.parentID
		}
		p.title, p.status = in.title, in.status
		if in.hasBody {
			// A v1 update without a body keeps the current one.
			p.body = in.body
		}
		p.version, p.versionMsg, p.minorEdit = in.version, in.message, in.minorEdit
		p.modified = e.now().UTC()
		return jsonReply(http.StatusOK, e.v1ContentLocked(p, ex, base, site))
	})
}

// v1UpdateErrors are the errors Confluence's page validator collects for
// an update, before the version is checked: a space that is not the
// page's (compared exactly, as the validator does with equals; a draft may
// move), and a blank or overlong title.
func v1UpdateErrors(p *page, in v1Write) []string {
	var errs []string
	if in.hasSpace && in.spaceKey != p.space.key && p.status != "draft" {
		errs = append(errs, "You can't change an existing page's space.")
	}
	switch {
	case strings.TrimSpace(in.title) == "":
		errs = append(errs, "You need to include the title to update a page.")
	case utf8.RuneCountInString(in.title) > maxTitleLen:
		errs = append(errs, fmt.Sprintf("Title cannot be longer than %d characters.", maxTitleLen))
	}
	return errs
}

func (e *Emulator) v1GetSpace(w http.ResponseWriter, r *http.Request) {
	site := v1SiteOf(r)
	key := r.PathValue("spaceKey")
	ex := parseV1Expand(r.URL.Query()["expand"]...)
	base := e.base(r)
	e.locked(w, func() reply {
		sp := e.st.spaceByKey(key)
		if sp == nil {
			return v1ErrorReply(http.StatusNotFound, v1NotFound+"No space with key : "+key)
		}
		out := e.v1SpaceLocked(sp, base, site)
		out["_links"].(map[string]string)["base"] = site.linkBase(base)
		out["_links"].(map[string]string)["context"] = site.context()
		if ex["homepage"] {
			if home, ok := e.st.pageByID[sp.homepageID]; ok {
				out["homepage"] = e.v1ContentLocked(home, v1Expansions{}, base, site)
				delete(out["_expandable"].(map[string]string), "homepage")
			}
		}
		return jsonReply(http.StatusOK, out)
	})
}
