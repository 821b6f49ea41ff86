// Package jira is a narrow Jira client (Cloud REST v3, Data Center REST
// v2): create an issue, find issues by label, comment (with an identity
// that survives a lost answer), move an issue along its workflow, upsert a
// remote link, and check the credentials. Wire types are private; the
// exported types are what the function needs.
package jira

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"function/atlassian"
	"function/render/adf"
)

// Flavour is the Jira deployment the client speaks to.
type Flavour int

const (
	// Cloud is Jira Cloud: REST v3, ADF, /search/jql.
	Cloud Flavour = iota
	// DataCenter is Jira Data Center or Server: REST v2, wiki markup,
	// /search with offsets, personal access tokens.
	DataCenter
)

// Client talks to one Jira site.
type Client struct {
	c       *atlassian.Client
	baseURL string
	flavour Flavour
	api     string // "/rest/api/3" or "/rest/api/2"
}

// New returns a client; baseURL is the site URL, e.g. https://x.atlassian.net.
func New(baseURL string, c *atlassian.Client, f Flavour) *Client {
	api := "/rest/api/3"
	if f == DataCenter {
		api = "/rest/api/2"
	}
	return &Client{c: c, baseURL: strings.TrimRight(baseURL, "/"), flavour: f, api: api}
}

// Issue identifies an issue.
type Issue struct {
	ID  string
	Key string
}

// NewIssue is what CreateIssue sends.
type NewIssue struct {
	Project     string
	IssueType   string
	Summary     string
	Description adf.Doc // for Cloud
	// WikiDescription is the same content in wiki markup, for Data Center.
	WikiDescription string
	Labels          []string
	// Extra holds further fields (priority, components, custom fields),
	// already JSON; they cannot replace the ones above.
	Extra map[string]json.RawMessage
}

type createIssueRequest struct {
	Fields map[string]any `json:"fields"`
}

type keyRef struct {
	Key string `json:"key"`
}

type nameRef struct {
	Name string `json:"name"`
}

type createdIssue struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

func (n NewIssue) fields(f Flavour) map[string]any {
	fs := make(map[string]any, len(n.Extra)+5)
	for k, v := range n.Extra {
		fs[k] = v
	}
	fs["project"] = keyRef{Key: n.Project}
	fs["issuetype"] = nameRef{Name: n.IssueType}
	fs["summary"] = n.Summary
	if f == DataCenter {
		fs["description"] = n.WikiDescription
	} else {
		fs["description"] = n.Description
	}
	if len(n.Labels) > 0 {
		fs["labels"] = n.Labels
	}
	return fs
}

// CreateIssue creates an issue and returns its id and key.
func (c *Client) CreateIssue(ctx context.Context, n NewIssue) (Issue, error) {
	var out createdIssue
	_, err := c.c.Do(ctx, atlassian.Call{
		Op: "create issue", Method: http.MethodPost, Path: c.api + "/issue",
		Body:   createIssueRequest{Fields: n.fields(c.flavour)},
		Result: &out,
	})
	if err != nil {
		return Issue{}, err
	}
	if out.ID == "" || out.Key == "" {
		return Issue{}, fmt.Errorf("jira: create issue: answer without id or key")
	}
	return Issue{ID: out.ID, Key: out.Key}, nil
}

type searchRequest struct {
	JQL             string   `json:"jql"`
	Fields          []string `json:"fields"`
	MaxResults      int      `json:"maxResults"`
	StartAt         *int     `json:"startAt,omitempty"`         // Data Center
	ReconcileIssues []int64  `json:"reconcileIssues,omitempty"` // Cloud
}

type searchResponse struct {
	Issues []struct {
		ID     string `json:"id"`
		Key    string `json:"key"`
		Fields struct {
			Labels         []string `json:"labels"`
			Created        jiraTime `json:"created"`
			ResolutionDate jiraTime `json:"resolutiondate"`
			Status         struct {
				Name           string `json:"name"`
				StatusCategory struct {
					Key string `json:"key"`
				} `json:"statusCategory"`
			} `json:"status"`
		} `json:"fields"`
	} `json:"issues"`
}

