package emulator

import (
	"net/url"
	"strings"
	"testing"
)

type spaceList struct {
	Results []struct {
		ID         string            `json:"id"`
		Key        string            `json:"key"`
		Name       string            `json:"name"`
		Type       string            `json:"type"`
		Status     string            `json:"status"`
		HomepageID string            `json:"homepageId"`
		Links      map[string]string `json:"_links"`
	} `json:"results"`
	Links map[string]string `json:"_links"`
}

type pageResp struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	Title      string  `json:"title"`
	SpaceID    string  `json:"spaceId"`
	ParentID   *string `json:"parentId"`
	ParentType *string `json:"parentType"`
	AuthorID   string  `json:"authorId"`
	CreatedAt  string  `json:"createdAt"`
	Version    struct {
		Number  int    `json:"number"`
		Message string `json:"message"`
	} `json:"version"`
	Body  map[string]bodyWire `json:"body"`
	Links map[string]string   `json:"_links"`
}

type pageList struct {
	Results []pageResp        `json:"results"`
	Links   map[string]string `json:"_links"`
}

func (env *testEnv) spaceID(key string) (id, homepage string) {
	env.t.Helper()
	var sl spaceList
	env.expect("GET", "/wiki/api/v2/spaces?keys="+key, nil, 200, &sl)
	if len(sl.Results) != 1 {
		env.t.Fatalf("space %s not found: %+v", key, sl)
	}
	return sl.Results[0].ID, sl.Results[0].HomepageID
}

func pageBody(spaceID, title, storage string) map[string]any {
	return map[string]any{
		"spaceId": spaceID, "status": "current", "title": title,
		"body": map[string]any{"representation": "storage", "value": storage},
	}
}

func (env *testEnv) createPage(spaceID, title, storage string) pageResp {
	env.t.Helper()
	var p pageResp
	env.expect("POST", "/wiki/api/v2/pages", pageBody(spaceID, title, storage), 200, &p)
	return p
}

func TestSpaces(t *testing.T) {
	env := newEnv(t, Options{Spaces: []string{"INCIDENTS", "ENG"}})
	var sl spaceList
	env.expect("GET", "/wiki/api/v2/spaces?keys=incidents", nil, 200, &sl)
	if len(sl.Results) != 1 {
		t.Fatalf("spaces = %+v", sl)
	}
	sp := sl.Results[0]
	if sp.Key != "INCIDENTS" || sp.Type != "global" || sp.Status != "current" || sp.HomepageID == "" ||
		sp.Links["webui"] != "/spaces/INCIDENTS" || sl.Links["base"] != env.srv.URL+"/wiki" {
		t.Errorf("space = %+v links %v", sp, sl.Links)
	}
	if _, err := url.Parse(sp.ID); err != nil || strings.Trim(sp.ID, "0123456789") != "" {
		t.Errorf("space id %q should be a numeric string", sp.ID)
	}
	env.expect("GET", "/wiki/api/v2/spaces?keys=INCIDENTS,eng", nil, 200, &sl)
	if len(sl.Results) != 2 {
		t.Errorf("two keys = %+v", sl.Results)
	}
	env.expect("GET", "/wiki/api/v2/spaces?keys=NOPE", nil, 200, &sl)
	if len(sl.Results) != 0 || sl.Results == nil {
		t.Errorf("unknown key should give results [] = %+v", sl)
	}
	var home pageResp
	env.expect("GET", "/wiki/api/v2/pages/"+sp.HomepageID, nil, 200, &home)
	if home.SpaceID != sp.ID {
		t.Errorf("homepage = %+v", home)
	}
}

