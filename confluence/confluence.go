// Package confluence is a narrow Confluence Cloud REST v2 client: resolve a
// space, create a page, find a page by title. Wire types are private.
package confluence

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"function/atlassian"
)

// Client talks to one Confluence site.
type Client struct {
	c       *atlassian.Client
	baseURL string // e.g. https://x.atlassian.net/wiki
}

// New returns a client; baseURL is the Confluence base, e.g.
// https://x.atlassian.net/wiki.
func New(baseURL string, c *atlassian.Client) *Client {
	return &Client{c: c, baseURL: strings.TrimRight(baseURL, "/")}
}

// Page is a created or found page.
type Page struct {
	ID      string
	Title   string
	Version int
	// URL is the page in the web UI.
	URL string
}

// ErrDuplicateTitle is returned by CreatePage when the space already has a
// page with that title: for a deterministic title, the page this rollback
// created earlier.
var ErrDuplicateTitle = errors.New("confluence: a page with this title already exists")

// ErrSpaceNotFound is returned by SpaceID for an unknown space key.
var ErrSpaceNotFound = errors.New("confluence: space not found")

type spacesResponse struct {
	Results []struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	} `json:"results"`
}

// SpaceID resolves a space key to the id the v2 API wants.
func (c *Client) SpaceID(ctx context.Context, key string) (string, error) {
	var out spacesResponse
	if _, err := c.c.Do(ctx, atlassian.Call{
		Op: "resolve space", Method: http.MethodGet, Idempotent: true, Path: "/api/v2/spaces",
		Query: map[string][]string{"keys": {key}}, Result: &out,
	}); err != nil {
		return "", err
	}
	for _, s := range out.Results {
		if strings.EqualFold(s.Key, key) {
			return s.ID, nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrSpaceNotFound, key)
}

// NewPage is what CreatePage sends.
type NewPage struct {
	SpaceID  string
	ParentID string // optional
	Title    string
	Storage  string // body in storage representation
}

type createPageRequest struct {
	SpaceID  string    `json:"spaceId"`
	Status   string    `json:"status"`
	Title    string    `json:"title"`
	ParentID string    `json:"parentId,omitempty"`
	Body     pageWrite `json:"body"`
}

type pageWrite struct {
	Representation string `json:"representation"`
	Value          string `json:"value"`
}

type pageResponse struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Version struct {
		Number int `json:"number"`
	} `json:"version"`
	Links struct {
		WebUI string `json:"webui"`
		Base  string `json:"base"`
	} `json:"_links"`
}

func (c *Client) page(p pageResponse, base string) Page {
	return Page{ID: p.ID, Title: p.Title, Version: p.Version.Number, URL: cmp.Or(p.Links.Base, base, c.baseURL) + p.Links.WebUI}
}

// CreatePage creates a current page. It returns ErrDuplicateTitle when the
// title is taken in the space.
func (c *Client) CreatePage(ctx context.Context, n NewPage) (Page, error) {
	var out pageResponse
	_, err := c.c.Do(ctx, atlassian.Call{
		// A repeat hits the duplicate-title 400, so the call is idempotent.
		Op: "create page", Method: http.MethodPost, Path: "/api/v2/pages", Idempotent: true,
		Body: createPageRequest{SpaceID: n.SpaceID, Status: "current", Title: n.Title, ParentID: n.ParentID,
			Body: pageWrite{Representation: "storage", Value: n.Storage}},
		Result: &out,
	})
	if err != nil {
		// Confluence answers 400 with this text; the code varies between
		// INVALID_REQUEST_PARAMETER and BAD_REQUEST, the title does not.
		if ae, ok := atlassian.AsError(err); ok && ae.Status == http.StatusBadRequest &&
			strings.Contains(strings.ToLower(ae.Detail), "a page with this title already exists") {
			return Page{}, fmt.Errorf("%w: %w", ErrDuplicateTitle, err)
		}
		return Page{}, err
	}
	return c.page(out, ""), nil
}

type pagesResponse struct {
	Results []pageResponse `json:"results"`
	Links   struct {
		Base string `json:"base"`
	} `json:"_links"`
}

// FindByTitle returns the current or archived page with exactly this title
// (Confluence matches titles case-insensitively).
func (c *Client) FindByTitle(ctx context.Context, spaceID, title string) (Page, bool, error) {
	var out pagesResponse
	if _, err := c.c.Do(ctx, atlassian.Call{
		Op: "find page", Method: http.MethodGet, Idempotent: true, Path: "/api/v2/pages",
		Query:  url.Values{"space-id": {spaceID}, "title": {title}, "status": {"current", "archived"}, "limit": {"5"}},
		Result: &out,
	}); err != nil {
		return Page{}, false, err
	}
	for _, p := range out.Results {
		if strings.EqualFold(p.Title, title) {
			return c.page(p, out.Links.Base), true, nil
		}
	}
	return Page{}, false, nil
}

// Stored is a page with its storage body, for an update.
type Stored struct {
	Page
	Storage string
	// spaceKey is the page's space as the v1 API read it, sent back on
	// update.
	spaceKey string
}

type pageWithBody struct {
	pageResponse
	Body struct {
		Storage struct {
			Value string `json:"value"`
		} `json:"storage"`
	} `json:"body"`
}

// GetPage reads a page with its storage body and version.
func (c *Client) GetPage(ctx context.Context, id string) (Stored, error) {
	var out pageWithBody
	if _, err := c.c.Do(ctx, atlassian.Call{
		Op: "read page", Method: http.MethodGet, Idempotent: true, Path: "/api/v2/pages/" + url.PathEscape(id),
		Query: url.Values{"body-format": {"storage"}}, Result: &out,
	}); err != nil {
		return Stored{}, err
	}
	return Stored{Page: c.page(out.pageResponse, ""), Storage: out.Body.Storage.Value}, nil
}

type updatePageRequest struct {
	ID      string    `json:"id"`
	Status  string    `json:"status"`
	Title   string    `json:"title"`
	Body    pageWrite `json:"body"`
	Version struct {
		Number  int    `json:"number"`
		Message string `json:"message,omitempty"`
	} `json:"version"`
}

// ErrVersionConflict is returned by UpdatePage when the page changed since
// it was read: read it again and reapply the change.
var ErrVersionConflict = errors.New("confluence: page version conflict")

// UpdatePage replaces the page's body; version must be the read version + 1.
func (c *Client) UpdatePage(ctx context.Context, p Stored, storage string, version int, message string) error {
	body := updatePageRequest{ID: p.ID, Status: "current", Title: p.Title, Body: pageWrite{Representation: "storage", Value: storage}}
	body.Version.Number, body.Version.Message = version, message
	_, err := c.c.Do(ctx, atlassian.Call{
		// A repeat fails the version check, so the call is idempotent.
		Op: "update page", Method: http.MethodPut, Idempotent: true,
		Path: "/api/v2/pages/" + url.PathEscape(p.ID), Body: body,
	})
	if atlassian.HasStatus(err, http.StatusConflict) {
		return fmt.Errorf("%w: %w", ErrVersionConflict, err)
	}
	return err
}