// jiraTime reads Jira's timestamps ("2026-01-17T12:34:00.000+0000").
type jiraTime struct{ time.Time }

func (t *jiraTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil || s == "" {
		return nil // null or absent: zero time
	}
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", time.RFC3339Nano, "2006-01-02T15:04:05-0700"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return nil
}

// Found is an issue returned by a search.
type Found struct {
	Issue
	Labels         []string
	Created        time.Time
	Resolved       time.Time // zero unless resolved
	Status         string
	StatusCategory string // "new", "indeterminate" or "done"
}

// Done reports whether the issue is in a done status.
func (f Found) Done() bool { return f.StatusCategory == "done" }

// HasLabel reports whether the issue carries label.
func (f Found) HasLabel(label string) bool {
	return slices.ContainsFunc(f.Labels, func(l string) bool { return strings.EqualFold(l, label) })
}

// FindByLabels returns the issues in projects that carry any of labels,
// newest first. Jira's search is eventually consistent: ids in reconcile
// (issues this function created) are returned even before the index has
// them.
func (c *Client) FindByLabels(ctx context.Context, projects, labels []string, reconcile []string) ([]Found, error) {
	jql := fmt.Sprintf("project in (%s) AND labels in (%s) ORDER BY created DESC", quoteList(projects), quoteList(labels))
	req := searchRequest{JQL: jql, Fields: []string{"labels", "created", "status", "resolutiondate"}, MaxResults: 20}
	path := c.api + "/search/jql"
	if c.flavour == DataCenter {
		// Data Center searches its own index, consistent with writes; it
		// has no /search/jql and no reconcileIssues.
		zero := 0
		req.StartAt, path = &zero, c.api+"/search"
	} else {
		for _, id := range reconcile {
			if n, err := strconv.ParseInt(id, 10, 64); err == nil && len(req.ReconcileIssues) < 50 {
				req.ReconcileIssues = append(req.ReconcileIssues, n)
			}
		}
	}
	var out searchResponse
	if _, err := c.c.Do(ctx, atlassian.Call{
		Op: "search issues", Method: http.MethodPost, Path: path, Body: req, Result: &out, Idempotent: true,
	}); err != nil {
		return nil, err
	}
	found := make([]Found, 0, len(out.Issues))
	for _, i := range out.Issues {
		found = append(found, Found{
			Issue: Issue{ID: i.ID, Key: i.Key}, Labels: i.Fields.Labels,
			Created: i.Fields.Created.Time, Resolved: i.Fields.ResolutionDate.Time,
			Status: i.Fields.Status.Name, StatusCategory: i.Fields.Status.StatusCategory.Key,
		})
	}
	return found, nil
}

type commentRequest struct {
	Body       any               `json:"body"` // ADF on Cloud, a wiki-markup string on Data Center
	Properties []commentProperty `json:"properties,omitempty"`
}

// commentPropertyKey is the comment property that carries a comment's
// identity (Comment.ID).
const commentPropertyKey = "rollback-incident"

// commentProperty is an entity property of a comment: Jira Cloud's
// EntityProperty and Data Center's EntityPropertyBean. Both take
// "properties" in the create body (Cloud's Comment schema: "Optional on
// create and update"; Data Center's CommentJsonBean.setProperties, which
// needs the value to be a JSON object) and list them on each comment of
// GET …/comment?expand=properties.
type commentProperty struct {
	Key   string       `json:"key"`
	Value commentIdent `json:"value"`
}

type commentIdent struct {
	ID string `json:"id"`
}

// Comment is a comment in both formats; the client sends the one its Jira
// takes.
type Comment struct {
	ADF  adf.Doc
	Wiki string
	// ID, when set, is stored with the comment (as the comment property
	// "rollback-incident", {"id": ID}), so that CommentIDs can tell
	// whether a comment whose answer was lost was posted after all.
	ID string
}

