// Package openertest holds in-memory fakes of what the opener needs of
// Jira, Confluence and Backstage, modelling their state (jiralert's
// Jira): issues with labels, comments and links; pages with unique
// titles and versions; notifications by scope. Tests of the opener and of
// the stores it runs on use them.
package openertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"function/atlassian"
	"function/backstage"
	"function/confluence"
	"function/jira"
	"function/render/adf"
)

// Jira models the issues of a Jira site (jiralert's Jira): what
// was created, labelled, commented and linked, and a search that may lag
// behind creates as Jira's index does. fail, when set, decides per call
// whether it fails, and whether the failure happened after the write took
// effect (the answer lost).
type Jira struct {
	mu     sync.Mutex
	issues []*Issue
	// SearchLag hides issues from search for this long after their
	// creation, as Jira's index does.
	SearchLag time.Duration
	// Fail, when set, decides per call (op: create, search, link,
	// comment, comments, myself) whether it fails, and whether the
	// failure came after the write took effect (the answer lost).
	Fail   func(op string) (err error, tookEffect bool)
	calls  map[string]int
	traces map[string][]string
}

// Issue is one issue: what search shows, its comments and its links.
type Issue struct {
	jira.Found
	// Description is the description's ADF document as JSON.
	Description []byte
	comments    []string
	commentIDs  map[string]bool
	links       map[string]jira.RemoteLink
}

func NewJira() *Jira { return &Jira{calls: map[string]int{}, traces: map[string][]string{}} }

// call counts op, notes the trace id its context would send (the
// Atlassian client takes the traceparent from the context), and asks
// Fail.
func (f *Jira) call(ctx context.Context, op string) (error, bool) {
	f.calls[op]++
	f.traces[op] = append(f.traces[op], atlassian.TraceID(ctx))
	if f.Fail == nil {
		return nil, false
	}
	return f.Fail(op)
}

// CreateIssue creates an issue with the labels asked for.
func (f *Jira) CreateIssue(ctx context.Context, n jira.NewIssue) (jira.Issue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.call(ctx, "create")
	if err != nil && !effect {
		return jira.Issue{}, err
	}
	id := len(f.issues) + 1
	is := &Issue{Found: jira.Found{
		Issue:  jira.Issue{ID: fmt.Sprint(10000 + id), Key: fmt.Sprintf("%s-%d", n.Project, id)},
		Labels: n.Labels, Created: time.Now(), StatusCategory: "new", Status: "Open",
	}, links: map[string]jira.RemoteLink{}}
	is.Description, _ = json.Marshal(n.Description)
	f.issues = append(f.issues, is)
	if err != nil {
		return jira.Issue{}, err
	}
	return is.Issue, nil
}

// FindByLabels finds the indexed issues with any of labels, newest first; reconcile ids are found whatever the index says.
func (f *Jira) FindByLabels(ctx context.Context, _, labels []string, reconcile []string) ([]jira.Found, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.call(ctx, "search"); err != nil {
		return nil, err
	}
	var out []jira.Found
	for i := len(f.issues) - 1; i >= 0; i-- { // newest first
		is := f.issues[i]
		indexed := time.Since(is.Created) >= f.SearchLag || slices.Contains(reconcile, is.ID)
		if indexed && slices.ContainsFunc(labels, is.HasLabel) {
			out = append(out, is.Found)
		}
	}
	return out, nil
}

func (f *Jira) find(key string) *Issue {
	for _, is := range f.issues {
		if is.Key == key {
			return is
		}
	}
	return nil
}

// UpsertRemoteLink keeps one link per globalId.
func (f *Jira) UpsertRemoteLink(ctx context.Context, key string, l jira.RemoteLink) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.call(ctx, "link")
	if err != nil && !effect {
		return err
	}
	is := f.find(key)
	if is == nil {
		return &atlassian.Error{Service: "jira", Op: "link", Status: http.StatusNotFound}
	}
	is.links[l.GlobalID] = l
	return err
}

