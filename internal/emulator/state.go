package emulator

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// projectConfig is immutable after New.
type projectConfig struct {
	id         string
	key        string
	name       string
	issueTypes []issueTypeConfig
}

type issueTypeConfig struct {
	id   string
	name string
}

// buildProjects assigns stable ids: projects 10000.. in key order, issue
// types 10001.. in order of first appearance (issue types are global in
// Jira, so one name has one id across projects).
func buildProjects(in map[string][]string) []projectConfig {
	keys := slices.Sorted(maps.Keys(in))
	typeIDs := map[string]string{}
	var out []projectConfig
	for i, k := range keys {
		p := projectConfig{id: strconv.Itoa(10000 + i), key: strings.ToUpper(strings.TrimSpace(k))}
		p.name = p.key
		for _, name := range dedupeFold(in[k]) {
			id, ok := typeIDs[strings.ToLower(name)]
			if !ok {
				id = strconv.Itoa(10001 + len(typeIDs))
				typeIDs[strings.ToLower(name)] = id
			}
			p.issueTypes = append(p.issueTypes, issueTypeConfig{id: id, name: name})
		}
		out = append(out, p)
	}
	return out
}

func (e *Emulator) project(keyOrID string) *projectConfig {
	for i := range e.projects {
		p := &e.projects[i]
		if strings.EqualFold(p.key, keyOrID) || p.id == keyOrID {
			return p
		}
	}
	return nil
}

// state is everything Reset throws away. Guarded by Emulator.mu.
type state struct {
	nextIssueID   int64
	nextCommentID int64
	nextLinkID    int64
	nextPageID    int64
	issueNum      map[string]int
	issues        []*issue
	issueByID     map[string]*issue
	issueByKey    map[string]*issue
	spaces        []*space
	pages         []*page
	pageByID      map[string]*page
	notifications []*notification
}

type issue struct {
	id         string
	key        string
	project    *projectConfig
	issueType  issueTypeConfig
	summary    string
	desc       richText // ADF (v3) or wiki markup (v2); zero when unset
	labels     []string
	priority   *priority
	components []string
	status     statusID
	resolution string
	created    time.Time
	updated    time.Time
	resolved   time.Time
	comments   []*comment
	links      []*remoteLink
}

type comment struct {
	id      string
	body    richText
	props   map[string]json.RawMessage // entity properties set on create; nil when none
	created time.Time
}

type remoteLink struct {
	id           int64
	globalID     string
	application  json.RawMessage // nil when unset
	relationship *string
	object       json.RawMessage
	url          string
	title        string
	summary      string
}

type space struct {
	id         string
	key        string
	name       string
	homepageID string
	created    time.Time
}

type page struct {
	id         string
	space      *space
	title      string
	status     string
	parentID   string
	position   int
	body       string
	version    int
	versionMsg string
	minorEdit  bool
	created    time.Time
	modified   time.Time
}

func (e *Emulator) newState() *state {
	now := e.now().UTC()
	st := &state{
		nextIssueID:   10000,
		nextCommentID: 10000,
		nextLinkID:    10000,
		nextPageID:    65537,
		issueNum:      map[string]int{},
		issueByID:     map[string]*issue{},
		issueByKey:    map[string]*issue{},
		pageByID:      map[string]*page{},
	}
	for i, key := range e.spaces {
		sp := &space{id: strconv.Itoa(98305 + i), key: key, name: key, created: now}
		home := st.addPage(sp, key+" Home", "", "<p>Space home page created by the emulator.</p>", now)
		sp.homepageID = home.id
		st.spaces = append(st.spaces, sp)
	}
	return st
}

func (st *state) addPage(sp *space, title, parentID, body string, now time.Time) *page {
	p := &page{
		id:       strconv.FormatInt(st.nextPageID, 10),
		space:    sp,
		title:    title,
		status:   "current",
		parentID: parentID,
		position: len(st.pages),
		body:     body,
		version:  1,
		created:  now,
		modified: now,
	}
	st.nextPageID++
	st.pages = append(st.pages, p)
	st.pageByID[p.id] = p
	return p
}

// lookupIssue finds an issue by id or (case-insensitive) key.
func (st *state) lookupIssue(idOrKey string) *issue {
	if is, ok := st.issueByID[idOrKey]; ok {
		return is
	}
	return st.issueByKey[strings.ToUpper(idOrKey)]
}

func (st *state) spaceByID(id string) *space {
	for _, sp := range st.spaces {
		if sp.id == id {
			return sp
		}
	}
	return nil
}

func (st *state) spaceByKey(key string) *space {
	for _, sp := range st.spaces {
		if strings.EqualFold(sp.key, key) {
			return sp
		}
	}
	return nil
}

// Issue is a snapshot of an emulated Jira issue.
type Issue struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	Project   string `json:"project"`
	IssueType string `json:"issueType"`
	Summary   string `json:"summary"`
	// Description is the ADF description of an issue created over v3;
	// DescriptionWiki the wiki-markup description of one created over
	// the Data Center v2 API. At most one is set.
	Description     json.RawMessage `json:"description,omitempty"`
	DescriptionWiki string          `json:"descriptionWiki,omitempty"`
	Labels          []string        `json:"labels"`
	Priority        string          `json:"priority,omitempty"`
	Components      []string        `json:"components,omitempty"`
	Status          string          `json:"status"`
	StatusCategory  string          `json:"statusCategory"`
	Created         time.Time       `json:"created"`
	Updated         time.Time       `json:"updated"`
	RemoteLinks     []RemoteLink    `json:"remoteLinks"`
	Comments        int             `json:"comments"`
}

