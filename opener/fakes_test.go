package opener

import (
	"context"
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
)

// fakeJira models the issues of a Jira site (jiralert's fakeJira): what
// was created, labelled, commented and linked, and a search that may lag
// behind creates as Jira's index does. fail, when set, decides per call
// whether it fails, and whether the failure happened after the write took
// effect (the answer lost).
type fakeJira struct {
	mu        sync.Mutex
	issues    []*fakeIssue
	searchLag time.Duration
	fail      func(op string) (err error, tookEffect bool)
	calls     map[string]int
}

type fakeIssue struct {
	jira.Found
	comments   []string
	commentIDs map[string]bool
	links      map[string]jira.RemoteLink
}

func newFakeJira() *fakeJira { return &fakeJira{calls: map[string]int{}} }

func (f *fakeJira) call(op string) (error, bool) {
	f.calls[op]++
	if f.fail == nil {
		return nil, false
	}
	return f.fail(op)
}

func (f *fakeJira) CreateIssue(_ context.Context, n jira.NewIssue) (jira.Issue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.call("create")
	if err != nil && !effect {
		return jira.Issue{}, err
	}
	id := len(f.issues) + 1
	is := &fakeIssue{Found: jira.Found{
		Issue:  jira.Issue{ID: fmt.Sprint(10000 + id), Key: fmt.Sprintf("%s-%d", n.Project, id)},
		Labels: n.Labels, Created: time.Now(), StatusCategory: "new", Status: "Open",
	}, links: map[string]jira.RemoteLink{}}
	f.issues = append(f.issues, is)
	if err != nil {
		return jira.Issue{}, err
	}
	return is.Issue, nil
}

func (f *fakeJira) FindByLabels(_ context.Context, _, labels []string, reconcile []string) ([]jira.Found, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.call("search"); err != nil {
		return nil, err
	}
	var out []jira.Found
	for i := len(f.issues) - 1; i >= 0; i-- { // newest first
		is := f.issues[i]
		indexed := time.Since(is.Created) >= f.searchLag || slices.Contains(reconcile, is.ID)
		if indexed && slices.ContainsFunc(labels, is.HasLabel) {
			out = append(out, is.Found)
		}
	}
	return out, nil
}

func (f *fakeJira) find(key string) *fakeIssue {
	for _, is := range f.issues {
		if is.Key == key {
			return is
		}
	}
	return nil
}

func (f *fakeJira) UpsertRemoteLink(_ context.Context, key string, l jira.RemoteLink) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.call("link")
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

func (f *fakeJira) AddComment(_ context.Context, key string, c jira.Comment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, effect := f.call("comment")
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

func (f *fakeJira) CommentIDs(_ context.Context, key string) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.call("comments"); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for id := range f.find(key).commentIDs {
		ids[id] = true
	}
	return ids, nil
}

func (f *fakeJira) Myself(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err, _ := f.call("myself")
	return err
}

func (f *fakeJira) Transitions(context.Context, string) ([]jira.Transition, error) {
	return []jira.Transition{{ID: "1", Name: "Reopen"}, {ID: "2", Name: "Done", ToCategoryDone: true}}, nil
}

func (f *fakeJira) DoTransition(_ context.Context, key, id string) error {
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

func (f *fakeJira) BrowseURL(key string) string { return "https://jira.example/browse/" + key }

// count returns the number of issues, comments and remote links.
func (f *fakeJira) count() (issues, comments, links int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, is := range f.issues {
		comments += len(is.comments)
		links += len(is.links)
	}
	return len(f.issues), comments, links
}

// fakeConfluence models one space's pages, with titles unique as
// Confluence keeps them and versions checked on update.
type fakeConfluence struct {
	mu    sync.Mutex
	pages []*confluence.Stored
	fail  func(op string) (err error, tookEffect bool)
}

func (f *fakeConfluence) check(op string) (error, bool) {
	if f.fail == nil {
		return nil, false
	}
	return f.fail(op)
}

func (f *fakeConfluence) SpaceID(context.Context, string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, _ := f.check("space"); err != nil {
		return "", err
	}
	return "65537", nil
}

func (f *fakeConfluence) CreatePage(_ context.Context, n confluence.NewPage) (confluence.Page, error) {
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

func (f *fakeConfluence) FindByTitle(_ context.Context, _, title string) (confluence.Page, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pages {
		if p.Title == title {
			return p.Page, true, nil
		}
	}
	return confluence.Page{}, false, nil
}

func (f *fakeConfluence) GetPage(_ context.Context, id string) (confluence.Stored, error) {
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

func (f *fakeConfluence) UpdatePage(_ context.Context, old confluence.Stored, storage string, version int, _ string) error {
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

// rows counts the timeline rows on the page whose text contains s.
func (f *fakeConfluence) rows(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.pages {
		n += strings.Count(p.Storage, s)
	}
	return n
}

// fakeNotifier keeps the notifications by scope, as Backstage does.
type fakeNotifier struct {
	mu     sync.Mutex
	scopes map[string]int
}

func (f *fakeNotifier) Send(_ context.Context, n backstage.Notification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.scopes == nil {
		f.scopes = map[string]int{}
	}
	f.scopes[n.Scope]++
	return nil
}

// fakeObserver counts what the drainer reports.
type fakeObserver struct {
	mu        sync.Mutex
	attempts  map[string]int
	pending   int
	oldest    time.Duration
	abandoned int
}

func (o *fakeObserver) Attempt(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.attempts == nil {
		o.attempts = map[string]int{}
	}
	o.attempts[outcome]++
}

func (o *fakeObserver) Backlog(pending int, oldest time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending, o.oldest = pending, oldest
}

func (o *fakeObserver) Abandoned() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.abandoned++
}

// count returns the attempts with outcome, or the abandoned count.
func (o *fakeObserver) count(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if outcome == "abandoned" {
		return o.abandoned
	}
	return o.attempts[outcome]
}

func (o *fakeObserver) backlog() (int, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending, o.oldest
}

// unavailable is the error of a call Atlassian answered 503.
func unavailable(op string) error {
	return &atlassian.Error{Service: "jira", Op: op, Status: http.StatusServiceUnavailable, Temporary: true}
}

// lost is the error of a call whose answer never came.
func lost(op string) error {
	return &atlassian.Error{Service: "jira", Op: op, Status: 0, Temporary: true}
}