// AddComment adds a comment, with its identity when it has one.
func (f *Jira) AddComment(ctx context.Context, key string, c jira.Comment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.call(ctx, "comment")
	if err != nil && !effect {
		return err
	}
	is := f.find(key)
	if is == nil {
		return &atlassian.Error{Service: "jira", Op: "comment", Status: http.StatusNotFound}
	}
	is.comments = append(is.comments, c.Wiki)
	if c.ID != "" {
		if is.commentIDs == nil {
			is.commentIDs = map[string]bool{}
		}
		is.commentIDs[c.ID] = true
	}
	return err
}

// CommentIDs returns the identities of the issue's comments.
func (f *Jira) CommentIDs(ctx context.Context, key string) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.call(ctx, "comments"); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for id := range f.find(key).commentIDs {
		ids[id] = true
	}
	return ids, nil
}

// Myself checks the credentials.
func (f *Jira) Myself(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, _ := f.call(ctx, "myself")
	return err
}

// Transitions offers a way out of done and one into it.
func (f *Jira) Transitions(context.Context, string) ([]jira.Transition, error) {
	return []jira.Transition{{ID: "1", Name: "Reopen"}, {ID: "2", Name: "Done", ToCategoryDone: true}}, nil
}

// DoTransition moves the issue to done (id 2) or out of it.
func (f *Jira) DoTransition(_ context.Context, key, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.find(key)
	if id == "2" {
		is.StatusCategory, is.Resolved = "done", time.Now()
	} else {
		is.StatusCategory, is.Resolved = "new", time.Time{}
	}
	return nil
}

// ShowResolved makes search show the issue resolved at at, as a lagging
// index shows an issue that has been reopened since.
func (f *Jira) ShowResolved(key string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := f.find(key)
	is.StatusCategory, is.Resolved = "done", at
}

// BrowseURL is the issue's web page.
func (f *Jira) BrowseURL(key string) string { return "https://jira.example/browse/" + key }

// Description returns the issue's ADF description.
func (f *Jira) Description(ctx context.Context, key string) ([]byte, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.call(ctx, "description"); err != nil {
		return nil, "", err
	}
	return f.find(key).Description, "", nil
}

// SetDescription replaces the issue's description.
func (f *Jira) SetDescription(ctx context.Context, key string, doc adf.Doc, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.call(ctx, "edit")
	if err != nil && !effect {
		return err
	}
	f.find(key).Description, _ = json.Marshal(doc)
	return err
}

// EditDescription is a person editing the description in Jira.
func (f *Jira) EditDescription(key string, doc adf.Doc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.find(key).Description, _ = json.Marshal(doc)
}

// Calls returns how many calls of op were made.
func (f *Jira) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Traces is the trace id each op call's context carried, in order ("" for
// none).
func (f *Jira) Traces(op string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.traces[op])
}

// Issue returns the issue with key as search would show it.
func (f *Jira) Issue(key string) (jira.Found, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if is := f.find(key); is != nil {
		return is.Found, true
	}
	return jira.Found{}, false
}

// Count returns the number of issues, comments and remote links.
func (f *Jira) Count() (issues, comments, links int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, is := range f.issues {
		comments += len(is.comments)
		links += len(is.links)
	}
	return len(f.issues), comments, links
}

// Confluence models one space's pages, with titles unique as
// Confluence keeps them and versions checked on update.
type Confluence struct {
	mu    sync.Mutex
	pages []*confluence.Stored
	// Fail, as Jira's (op: space, create, get, update).
	Fail func(op string) (err error, tookEffect bool)
}

func (f *Confluence) check(op string) (error, bool) {
	if f.Fail == nil {
		return nil, false
	}
	return f.Fail(op)
}

// SpaceID resolves the one space.
func (f *Confluence) SpaceID(context.Context, string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.check("space"); err != nil {
		return "", err
	}
	return "65537", nil
}

// CreatePage refuses a title the space has, as Confluence does.
func (f *Confluence) CreatePage(_ context.Context, n confluence.NewPage) (confluence.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.check("create")
	if err != nil && !effect {
		return confluence.Page{}, err
	}
	for _, p := range f.pages {
		if p.Title == n.Title {
			return confluence.Page{}, confluence.ErrDuplicateTitle
		}
	}
	id := fmt.Sprint(900 + len(f.pages))
	p := &confluence.Stored{Page: confluence.Page{ID: id, Title: n.Title, Version: 1, URL: "https://wiki.example/pages/" + id}, Storage: n.Storage}
	f.pages = append(f.pages, p)
	if err != nil {
		return confluence.Page{}, err
	}
	return p.Page, nil
}

