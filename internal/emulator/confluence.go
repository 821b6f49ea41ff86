package emulator

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Confluence Cloud REST v2 limits and messages.
const (
	maxTitleLen       = 255
	defaultPageLimit  = 25
	maxPageLimit      = 250
	msgDuplicateTitle = "A page with this title already exists: A page already exists with the same TITLE in this space"
)

func wikiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (p *page) webui() string {
	// Confluence puts the title in the path with spaces as "+".
	return "/spaces/" + url.PathEscape(p.space.key) + "/pages/" + p.id + "/" + url.QueryEscape(p.title)
}

// tinyCode is Confluence's short-link code, for _links.tinyui: the page id
// as little-endian bytes in URL-safe base64, without trailing zero digits.
// No client follows short links, so the emulator does not serve them.
func tinyCode(id string) string {
	n, _ := strconv.ParseUint(id, 10, 64)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n)
	s := strings.TrimRight(base64.StdEncoding.EncodeToString(b[:]), "=A")
	return strings.NewReplacer("/", "-", "+", "_").Replace(s)
}

type spaceWire struct {
	ID          string            `json:"id"`
	Key         string            `json:"key"`
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Status      string            `json:"status"`
	AuthorID    string            `json:"authorId"`
	CreatedAt   string            `json:"createdAt"`
	HomepageID  string            `json:"homepageId"`
	Description *string           `json:"description"`
	Icon        *string           `json:"icon"`
	Links       map[string]string `json:"_links"`
}

func (e *Emulator) spaceWire(sp *space) spaceWire {
	return spaceWire{
		ID: sp.id, Key: sp.key, Name: sp.name, Type: "global", Status: "current",
		AuthorID: e.accountID(), CreatedAt: wikiTime(sp.created), HomepageID: sp.homepageID,
		Links: map[string]string{"webui": "/spaces/" + url.PathEscape(sp.key)},
	}
}

type pageVersionWire struct {
	CreatedAt string `json:"createdAt"`
	Message   string `json:"message"`
	Number    int    `json:"number"`
	MinorEdit bool   `json:"minorEdit"`
	AuthorID  string `json:"authorId"`
}

type bodyWire struct {
	Representation string `json:"representation"`
	Value          string `json:"value"`
}

type pageLinksWire struct {
	WebUI  string `json:"webui"`
	EditUI string `json:"editui"`
	TinyUI string `json:"tinyui"`
	Base   string `json:"base,omitempty"`
}

// pageWire is PageSingle (with _links.base) or PageBulk (without).
type pageWire struct {
	ID         string              `json:"id"`
	Status     string              `json:"status"`
	Title      string              `json:"title"`
	SpaceID    string              `json:"spaceId"`
	ParentID   *string             `json:"parentId"`
	ParentType *string             `json:"parentType"`
	Position   int                 `json:"position"`
	AuthorID   string              `json:"authorId"`
	OwnerID    string              `json:"ownerId"`
	CreatedAt  string              `json:"createdAt"`
	Version    pageVersionWire     `json:"version"`
	Body       map[string]bodyWire `json:"body"`
	Links      pageLinksWire       `json:"_links"`
}

// pageWire renders p; bodyFormat "" omits the body, "storage" and "view"
// include it. base is set only for PageSingle responses.
func (e *Emulator) pageWire(p *page, bodyFormat, base string) pageWire {
	author := e.accountID()
	w := pageWire{
		ID: p.id, Status: p.status, Title: p.title, SpaceID: p.space.id,
		Position: p.position, AuthorID: author, OwnerID: author, CreatedAt: wikiTime(p.created),
		Version: pageVersionWire{CreatedAt: wikiTime(p.modified), Message: p.versionMsg,
			Number: p.version, MinorEdit: p.minorEdit, AuthorID: author},
		Body: map[string]bodyWire{},
		Links: pageLinksWire{
			WebUI:  p.webui(),
			EditUI: "/pages/resumedraft.action?draftId=" + p.id,
			TinyUI: "/x/" + tinyCode(p.id),
		},
	}
	if base != "" {
		w.Links.Base = base + "/wiki"
	}
	if p.parentID != "" {
		parent, kind := p.parentID, "page"
		w.ParentID, w.ParentType = &parent, &kind
	}
	switch bodyFormat {
	case "storage":
		w.Body["storage"] = bodyWire{Representation: "storage", Value: p.body}
	case "view", "export_view", "styled_view", "anonymous_export_view":
		html, err := storageToHTML(p.body)
		if err != nil {
			// Stored bodies were validated on write.
			html = ""
		}
		w.Body[bodyFormat] = bodyWire{Representation: bodyFormat, Value: string(html)}
	}
	return w
}

