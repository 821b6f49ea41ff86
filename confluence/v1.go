package confluence

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"function/atlassian"
)

// V1 is a client of the Confluence v1 content API, the only API of
// Confluence Data Center (also served, deprecated, by Cloud). It offers the
// same methods as Client, so the opening steps do not care which one they
// talk to. Spaces are addressed by key: SpaceID returns the key.
type V1 struct {
	c       *atlassian.Client
	baseURL string // e.g. https://confluence.example.com (no /wiki on Data Center)
}

// NewV1 returns a v1 client; baseURL is the Confluence base URL.
func NewV1(baseURL string, c *atlassian.Client) *V1 {
	return &V1{c: c, baseURL: strings.TrimRight(baseURL, "/")}
}

type v1Space struct {
	Key string `json:"key"`
}

// SpaceID checks that the space exists and returns its key, which is what
// the v1 API addresses spaces by.
func (v *V1) SpaceID(ctx context.Context, key string) (string, error) {
	var out v1Space
	_, err := v.c.Do(ctx, atlassian.Call{
		Op: "resolve space", Method: http.MethodGet, Path: "/rest/api/space/" + url.PathEscape(key), Result: &out, Idempotent: true,
	})
	if atlassian.HasStatus(err, http.StatusNotFound) {
		return "", fmt.Errorf("%w: %s", ErrSpaceNotFound, key)
	}
	if err != nil {
		return "", err
	}
	return cmp.Or(out.Key, key), nil
}

type v1Content struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Space struct {
		Key string `json:"key"`
	} `json:"space"`
	Version struct {
		Number int `json:"number"`
	} `json:"version"`
	Body struct {
		Storage struct {
			Value string `json:"value"`
		} `json:"storage"`
	} `json:"body"`
	Links struct {
		WebUI string `json:"webui"`
		Base  string `json:"base"`
	} `json:"_links"`
}

func (v *V1) stored(c v1Content, base string) Stored {
	return Stored{
		Page:     Page{ID: c.ID, Title: c.Title, Version: c.Version.Number, URL: cmp.Or(c.Links.Base, base, v.baseURL) + c.Links.WebUI},
		Storage:  c.Body.Storage.Value,
		spaceKey: c.Space.Key,
	}
}

type v1Create struct {
	Type      string     `json:"type"`
	Title     string     `json:"title"`
	Space     *v1Space   `json:"space,omitempty"`
	Status    string     `json:"status"`
	Ancestors []v1ID     `json:"ancestors,omitempty"`
	Body      v1Body     `json:"body"`
	Version   *v1Version `json:"version,omitempty"`
	ID        string     `json:"id,omitempty"`
}

type v1ID struct {
	ID string `json:"id"`
}

type v1Body struct {
	Storage pageWrite `json:"storage"`
}

type v1Version struct {
	Number  int    `json:"number"`
	Message string `json:"message,omitempty"`
}

// CreatePage creates a page; n.SpaceID is the space key. It returns
// ErrDuplicateTitle when the title is taken in the space.
func (v *V1) CreatePage(ctx context.Context, n NewPage) (Page, error) {
	body := v1Create{Type: "page", Title: n.Title, Space: &v1Space{Key: n.SpaceID}, Status: "current",
		Body: v1Body{Storage: pageWrite{Representation: "storage", Value: n.Storage}}}
	if n.ParentID != "" {
		body.Ancestors = []v1ID{{ID: n.ParentID}}
	}
	var out v1Content
	_, err := v.c.Do(ctx, atlassian.Call{
		// A repeat hits the duplicate-title 400, so the call is idempotent.
		Op: "create page", Method: http.MethodPost, Path: "/rest/api/content", Body: body, Result: &out, Idempotent: true,
	})
	if err != nil {
		if ae, ok := atlassian.AsError(err); ok && ae.Status == http.StatusBadRequest &&
			strings.Contains(strings.ToLower(ae.Detail), "a page with this title already exists") {
			return Page{}, fmt.Errorf("%w: %w", ErrDuplicateTitle, err)
		}
		return Page{}, err
	}
	return v.stored(out, "").Page, nil
}

type v1Results struct {
	Results []v1Content `json:"results"`
	Links   struct {
		Base string `json:"base"`
	} `json:"_links"`
}

// FindByTitle finds the current page with exactly this title in the space
// (key).
func (v *V1) FindByTitle(ctx context.Context, spaceKey, title string) (Page, bool, error) {
	var out v1Results
	if _, err := v.c.Do(ctx, atlassian.Call{
		Op: "find page", Method: http.MethodGet, Path: "/rest/api/content", Idempotent: true, Result: &out,
		// The v1 status filter of Data Center knows current, trashed,
		// deleted, historical, draft and any; "archived" is a 400 there.
		// Current pages are the ones that hold a title (the v2 client also
		// looks for Cloud's archived pages).
		Query: url.Values{"type": {"page"}, "spaceKey": {spaceKey}, "title": {title}, "status": {"current"}, "expand": {"version"}},
	}); err != nil {
		return Page{}, false, err
	}
	for _, c := range out.Results {
		if strings.EqualFold(c.Title, title) {
			return v.stored(c, out.Links.Base).Page, true, nil
		}
	}
	return Page{}, false, nil
}

// GetPage reads a page with its storage body, version and space.
func (v *V1) GetPage(ctx context.Context, id string) (Stored, error) {
	var out v1Content
	if _, err := v.c.Do(ctx, atlassian.Call{
		Op: "read page", Method: http.MethodGet, Path: "/rest/api/content/" + url.PathEscape(id), Idempotent: true,
		Query: url.Values{"expand": {"body.storage,version,space"}}, Result: &out,
	}); err != nil {
		return Stored{}, err
	}
	return v.stored(out, ""), nil
}

// UpdatePage replaces the page's body; version must be the read version + 1.
// The update names the space GetPage read (Confluence compares it with
// the page's exactly and answers 400 "You can't change an existing page's
// space" to any other, an empty key included), or none when p did not
// come from GetPage, which the API allows.
func (v *V1) UpdatePage(ctx context.Context, p Stored, storage string, version int, message string) error {
	body := v1Create{ID: p.ID, Type: "page", Title: p.Title, Status: "current",
		Body: v1Body{Storage: pageWrite{Representation: "storage", Value: storage}}, Version: &v1Version{Number: version, Message: message}}
	if p.spaceKey != "" {
		body.Space = &v1Space{Key: p.spaceKey}
	}
	_, err := v.c.Do(ctx, atlassian.Call{
		// A repeat fails the version check, so the call is idempotent.
		Op: "update page", Method: http.MethodPut, Path: "/rest/api/content/" + url.PathEscape(p.ID), Body: body, Idempotent: true,
	})
	if atlassian.HasStatus(err, http.StatusConflict) {
		return fmt.Errorf("%w: %w", ErrVersionConflict, err)
	}
	return err
}