func TestCreatePage(t *testing.T) {
	env := newEnv(t, Options{})
	spaceID, homeID := env.spaceID("INCIDENTS")
	storage := `<p>Rollback of <strong>payments-api</strong> &amp; friends&nbsp;</p>` +
		`<ac:structured-macro ac:name="jira" ac:schema-version="1"><ac:parameter ac:name="key">OPS-1</ac:parameter></ac:structured-macro>`
	p := env.createPage(spaceID, "Postmortem: payments-api rollback 2026-03-04 [rbk-7f3a9c]", storage)
	if p.ID == "" || p.Status != "current" || p.SpaceID != spaceID || p.ParentID == nil || *p.ParentID != homeID ||
		p.ParentType == nil || *p.ParentType != "page" || p.Version.Number != 1 || p.AuthorID == "" || p.CreatedAt == "" {
		t.Errorf("page = %+v", p)
	}
	if p.Body["storage"].Value != storage || p.Body["storage"].Representation != "storage" {
		t.Errorf("body = %+v", p.Body)
	}
	wantWebUI := "/spaces/INCIDENTS/pages/" + p.ID + "/Postmortem%3A+payments-api+rollback+2026-03-04+%5Brbk-7f3a9c%5D"
	if p.Links["webui"] != wantWebUI || p.Links["base"] != env.srv.URL+"/wiki" || p.Links["tinyui"] == "" || p.Links["editui"] == "" {
		t.Errorf("links = %v, want webui %s", p.Links, wantWebUI)
	}
	// The browser URL base+webui, which the client hands out, works.
	env.expect("GET", "/wiki"+p.Links["webui"], nil, 200, nil, noAuth())

	// Nested body form and root-level.
	nested := map[string]any{"spaceId": spaceID, "status": "current", "title": "Nested",
		"body": map[string]any{"storage": map[string]any{"representation": "storage", "value": "<p>x</p>"}}}
	var np pageResp
	env.expect("POST", "/wiki/api/v2/pages?root-level=true", nested, 200, &np)
	if np.Body["storage"].Value != "<p>x</p>" || np.ParentID != nil {
		t.Errorf("nested/root-level page = %+v", np)
	}
	// Child of an existing page.
	child := pageBody(spaceID, "Child", "<p>c</p>")
	child["parentId"] = p.ID
	var cp pageResp
	env.expect("POST", "/wiki/api/v2/pages", child, 200, &cp)
	if cp.ParentID == nil || *cp.ParentID != p.ID {
		t.Errorf("child parent = %v", cp.ParentID)
	}
	if n := len(env.em.Pages()); n != 4 {
		t.Errorf("Pages() = %d, want 4 (homepage + 3)", n)
	}
}

func TestCreatePageValidation(t *testing.T) {
	env := newEnv(t, Options{Spaces: []string{"INCIDENTS", "OTHER"}})
	spaceID, _ := env.spaceID("INCIDENTS")
	otherID, otherHome := env.spaceID("OTHER")
	existing := env.createPage(spaceID, "Postmortem: Payments", "<p>x</p>")
	archived := env.createPage(spaceID, "Old postmortem", "<p>x</p>")
	env.setPageStatus(archived.ID, "archived")
	trashed := env.createPage(spaceID, "Trashed postmortem", "<p>x</p>")
	env.setPageStatus(trashed.ID, "trashed")

	tests := []struct {
		name   string
		body   map[string]any
		query  string
		status int
		want   string
	}{
		{"duplicate title", pageBody(spaceID, "Postmortem: Payments", "<p>y</p>"), "", 400, msgDuplicateTitle},
		{"duplicate title case-insensitive", pageBody(spaceID, "POSTMORTEM: payments", "<p>y</p>"), "", 400, msgDuplicateTitle},
		{"archived reserves title", pageBody(spaceID, "old Postmortem", "<p>y</p>"), "", 400, msgDuplicateTitle},
		{"trashed frees title", pageBody(spaceID, "Trashed postmortem", "<p>y</p>"), "", 200, ""},
		{"same title other space", pageBody(otherID, "Postmortem: Payments", "<p>y</p>"), "", 200, ""},
		{"unknown space", pageBody("424242", "t", "<p>y</p>"), "", 404, ""},
		{"non-numeric space", pageBody("INCIDENTS", "t", "<p>y</p>"), "", 400, "spaceId"},
		{"missing space", map[string]any{"title": "t"}, "", 400, "spaceId"},
		{"missing title", pageBody(spaceID, "", "<p>y</p>"), "", 400, "Title"},
		{"long title", pageBody(spaceID, strings.Repeat("t", 256), "<p>y</p>"), "", 400, "255"},
		{"bad status", func() map[string]any { b := pageBody(spaceID, "s", "<p/>"); b["status"] = "archived"; return b }(), "", 400, "status"},
		{"parent in other space", func() map[string]any { b := pageBody(spaceID, "p1", "<p/>"); b["parentId"] = otherHome; return b }(), "", 400, "Parent"},
		{"unknown parent", func() map[string]any { b := pageBody(spaceID, "p2", "<p/>"); b["parentId"] = "999999"; return b }(), "", 400, "Parent"},
		{"root-level with parent", func() map[string]any { b := pageBody(spaceID, "p3", "<p/>"); b["parentId"] = existing.ID; return b }(), "?root-level=true", 400, "root-level"},
		{"malformed storage", pageBody(spaceID, "m1", "<p>unclosed <strong>bold</p>"), "", 400, "Error parsing xhtml: XML syntax error on line 1"},
		{"unknown entity", pageBody(spaceID, "m2", "<p>&bogus;</p>"), "", 400, "Error parsing xhtml"},
		{"bare ampersand", pageBody(spaceID, "m3", "<p>a & b</p>"), "", 400, "Error parsing xhtml"},
		{"stray close", pageBody(spaceID, "m4", "<p>a</p></root><p>b</p>"), "", 400, "Error parsing xhtml"},
		{"script", pageBody(spaceID, "s1", `<p>x</p><script>alert(1)</script>`), "", 400, "script elements are not allowed"},
		{"nested script", pageBody(spaceID, "s2", `<div><SCRIPT>alert(1)</SCRIPT></div>`), "", 400, "script elements are not allowed"},
		{"wiki representation", map[string]any{"spaceId": spaceID, "title": "w", "body": map[string]any{"representation": "wiki", "value": "h1. x"}}, "", 400, "storage"},
		{"draft without title", map[string]any{"spaceId": spaceID, "status": "draft", "body": map[string]any{"representation": "storage", "value": "<p/>"}}, "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var we wikiErr
			resp, data := env.do("POST", "/wiki/api/v2/pages"+tt.query, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, data)
			}
			if tt.status == 200 {
				return
			}
			if err := jsonUnmarshal(data, &we); err != nil || len(we.Errors) != 1 || we.Errors[0].Status != tt.status {
				t.Fatalf("error body = %s", data)
			}
			if !strings.Contains(we.Errors[0].Title, tt.want) {
				t.Errorf("title = %q, want it to contain %q", we.Errors[0].Title, tt.want)
			}
		})
	}
	// The exact duplicate body.
	_, data := env.do("POST", "/wiki/api/v2/pages", pageBody(spaceID, "postmortem: payments", "<p/>"))
	want := `{"errors":[{"status":400,"code":"INVALID_REQUEST_PARAMETER","title":"A page with this title already exists: A page already exists with the same TITLE in this space","detail":null}]}`
	if strings.TrimSpace(string(data)) != want {
		t.Errorf("duplicate body = %s\nwant %s", data, want)
	}
}