// listWire is the v2 MultiEntityResult.
type listWire[T any] struct {
	Results []T               `json:"results"`
	Links   map[string]string `json:"_links"`
}

// paging parses limit and cursor. Cursors are opaque to clients; the
// emulator's encode an offset.
func paging(q url.Values) (limit, offset int, err error) {
	limit = defaultPageLimit
	if v := q.Get("limit"); v != "" {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > maxPageLimit {
			return 0, 0, fmt.Errorf("Provided value {%s} for 'limit' is not valid: it must be between 1 and %d.", v, maxPageLimit)
		}
	}
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || !strings.HasPrefix(string(b), "offset:") {
			return 0, 0, fmt.Errorf("Provided value {%s} for 'cursor' is not valid.", c)
		}
		if offset, err = strconv.Atoi(strings.TrimPrefix(string(b), "offset:")); err != nil || offset < 0 {
			return 0, 0, fmt.Errorf("Provided value {%s} for 'cursor' is not valid.", c)
		}
	}
	return limit, offset, nil
}

// writePage writes one page of results, setting _links.next and the Link
// header when more results exist.
func writeList[T any](w http.ResponseWriter, r *http.Request, base string, all []T, limit, offset int) {
	resp := listWire[T]{Results: []T{}, Links: map[string]string{"base": base + "/wiki"}}
	if offset < len(all) {
		end := min(offset+limit, len(all))
		resp.Results = append(resp.Results, all[offset:end]...)
		if end < len(all) {
			q := r.URL.Query()
			q.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(end))))
			next := r.URL.Path + "?" + q.Encode()
			resp.Links["next"] = next
			w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next", <%s/wiki>; rel="base"`, next, base))
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (e *Emulator) listSpaces(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset, err := paging(q)
	if err != nil {
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", err.Error())
		return
	}
	keys, ids := queryList(q, "keys"), queryList(q, "ids")
	types, statuses := queryList(q, "type"), queryList(q, "status")
	base := e.base(r)
	e.mu.Lock()
	var out []spaceWire
	for _, sp := range e.st.spaces {
		if len(keys) > 0 && !slices.ContainsFunc(keys, func(k string) bool { return strings.EqualFold(k, sp.key) }) {
			continue
		}
		if len(ids) > 0 && !slices.Contains(ids, sp.id) {
			continue
		}
		if len(types) > 0 && !slices.Contains(types, "global") {
			continue
		}
		if len(statuses) > 0 && !slices.Contains(statuses, "current") {
			continue
		}
		out = append(out, e.spaceWire(sp))
	}
	e.mu.Unlock()
	writeList(w, r, base, out, limit, offset)
}

// pageFilter is the query of GET /pages.
type pageFilter struct {
	ids        []string
	spaceIDs   []string
	statuses   []string
	title      string
	hasTitle   bool
	bodyFormat string
}