// AddComment adds a comment. A comment post is not idempotent and is not
// repeated after its answer was lost; give the comment an ID and, before
// posting it again, ask CommentIDs whether it is already there.
func (c *Client) AddComment(ctx context.Context, issueKey string, body Comment) error {
	req := commentRequest{Body: body.ADF}
	if c.flavour == DataCenter {
		req.Body = body.Wiki
	}
	if body.ID != "" {
		req.Properties = []commentProperty{{Key: commentPropertyKey, Value: commentIdent{ID: body.ID}}}
	}
	_, err := c.c.Do(ctx, atlassian.Call{
		Op: "add comment", Method: http.MethodPost, Issue: issueKey,
		Path: c.api + "/issue/" + url.PathEscape(issueKey) + "/comment", Body: req,
	})
	return err
}

// commentPage is the page size CommentIDs asks for; Cloud's default.
const commentPage = 100

type commentsResponse struct {
	StartAt  int `json:"startAt"`
	Total    int `json:"total"`
	Comments []struct {
		Properties []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"properties"`
	} `json:"comments"`
}

// CommentIDs returns the IDs (Comment.ID) of the comments on the issue
// that carry one, reading every page of the issue's comments.
func (c *Client) CommentIDs(ctx context.Context, issueKey string) (map[string]bool, error) {
	ids := map[string]bool{}
	for startAt := 0; ; {
		var out commentsResponse
		if _, err := c.c.Do(ctx, atlassian.Call{
			Op: "list comments", Method: http.MethodGet, Idempotent: true,
			Path: c.api + "/issue/" + url.PathEscape(issueKey) + "/comment",
			Query: url.Values{"startAt": {strconv.Itoa(startAt)}, "maxResults": {strconv.Itoa(commentPage)},
				"expand": {"properties"}},
			Result: &out,
		}); err != nil {
			return nil, err
		}
		for _, cm := range out.Comments {
			for _, p := range cm.Properties {
				var v commentIdent
				if p.Key == commentPropertyKey && json.Unmarshal(p.Value, &v) == nil && v.ID != "" {
					ids[v.ID] = true
				}
			}
		}
		startAt += len(out.Comments)
		// An empty page ends the walk even if total says otherwise (a
		// comment deleted meanwhile), so it cannot loop.
		if len(out.Comments) == 0 || startAt >= out.Total {
			return ids, nil
		}
	}
}

// Myself checks the credentials: it reads the calling user. A 401 or 403
// comes back as the usual *atlassian.Error.
func (c *Client) Myself(ctx context.Context) error {
	_, err := c.c.Do(ctx, atlassian.Call{
		Op: "check credentials", Method: http.MethodGet, Path: c.api + "/myself", Idempotent: true,
	})
	return err
}

// Transition is a workflow step available on an issue.
type Transition struct {
	ID             string
	Name           string
	ToStatus       string
	ToCategoryDone bool
}

type transitionsResponse struct {
	Transitions []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		To   struct {
			Name           string `json:"name"`
			StatusCategory struct {
				Key string `json:"key"`
			} `json:"statusCategory"`
		} `json:"to"`
	} `json:"transitions"`
}

// Transitions lists the transitions available on the issue now.
func (c *Client) Transitions(ctx context.Context, issueKey string) ([]Transition, error) {
	var out transitionsResponse
	if _, err := c.c.Do(ctx, atlassian.Call{
		Op: "list transitions", Method: http.MethodGet, Idempotent: true,
		Path: c.api + "/issue/" + url.PathEscape(issueKey) + "/transitions", Result: &out,
	}); err != nil {
		return nil, err
	}
	ts := make([]Transition, 0, len(out.Transitions))
	for _, t := range out.Transitions {
		ts = append(ts, Transition{ID: t.ID, Name: t.Name, ToStatus: t.To.Name, ToCategoryDone: t.To.StatusCategory.Key == "done"})
	}
	return ts, nil
}

type transitionRequest struct {
	Transition struct {
		ID string `json:"id"`
	} `json:"transition"`
}

// DoTransition moves the issue along the transition with id.
func (c *Client) DoTransition(ctx context.Context, issueKey, id string) error {
	var body transitionRequest
	body.Transition.ID = id
	_, err := c.c.Do(ctx, atlassian.Call{
		Op: "transition issue", Method: http.MethodPost, Issue: issueKey,
		Path: c.api + "/issue/" + url.PathEscape(issueKey) + "/transitions", Body: body,
	})
	return err
}

// Quote makes s a JQL string literal. Event text must never reach JQL any
// other way: a quote or backslash in it would change the query.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = Quote(s)
	}
	return strings.Join(q, ", ")
}

// RemoteLink is a link from an issue to a page elsewhere.
type RemoteLink struct {
	// GlobalID makes the POST an upsert: Jira updates the link with this
	// id instead of adding a second one.
	GlobalID     string
	URL          string
	Title        string
	Summary      string
	Relationship string
	AppType      string
	AppName      string
}

type remoteLinkRequest struct {
	GlobalID     string           `json:"globalId"`
	Application  *remoteLinkApp   `json:"application,omitempty"`
	Relationship string           `json:"relationship,omitempty"`
	Object       remoteLinkObject `json:"object"`
}

type remoteLinkApp struct {
	Type string `json:"type,omitempty"`
	Name string `json:"name,omitempty"`
}

type remoteLinkObject struct {
	URL     string `json:"url"`
	Title   string `json:"title"`
	Summary string `json:"summary,omitempty"`
}

// UpsertRemoteLink creates or updates the link with l.GlobalID, so a
// repeat changes nothing. Every field is sent every time, because Jira
// nulls the fields an update leaves out.
func (c *Client) UpsertRemoteLink(ctx context.Context, issueKey string, l RemoteLink) error {
	body := remoteLinkRequest{
		GlobalID:     l.GlobalID,
		Relationship: l.Relationship,
		Object:       remoteLinkObject{URL: l.URL, Title: l.Title, Summary: l.Summary},
	}
	if l.AppType != "" || l.AppName != "" {
		body.Application = &remoteLinkApp{Type: l.AppType, Name: l.AppName}
	}
	_, err := c.c.Do(ctx, atlassian.Call{
		Op: "upsert remote link", Method: http.MethodPost, Idempotent: true, Issue: issueKey,
		Path: c.api + "/issue/" + url.PathEscape(issueKey) + "/remotelink", Body: body,
	})
	return err
}

// BrowseURL is the issue's page in the Jira web UI.
func (c *Client) BrowseURL(key string) string {
	return c.baseURL + "/browse/" + url.PathEscape(key)
}

type descriptionAnswer struct {
	Fields struct {
		Description json.RawMessage `json:"description"`
	} `json:"fields"`
}

// Description returns the issue's description as Jira stores it: on Cloud
// the ADF document's JSON (nil when there is none), on Data Center the
// wiki markup.
func (c *Client) Description(ctx context.Context, issueKey string) (adfJSON []byte, wiki string, err error) {
	var out descriptionAnswer
	if _, err := c.c.Do(ctx, atlassian.Call{
		Op: "read description", Method: http.MethodGet, Idempotent: true,
		Path: c.api + "/issue/" + url.PathEscape(issueKey) + "?fields=description", Result: &out,
	}); err != nil {
		return nil, "", err
	}
	raw := out.Fields.Description
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", nil
	}
	if c.flavour == DataCenter {
		if err := json.Unmarshal(raw, &wiki); err != nil {
			return nil, "", fmt.Errorf("jira: read description of %s: %w", issueKey, err)
		}
		return nil, wiki, nil
	}
	return raw, "", nil
}

// SetDescription replaces the issue's description (PUT …/issue/{key},
// Jira's "Edit issue"): ADF on Cloud, wiki markup on Data Center. Setting
// the same value again changes nothing, so it may be repeated. It leaves
// notifyUsers at its default (true): turning watchers' mail off needs Jira
// or project admin rights, and people watching an incident want to know
// its facts changed.
func (c *Client) SetDescription(ctx context.Context, issueKey string, doc adf.Doc, wiki string) error {
	var desc any = doc
	if c.flavour == DataCenter {
		desc = wiki
	}
	_, err := c.c.Do(ctx, atlassian.Call{
		Op: "edit description", Method: http.MethodPut, Idempotent: true, Issue: issueKey,
		Path: c.api + "/issue/" + url.PathEscape(issueKey), Body: map[string]any{"fields": map[string]any{"description": desc}},
	})
	return err
}