func TestFindPagesByTitle(t *testing.T) {
	env := newEnv(t, Options{Spaces: []string{"INCIDENTS", "OTHER"}})
	spaceID, _ := env.spaceID("INCIDENTS")
	otherID, _ := env.spaceID("OTHER")
	p := env.createPage(spaceID, "Postmortem: payments-api [rbk-1]", "<p>one</p>")
	env.createPage(spaceID, "Postmortem: payments-api [rbk-1] follow-up", "<p>two</p>")
	env.createPage(otherID, "Postmortem: payments-api [rbk-1]", "<p>three</p>")
	arch := env.createPage(spaceID, "Archived one", "<p/>")
	env.setPageStatus(arch.ID, "archived")

	q := url.Values{"space-id": {spaceID}, "title": {"postmortem: PAYMENTS-API [rbk-1]"}, "body-format": {"storage"}}
	var pl pageList
	env.expect("GET", "/wiki/api/v2/pages?"+q.Encode(), nil, 200, &pl)
	if len(pl.Results) != 1 || pl.Results[0].ID != p.ID || pl.Results[0].Body["storage"].Value != "<p>one</p>" {
		t.Fatalf("exact case-insensitive match = %+v", pl)
	}
	if pl.Links["base"] != env.srv.URL+"/wiki" || pl.Links["next"] != "" {
		t.Errorf("links = %v", pl.Links)
	}
	// Without body-format the body is empty.
	q.Del("body-format")
	pl = pageList{}
	env.expect("GET", "/wiki/api/v2/pages?"+q.Encode(), nil, 200, &pl)
	if len(pl.Results[0].Body) != 0 {
		t.Errorf("body without body-format = %v", pl.Results[0].Body)
	}
	// Status filter: default current+archived; explicit current excludes archived.
	env.expect("GET", "/wiki/api/v2/pages?space-id="+spaceID+"&title=archived+one", nil, 200, &pl)
	if len(pl.Results) != 1 {
		t.Errorf("default status should include archived: %+v", pl.Results)
	}
	env.expect("GET", "/wiki/api/v2/pages?space-id="+spaceID+"&title=archived+one&status=current", nil, 200, &pl)
	if len(pl.Results) != 0 {
		t.Errorf("status=current should exclude archived: %+v", pl.Results)
	}
	env.expect("GET", "/wiki/api/v2/pages?space-id="+spaceID+"&title=archived+one&status=current&status=archived", nil, 200, &pl)
	if len(pl.Results) != 1 {
		t.Errorf("repeated status: %+v", pl.Results)
	}
	env.expect("GET", "/wiki/api/v2/pages?status=draft", nil, 400, nil)
	env.expect("GET", "/wiki/api/v2/pages?space-id=abc", nil, 400, nil)
	env.expect("GET", "/wiki/api/v2/pages?limit=0", nil, 400, nil)
	// Space-scoped listing.
	env.expect("GET", "/wiki/api/v2/pages?space-id="+otherID+"&title="+url.QueryEscape("Postmortem: payments-api [rbk-1]"), nil, 200, &pl)
	if len(pl.Results) != 1 || pl.Results[0].SpaceID != otherID {
		t.Errorf("space pages = %+v", pl.Results)
	}
}