func parsePageFilter(q url.Values) (pageFilter, error) {
	f := pageFilter{
		ids:      queryList(q, "id"),
		spaceIDs: queryList(q, "space-id"),
		statuses: queryList(q, "status"),
		title:    q.Get("title"),
		hasTitle: q.Has("title"),
	}
	for _, id := range append(slices.Clone(f.ids), f.spaceIDs...) {
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			return f, fmt.Errorf("Provided value {%s} for 'id' is not the correct type. Expected type is Long", id)
		}
	}
	for _, s := range f.statuses {
		switch s {
		case "current", "archived", "trashed", "deleted":
		default:
			return f, fmt.Errorf("Provided value {%s} for 'status' is not valid. Valid values are current, archived, trashed, deleted.", s)
		}
	}
	if len(f.statuses) == 0 {
		f.statuses = []string{"current", "archived"}
	}
	switch bf := q.Get("body-format"); bf {
	case "":
	case "storage":
		f.bodyFormat = bf
	case "atlas_doc_format":
		return f, fmt.Errorf("body-format %q is not supported by the emulator; use storage.", bf)
	default:
		return f, fmt.Errorf("Provided value {%s} for 'body-format' is not valid.", bf)
	}
	return f, nil
}

func (f pageFilter) matches(p *page) bool {
	return (len(f.ids) == 0 || slices.Contains(f.ids, p.id)) &&
		(len(f.spaceIDs) == 0 || slices.Contains(f.spaceIDs, p.space.id)) &&
		slices.Contains(f.statuses, p.status) &&
		(!f.hasTitle || strings.EqualFold(p.title, f.title))
}

func (e *Emulator) listPages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset, err := paging(q)
	if err != nil {
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", err.Error())
		return
	}
	f, err := parsePageFilter(q)
	if err != nil {
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", err.Error())
		return
	}
	base := e.base(r)
	e.mu.Lock()
	var out []pageWire
	for _, p := range e.st.pages {
		if f.matches(p) {
			out = append(out, e.pageWire(p, f.bodyFormat, ""))
		}
	}
	e.mu.Unlock()
	writeList(w, r, base, out, limit, offset)
}

func (e *Emulator) getPage(w http.ResponseWriter, r *http.Request) {
	bf := r.URL.Query().Get("body-format")
	switch bf {
	case "", "storage", "view", "export_view", "styled_view", "anonymous_export_view":
	case "atlas_doc_format", "editor":
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER",
			fmt.Sprintf("body-format %q is not supported by the emulator; use storage or view.", bf))
		return
	default:
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER",
			fmt.Sprintf("Provided value {%s} for 'body-format' is not valid.", bf))
		return
	}
	base := e.base(r)
	e.locked(w, func() reply {
		p, ok := e.st.pageByID[r.PathValue("id")]
		if !ok {
			return wikiErrorReply(http.StatusNotFound, "NOT_FOUND", "Not Found")
		}
		return jsonReply(http.StatusOK, e.pageWire(p, bf, base))
	})
}

// pageWrite is a validated POST/PUT body.
type pageWrite struct {
	id        string
	spaceID   string
	status    string
	title     string
	parentID  string
	body      string
	version   int
	message   string
	minorEdit bool
}

// rawID accepts ids as JSON strings or numbers, as Confluence does.
func rawID(raw json.RawMessage, name string) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", fmt.Errorf("Provided value {%s} for '%s' is not the correct type. Expected type is Long", raw, name)
		}
		s = n.String()
	}
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return "", fmt.Errorf("Provided value {%s} for '%s' is not the correct type. Expected type is Long", s, name)
	}
	return s, nil
}

// parseBodyWrite accepts both PageBodyWrite {"representation","value"} and
// the nested {"storage":{"representation","value"}} form.
func parseBodyWrite(raw json.RawMessage) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var flat struct {
		Representation string          `json:"representation"`
		Value          *string         `json:"value"`
		Storage        json.RawMessage `json:"storage"`
	}
	if err := json.Unmarshal(raw, &flat); err != nil {
		return "", false, fmt.Errorf("body must be an object: %v", err)
	}
	if !isNull(flat.Storage) {
		var nested struct {
			Representation string  `json:"representation"`
			Value          *string `json:"value"`
		}
		if err := json.Unmarshal(flat.Storage, &nested); err != nil {
			return "", false, fmt.Errorf("body.storage must be an object: %v", err)
		}
		if nested.Representation != "" && nested.Representation != "storage" {
			return "", false, errors.New("body.storage.representation must be 'storage'")
		}
		if nested.Value == nil {
			return "", false, errors.New("body.storage.value is required")
		}
		return *nested.Value, true, nil
	}
	switch flat.Representation {
	case "storage":
	case "atlas_doc_format", "wiki":
		// Deliberate deviation: only storage is emulated.
		return "", false, fmt.Errorf("body representation %q is not supported by the emulator; use storage", flat.Representation)
	default:
		return "", false, fmt.Errorf("Provided value {%s} for 'representation' is not valid. Valid values are storage, atlas_doc_format, wiki.", flat.Representation)
	}
	if flat.Value == nil {
		return "", false, errors.New("body.value is required")
	}
	return *flat.Value, true, nil
}