// FindByTitle finds a page by its title.
func (f *Confluence) FindByTitle(_ context.Context, _, title string) (confluence.Page, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pages {
		if p.Title == title {
			return p.Page, true, nil
		}
	}
	return confluence.Page{}, false, nil
}

// GetPage returns the page with its body and version.
func (f *Confluence) GetPage(_ context.Context, id string) (confluence.Stored, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.check("get"); err != nil {
		return confluence.Stored{}, err
	}
	for _, p := range f.pages {
		if p.ID == id {
			return *p, nil
		}
	}
	return confluence.Stored{}, &atlassian.Error{Service: "confluence", Op: "get page", Status: http.StatusNotFound}
}

// UpdatePage refuses a version that is not the next one.
func (f *Confluence) UpdatePage(_ context.Context, old confluence.Stored, storage string, version int, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.check("update")
	if err != nil && !effect {
		return err
	}
	for _, p := range f.pages {
		if p.ID == old.ID {
			if version != p.Version+1 {
				return confluence.ErrVersionConflict
			}
			p.Storage, p.Version = storage, version
			return err
		}
	}
	return &atlassian.Error{Service: "confluence", Op: "update page", Status: http.StatusNotFound}
}

// Pages returns the number of pages.
func (f *Confluence) Pages() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pages)
}

// TimelineRows counts s in the timeline sections of the pages (between
// the rollback-incident.timeline anchors), or in the whole body of a page
// without them.
func (f *Confluence) TimelineRows(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.pages {
		body := p.Storage
		if _, rest, ok := strings.Cut(body, "rollback-incident.timeline<"); ok {
			body, _, _ = strings.Cut(rest, "rollback-incident.timeline.end")
		}
		n += strings.Count(body, s)
	}
	return n
}

// Occurrences counts s in the pages' bodies.
func (f *Confluence) Occurrences(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.pages {
		n += strings.Count(p.Storage, s)
	}
	return n
}

// Notifier keeps the notifications by scope, as Backstage does.
type Notifier struct {
	mu     sync.Mutex
	scopes map[string]int
}

// Sent returns how many notifications were sent with scope.
func (f *Notifier) Sent(scope string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scopes[scope]
}

// Send keeps the notification by its scope.
func (f *Notifier) Send(_ context.Context, n backstage.Notification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.scopes == nil {
		f.scopes = map[string]int{}
	}
	f.scopes[n.Scope]++
	return nil
}

// Observer counts what the drainer reports.
type Observer struct {
	mu        sync.Mutex
	attempts  map[string]int
	pending   int
	oldest    time.Duration
	abandoned int
}

// Attempt counts an attempt.
func (o *Observer) Attempt(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.attempts == nil {
		o.attempts = map[string]int{}
	}
	o.attempts[outcome]++
}

// Backlog keeps the last backlog reported.
func (o *Observer) Backlog(pending int, oldest time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending, o.oldest = pending, oldest
}

// Abandoned counts an abandoned rollback.
func (o *Observer) Abandoned() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.abandoned++
}

// Count returns the attempts with outcome, or the abandoned count.
func (o *Observer) Count(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if outcome == "abandoned" {
		return o.abandoned
	}
	return o.attempts[outcome]
}

// Backlog returns the last pending count and oldest age reported.
func (o *Observer) LastBacklog() (int, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending, o.oldest
}

// Unavailable is the error of a call Atlassian answered 503.
func Unavailable(op string) error {
	return &atlassian.Error{Service: "jira", Op: op, Status: http.StatusServiceUnavailable, Temporary: true}
}

// Lost is the error of a call whose answer never came.
func Lost(op string) error {
	return &atlassian.Error{Service: "jira", Op: op, Status: 0, Temporary: true}
}

// LoseOnce is a Fail that loses the answer of the first call of op, after
// it took effect, and lets every other call through.
func LoseOnce(op string) func(string) (error, bool) {
	var once sync.Once
	return func(called string) (err error, tookEffect bool) {
		if called == op {
			once.Do(func() { err = Lost(called) })
		}
		return err, err != nil
	}
}