// Comment is a snapshot of a Jira issue comment: Body is the ADF of a
// comment added over v3, BodyWiki the wiki markup of one added over v2.
type Comment struct {
	ID       string          `json:"id"`
	IssueKey string          `json:"issueKey"`
	Body     json.RawMessage `json:"body,omitempty"`
	BodyWiki string          `json:"bodyWiki,omitempty"`
	// Properties are the comment's entity properties, by key.
	Properties map[string]json.RawMessage `json:"properties,omitempty"`
	Created    time.Time                  `json:"created"`
}

// RemoteLink is a snapshot of a Jira remote issue link.
type RemoteLink struct {
	ID           int64           `json:"id"`
	IssueKey     string          `json:"issueKey"`
	GlobalID     string          `json:"globalId,omitempty"`
	Relationship string          `json:"relationship,omitempty"`
	URL          string          `json:"url"`
	Title        string          `json:"title"`
	Summary      string          `json:"summary,omitempty"`
	Application  json.RawMessage `json:"application,omitempty"`
	Object       json.RawMessage `json:"object"`
}

// Page is a snapshot of a Confluence page.
type Page struct {
	ID        string    `json:"id"`
	SpaceID   string    `json:"spaceId"`
	SpaceKey  string    `json:"spaceKey"`
	Title     string    `json:"title"`
	Status    string    `json:"status"`
	ParentID  string    `json:"parentId,omitempty"`
	Version   int       `json:"version"`
	Body      string    `json:"body"`
	WebUI     string    `json:"webui"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (is *issue) snapshot() Issue {
	s := Issue{
		ID:              is.id,
		Key:             is.key,
		Project:         is.project.key,
		IssueType:       is.issueType.name,
		Summary:         is.summary,
		Description:     slices.Clone(is.desc.adf),
		DescriptionWiki: is.desc.wiki,
		Labels:          slices.Clone(is.labels),
		Components:      slices.Clone(is.components),
		Status:          is.status.info().name,
		StatusCategory:  is.status.info().catKey,
		Created:         is.created,
		Updated:         is.updated,
		RemoteLinks:     []RemoteLink{},
		Comments:        len(is.comments),
	}
	if s.Labels == nil {
		s.Labels = []string{}
	}
	if is.priority != nil {
		s.Priority = is.priority.name
	}
	for _, l := range is.links {
		s.RemoteLinks = append(s.RemoteLinks, l.snapshot(is.key))
	}
	return s
}

func (l *remoteLink) snapshot(issueKey string) RemoteLink {
	s := RemoteLink{
		ID:          l.id,
		IssueKey:    issueKey,
		GlobalID:    l.globalID,
		URL:         l.url,
		Title:       l.title,
		Summary:     l.summary,
		Application: slices.Clone(l.application),
		Object:      slices.Clone(l.object),
	}
	if l.relationship != nil {
		s.Relationship = *l.relationship
	}
	return s
}

func (p *page) snapshot() Page {
	return Page{
		ID:        p.id,
		SpaceID:   p.space.id,
		SpaceKey:  p.space.key,
		Title:     p.title,
		Status:    p.status,
		ParentID:  p.parentID,
		Version:   p.version,
		Body:      p.body,
		WebUI:     p.webui(),
		CreatedAt: p.created,
		UpdatedAt: p.modified,
	}
}

// Issues returns snapshots of all issues in creation order.
func (e *Emulator) Issues() []Issue {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Issue, 0, len(e.st.issues))
	for _, is := range e.st.issues {
		out = append(out, is.snapshot())
	}
	return out
}

// Issue returns a snapshot of one issue by id or key.
func (e *Emulator) Issue(idOrKey string) (Issue, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	is := e.st.lookupIssue(idOrKey)
	if is == nil {
		return Issue{}, false
	}
	return is.snapshot(), true
}

// Pages returns snapshots of all pages (including the spaces' homepages)
// in creation order.
func (e *Emulator) Pages() []Page {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Page, 0, len(e.st.pages))
	for _, p := range e.st.pages {
		out = append(out, p.snapshot())
	}
	return out
}

// RemoteLinks returns the remote links of an issue (by key or id), or nil
// if the issue does not exist.
func (e *Emulator) RemoteLinks(issueKey string) []RemoteLink {
	e.mu.Lock()
	defer e.mu.Unlock()
	is := e.st.lookupIssue(issueKey)
	if is == nil {
		return nil
	}
	out := make([]RemoteLink, 0, len(is.links))
	for _, l := range is.links {
		out = append(out, l.snapshot(is.key))
	}
	return out
}

// Comments returns the comments of an issue (by key or id), or nil if the
// issue does not exist.
func (e *Emulator) Comments(issueKey string) []Comment {
	e.mu.Lock()
	defer e.mu.Unlock()
	is := e.st.lookupIssue(issueKey)
	if is == nil {
		return nil
	}
	out := make([]Comment, 0, len(is.comments))
	for _, c := range is.comments {
		out = append(out, Comment{ID: c.id, IssueKey: is.key, Body: slices.Clone(c.body.adf), BodyWiki: c.body.wiki,
			Properties: maps.Clone(c.props), Created: c.created})
	}
	return out
}

// Calls returns how many API requests each route received, keyed by the
// route pattern, e.g. "POST /rest/api/3/issue". Requests answered with an
// injected fault or 401/415 are counted too: they reached the service.
func (e *Emulator) Calls() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.calls))
	for k, v := range e.calls {
		out[k] = v
	}
	return out
}