func validateTitle(title, status string) error {
	switch {
	case strings.TrimSpace(title) == "" && status != "draft":
		return fmt.Errorf("Title cannot be empty for a page with status %s.", status)
	case utf8.RuneCountInString(title) > maxTitleLen:
		return fmt.Errorf("Title cannot be longer than %d characters.", maxTitleLen)
	}
	return nil
}

func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("Provided value {%s} for '%s' is not the correct type. Expected type is Boolean", v, name)
	}
	return b, nil
}

func (e *Emulator) createPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var rootLevel bool
	for _, name := range []string{"embedded", "private", "root-level"} {
		b, err := boolParam(q, name)
		if err != nil {
			writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", err.Error())
			return
		}
		if name == "root-level" {
			rootLevel = b
		}
	}
	obj, err := decodeObject(r)
	if err != nil {
		bodyError(w, wikiAPI, err)
		return
	}
	in, err := parsePageCreate(obj)
	if err != nil {
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", err.Error())
		return
	}
	if rootLevel && in.parentID != "" {
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", "parentId cannot be set when root-level is true.")
		return
	}

	base := e.base(r)
	e.locked(w, func() reply {
		sp := e.st.spaceByID(in.spaceID)
		if sp == nil {
			return wikiErrorReply(http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Space with id %s was not found or you do not have permission to access it.", in.spaceID))
		}
		if in.parentID == "" && !rootLevel {
			in.parentID = sp.homepageID
		} else if in.parentID != "" {
			if parent, ok := e.st.pageByID[in.parentID]; !ok || parent.space != sp || parent.status == "trashed" {
				return wikiErrorReply(http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", fmt.Sprintf("Parent page with id %s was not found in space %s.", in.parentID, sp.key))
			}
		}
		if in.status != "draft" && e.titleTakenLocked(sp, in.title, "") {
			return wikiErrorReply(http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", msgDuplicateTitle)
		}
		p := e.st.addPage(sp, in.title, in.parentID, in.body, e.now().UTC())
		p.status = in.status
		return jsonReply(http.StatusOK, e.pageWire(p, "storage", base))
	})
}

func parsePageCreate(obj map[string]json.RawMessage) (pageWrite, error) {
	var in pageWrite
	var err error
	if isNull(obj["spaceId"]) {
		return in, errors.New("spaceId is required.")
	}
	if in.spaceID, err = rawID(obj["spaceId"], "spaceId"); err != nil {
		return in, err
	}
	if in.parentID, err = rawID(obj["parentId"], "parentId"); err != nil {
		return in, err
	}
	in.status = "current"
	if raw := obj["status"]; !isNull(raw) {
		s, _ := rawString(raw)
		if s != "current" && s != "draft" {
			return in, fmt.Errorf("Provided value {%s} for 'status' is not valid. Valid values are current, draft.", raw)
		}
		in.status = s
	}
	if raw := obj["title"]; !isNull(raw) {
		s, ok := rawString(raw)
		if !ok {
			return in, errors.New("title must be a string.")
		}
		in.title = s
	}
	if err := validateTitle(in.title, in.status); err != nil {
		return in, err
	}
	body, _, err := parseBodyWrite(obj["body"])
	if err != nil {
		return in, err
	}
	if err := validateStorage(body); err != nil {
		return in, err
	}
	in.body = body
	return in, nil
}

// titleTakenLocked reports whether another current or archived page in sp
// has title (case-insensitively); trashed pages and drafts do not reserve
// titles.
func (e *Emulator) titleTakenLocked(sp *space, title, exceptID string) bool {
	for _, p := range e.st.pages {
		if p.space == sp && p.id != exceptID && (p.status == "current" || p.status == "archived") &&
			strings.EqualFold(p.title, title) {
			return true
		}
	}
	return false
}

func (e *Emulator) updatePage(w http.ResponseWriter, r *http.Request) {
	obj, err := decodeObject(r)
	if err != nil {
		bodyError(w, wikiAPI, err)
		return
	}
	in, err := parsePageUpdate(obj)
	if err != nil {
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", err.Error())
		return
	}
	id := r.PathValue("id")
	if in.id != id {
		writeWikiError(w, http.StatusBadRequest, "INVALID_REQUEST_PARAMETER",
			fmt.Sprintf("The id in the body (%s) does not match the id in the path (%s).", in.id, id))
		return
	}

	base := e.base(r)
	e.locked(w, func() reply {
		p, ok := e.st.pageByID[id]
		if !ok || p.status == "trashed" {
			return wikiErrorReply(http.StatusNotFound, "NOT_FOUND", "Not Found")
		}
		if in.version != p.version+1 {
			return wikiErrorReply(http.StatusConflict, "CONFLICT",
				fmt.Sprintf("Version must be incremented on update. Current version is: %d", p.version))
		}
		if in.spaceID != "" && in.spaceID != p.space.id {
			return wikiErrorReply(http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", "Moving a page to another space is not supported by the emulator.")
		}
		if in.parentID != "" && in.parentID != p.parentID {
			parent, ok := e.st.pageByID[in.parentID]
			if !ok || parent.space != p.space || parent == p || parent.status == "trashed" {
				return wikiErrorReply(http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", fmt.Sprintf("Parent page with id %s was not found in space %s.", in.parentID, p.space.key))
			}
			p.parentID = in.parentID
		}
		if in.status != "draft" && e.titleTakenLocked(p.space, in.title, p.id) {
			return wikiErrorReply(http.StatusBadRequest, "INVALID_REQUEST_PARAMETER", msgDuplicateTitle)
		}
		p.title, p.body, p.status = in.title, in.body, in.status
		p.version, p.versionMsg, p.minorEdit = in.version, in.message, in.minorEdit
		p.modified = e.now().UTC()
		return jsonReply(http.StatusOK, e.pageWire(p, "storage", base))
	})
}

func parsePageUpdate(obj map[string]json.RawMessage) (pageWrite, error) {
	var in pageWrite
	var err error
	if isNull(obj["id"]) {
		return in, errors.New("id is required.")
	}
	if in.id, err = rawID(obj["id"], "id"); err != nil {
		return in, err
	}
	if in.spaceID, err = rawID(obj["spaceId"], "spaceId"); err != nil {
		return in, err
	}
	if in.parentID, err = rawID(obj["parentId"], "parentId"); err != nil {
		return in, err
	}
	s, _ := rawString(obj["status"])
	if s != "current" && s != "draft" {
		return in, fmt.Errorf("Provided value {%s} for 'status' is not valid. Valid values are current, draft.", obj["status"])
	}
	in.status = s
	title, ok := rawString(obj["title"])
	if !ok {
		return in, errors.New("title is required.")
	}
	in.title = title
	if err := validateTitle(in.title, in.status); err != nil {
		return in, err
	}
	body, present, err := parseBodyWrite(obj["body"])
	if err != nil {
		return in, err
	}
	if !present {
		return in, errors.New("body is required.")
	}
	if err := validateStorage(body); err != nil {
		return in, err
	}
	in.body = body
	var v struct {
		Number    *int   `json:"number"`
		Message   string `json:"message"`
		MinorEdit bool   `json:"minorEdit"`
	}
	if isNull(obj["version"]) || json.Unmarshal(obj["version"], &v) != nil || v.Number == nil {
		return in, errors.New("version.number is required.")
	}
	in.version, in.message, in.minorEdit = *v.Number, v.Message, v.MinorEdit
	return in, nil
}