func TestPagesPaging(t *testing.T) {
	env := newEnv(t, Options{})
	spaceID, _ := env.spaceID("INCIDENTS")
	for i := range 5 {
		env.createPage(spaceID, "Page "+string(rune('A'+i)), "<p/>")
	}
	seen := map[string]bool{}
	next := "/wiki/api/v2/pages?space-id=" + spaceID + "&limit=2"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not terminate")
		}
		var pl pageList
		resp := env.expect("GET", next, nil, 200, &pl)
		for _, p := range pl.Results {
			if seen[p.ID] {
				t.Errorf("page %s returned twice", p.ID)
			}
			seen[p.ID] = true
		}
		next = pl.Links["next"]
		link := resp.Header.Get("Link")
		if (next == "") != (link == "") {
			t.Errorf("_links.next %q vs Link %q", next, link)
		}
		if next != "" && !strings.Contains(link, `<`+next+`>; rel="next"`) {
			t.Errorf("Link = %q", link)
		}
	}
	if len(seen) != 6 {
		t.Errorf("saw %d pages, want 6", len(seen))
	}
	env.expect("GET", "/wiki/api/v2/pages?cursor=garbage!", nil, 400, nil)
}

func TestUpdatePage(t *testing.T) {
	env := newEnv(t, Options{})
	spaceID, _ := env.spaceID("INCIDENTS")
	p := env.createPage(spaceID, "Postmortem", "<p>v1</p>")
	env.createPage(spaceID, "Another", "<p/>")
	update := func(version int, title, body string) map[string]any {
		return map[string]any{"id": p.ID, "status": "current", "title": title,
			"body":    map[string]any{"representation": "storage", "value": body},
			"version": map[string]any{"number": version, "message": "refresh"}}
	}
	var up pageResp
	env.expect("PUT", "/wiki/api/v2/pages/"+p.ID, update(2, "Postmortem (updated)", "<p>v2</p>"), 200, &up)
	if up.Version.Number != 2 || up.Title != "Postmortem (updated)" || up.Body["storage"].Value != "<p>v2</p>" || up.Version.Message != "refresh" {
		t.Errorf("updated = %+v", up)
	}

	var we wikiErr
	for _, v := range []int{1, 2, 4} {
		env.expect("PUT", "/wiki/api/v2/pages/"+p.ID, update(v, "Postmortem", "<p>v3</p>"), 409, &we)
		if we.Errors[0].Status != 409 || !strings.Contains(we.Errors[0].Title, "Current version is: 2") {
			t.Errorf("version %d conflict = %+v", v, we)
		}
	}
	env.expect("PUT", "/wiki/api/v2/pages/"+p.ID, update(3, "another", "<p>v3</p>"), 400, &we)
	if we.Errors[0].Title != msgDuplicateTitle {
		t.Errorf("title clash = %+v", we)
	}
	// Keeping its own title (any case) is fine.
	env.expect("PUT", "/wiki/api/v2/pages/"+p.ID, update(3, "POSTMORTEM (UPDATED)", "<p>v3</p>"), 200, nil)
	env.expect("PUT", "/wiki/api/v2/pages/"+p.ID, update(4, "x", "<p>broken"), 400, nil)
	env.expect("PUT", "/wiki/api/v2/pages/999999", map[string]any{"id": "999999", "status": "current", "title": "x",
		"body": map[string]any{"representation": "storage", "value": "<p/>"}, "version": map[string]any{"number": 2}}, 404, nil)
	mismatch := update(4, "x", "<p/>")
	mismatch["id"] = "1"
	env.expect("PUT", "/wiki/api/v2/pages/"+p.ID, mismatch, 400, nil)
	noVersion := update(4, "x", "<p/>")
	delete(noVersion, "version")
	env.expect("PUT", "/wiki/api/v2/pages/"+p.ID, noVersion, 400, nil)

	var got pageResp
	env.expect("GET", "/wiki/api/v2/pages/"+p.ID+"?body-format=storage", nil, 200, &got)
	if got.Version.Number != 3 || got.Body["storage"].Value != "<p>v3</p>" {
		t.Errorf("GET after updates = %+v", got)
	}
	env.expect("GET", "/wiki/api/v2/pages/"+p.ID+"?body-format=view", nil, 200, &got)
	if got.Body["view"].Value != "<p>v3</p>" {
		t.Errorf("view body = %+v", got.Body)
	}
	env.expect("GET", "/wiki/api/v2/pages/999999", nil, 404, &we)
	if we.Errors[0].Code != "NOT_FOUND" {
		t.Errorf("404 = %+v", we)
	}
}
