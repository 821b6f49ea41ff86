// Package jira is a narrow Jira Cloud REST v3 client: create an issue, find
// issues by label, and upsert a remote link. Wire types are private; the
// exported types are what the function needs.
package jira

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"function/atlassian"
	"function/render/adf"
)

// Client talks to one Jira site.
type Client struct {
	c       *atlassian.Client
	baseURL string
}

// New returns a client; baseURL is the site URL, e.g. https://x.atlassian.net.
func New(baseURL string, c *atlassian.Client) *Client {
	return &Client{c: c, baseURL: strings.TrimRight(baseURL, "/")}
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
	Description adf.Doc
	Labels      []string
}

type createIssueRequest struct {
	Fields createIssueFields `json:"fields"`
}

type createIssueFields struct {
	Project     keyRef   `json:"project"`
	IssueType   nameRef  `json:"issuetype"`
	Summary     string   `json:"summary"`
	Description adf.Doc  `json:"description"`
	Labels      []string `json:"labels,omitempty"`
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

// CreateIssue creates an issue and returns its id and key.
func (c *Client) CreateIssue(ctx context.Context, n NewIssue) (Issue, error) {
	var out createdIssue
	_, err := c.c.Do(ctx, atlassian.Call{
		Op: "create issue", Method: http.MethodPost, Path: "/rest/api/3/issue",
		Body: createIssueRequest{Fields: createIssueFields{
			Project:     keyRef{Key: n.Project},
			IssueType:   nameRef{Name: n.IssueType},
			Summary:     n.Summary,
			Description: n.Description,
			Labels:      n.Labels,
		}},
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
	ReconcileIssues []int64  `json:"reconcileIssues,omitempty"`
}

type searchResponse struct {
	Issues []struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	} `json:"issues"`
}

// FindByLabel returns the issues in projects that carry label, oldest
// first. Jira's search is eventually consistent: ids in reconcile (issues
// this process created) are returned even before the index has them.
func (c *Client) FindByLabel(ctx context.Context, projects []string, label string, reconcile []string) ([]Issue, error) {
	jql := fmt.Sprintf("project in (%s) AND labels = %s ORDER BY created ASC", quoteList(projects), Quote(label))
	req := searchRequest{JQL: jql, Fields: []string{"key"}, MaxResults: 10}
	for _, id := range reconcile {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && len(req.ReconcileIssues) < 50 {
			req.ReconcileIssues = append(req.ReconcileIssues, n)
		}
	}
	var out searchResponse
	if _, err := c.c.Do(ctx, atlassian.Call{
		Op: "search issues", Method: http.MethodPost, Path: "/rest/api/3/search/jql", Body: req, Result: &out,
	}); err != nil {
		return nil, err
	}
	issues := make([]Issue, 0, len(out.Issues))
	for _, i := range out.Issues {
		issues = append(issues, Issue{ID: i.ID, Key: i.Key})
	}
	return issues, nil
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

// UpsertRemoteLink creates or updates the link with l.GlobalID. It reports
// whether the link was created (201) rather than updated (200). Every field
// is sent every time, because Jira nulls the fields an update leaves out.
func (c *Client) UpsertRemoteLink(ctx context.Context, issueKey string, l RemoteLink) (bool, error) {
	body := remoteLinkRequest{
		GlobalID:     l.GlobalID,
		Relationship: l.Relationship,
		Object:       remoteLinkObject{URL: l.URL, Title: l.Title, Summary: l.Summary},
	}
	if l.AppType != "" || l.AppName != "" {
		body.Application = &remoteLinkApp{Type: l.AppType, Name: l.AppName}
	}
	status, err := c.c.Do(ctx, atlassian.Call{
		Op: "link issue to page", Method: http.MethodPost,
		Path: "/rest/api/3/issue/" + url.PathEscape(issueKey) + "/remotelink", Body: body,
	})
	if err != nil {
		return false, err
	}
	return status == http.StatusCreated, nil
}

// BrowseURL is the issue's page in the Jira web UI.
func (c *Client) BrowseURL(key string) string {
	return c.baseURL + "/browse/" + url.PathEscape(key)
}
