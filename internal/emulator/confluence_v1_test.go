package emulator

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

type v1Content struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
	Title  string `json:"title"`
	Space  *struct {
		ID   int64  `json:"id"`
		Key  string `json:"key"`
		Name string `json:"name"`
	} `json:"space"`
	Version *struct {
		Number  int    `json:"number"`
		Message string `json:"message"`
	} `json:"version"`
	Ancestors []struct {
		ID string `json:"id"`
	} `json:"ancestors"`
	Body *struct {
		Storage *struct {
			Value          string `json:"value"`
			Representation string `json:"representation"`
		} `json:"storage"`
	} `json:"body"`
	Links      map[string]string `json:"_links"`
	Expandable map[string]string `json:"_expandable"`
}

type v1List struct {
	Results []v1Content       `json:"results"`
	Start   int               `json:"start"`
	Limit   int               `json:"limit"`
	Size    int               `json:"size"`
	Links   map[string]string `json:"_links"`
}

type v1Err struct {
	StatusCode int `json:"statusCode"`
	Data       struct {
		Authorized bool  `json:"authorized"`
		Valid      bool  `json:"valid"`
		Errors     []any `json:"errors"`
		Successful bool  `json:"successful"`
	} `json:"data"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

func v1PageBody(title, storage string, parent string) map[string]any {
	b := map[string]any{
		"type": "page", "title": title, "space": map[string]any{"key": "INCIDENTS"}, "status": "current",
		"body": map[string]any{"storage": map[string]any{"value": storage, "representation": "storage"}},
	}
	if parent != "" {
		b["ancestors"] = []any{map[string]any{"id": parent}}
	}
	return b
}

// v1Sites are the Cloud site path and the Data Center path, with what
// their links look like.
var v1Sites = []struct {
	name, prefix, context, webuiPrefix string
	dc                                 bool
}{
	{"cloud", "/wiki/rest/api", "/wiki", "/spaces/INCIDENTS/pages/", false},
	{"dc", "/rest/api", "", "/display/INCIDENTS/", true},
}

func TestV1CreateAndFind(t *testing.T) {
	for _, site := range v1Sites {
		t.Run(site.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			_, home := env.spaceID("INCIDENTS")
			var c v1Content
			env.expect("POST", site.prefix+"/content", v1PageBody("Postmortem rbk-1", "<p>Hello</p>", home), 200, &c)
			if c.ID == "" || c.Type != "page" || c.Status != "current" || c.Title != "Postmortem rbk-1" ||
				c.Space == nil || c.Space.Key != "INCIDENTS" || c.Space.Name == "" || c.Space.ID == 0 ||
				c.Version == nil || c.Version.Number != 1 ||
				c.Body == nil || c.Body.Storage == nil || c.Body.Storage.Value != "<p>Hello</p>" || c.Body.Storage.Representation != "storage" ||
				len(c.Ancestors) != 1 || c.Ancestors[0].ID != home {
				t.Fatalf("created = %+v", c)
			}
			base := env.srv.URL + site.context
			if c.Links["base"] != base || c.Links["context"] != site.context ||
				c.Links["self"] != env.srv.URL+site.prefix+"/content/"+c.ID ||
				!strings.HasPrefix(c.Links["webui"], site.webuiPrefix) || !strings.HasPrefix(c.Links["tinyui"], "/x/") {
				t.Errorf("_links = %v", c.Links)
			}

			// base + webui, which the client hands out, is served by the
			// HTML view.
			resp, data := env.do("GET", strings.TrimPrefix(c.Links["base"]+c.Links["webui"], env.srv.URL), nil, noAuth())
			if resp.StatusCode != 200 || !strings.Contains(string(data), "Hello") {
				t.Errorf("GET base+webui (%s) = %d", c.Links["webui"], resp.StatusCode)
			}

			// The page is visible over v2 (shared state).
			spaceID, _ := env.spaceID("INCIDENTS")
			var pl pageList
			env.expect("GET", "/wiki/api/v2/pages?space-id="+spaceID+"&title="+url.QueryEscape("postmortem RBK-1"), nil, 200, &pl)
			if len(pl.Results) != 1 || pl.Results[0].ID != c.ID || pl.Results[0].ParentID == nil || *pl.Results[0].ParentID != home {
				t.Errorf("v2 lookup = %+v", pl)
			}

			// Find by title over v1, case-insensitively, with expansions.
			var found v1List
			env.expect("GET", site.prefix+"/content?type=page&spaceKey=INCIDENTS&title="+url.QueryEscape("POSTMORTEM rbk-1")+"&expand=version,body.storage", nil, 200, &found)
			if found.Size != 1 || len(found.Results) != 1 || found.Results[0].ID != c.ID || found.Results[0].Version == nil ||
				found.Results[0].Body == nil || found.Results[0].Body.Storage == nil || found.Results[0].Space != nil ||
				found.Start != 0 || found.Limit != 25 || found.Links["base"] != base {
				t.Errorf("find by title = %+v", found)
			}
			env.expect("GET", site.prefix+"/content?spaceKey=INCIDENTS&title=nope", nil, 200, &found)
			if found.Size != 0 || found.Results == nil {
				t.Errorf("no match = %+v", found)
			}

			// A page created over v2 is visible over v1.
			v2 := env.createPage(spaceID, "Created over v2", "<p>v2</p>")
			var got v1Content
			env.expect("GET", site.prefix+"/content/"+v2.ID+"?expand=body.storage,version", nil, 200, &got)
			if got.Title != "Created over v2" || got.Body.Storage.Value != "<p>v2</p>" || got.Version.Number != 1 || got.Space != nil {
				t.Errorf("v1 GET of a v2 page = %+v", got)
			}
			// Default expansions: space, history, version.
			got = v1Content{}
			env.expect("GET", site.prefix+"/content/"+v2.ID, nil, 200, &got)
			if got.Space == nil || got.Version == nil || got.Body != nil || got.Expandable["body"] != "" {
				t.Errorf("default expansions = %+v", got)
			}
		})
	}
}

func TestV1CreateErrors(t *testing.T) {
	for _, site := range v1Sites {
		t.Run(site.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			env.expect("POST", site.prefix+"/content", v1PageBody("Postmortem", "<p>x</p>", ""), 200, nil)
			dupMsg := "com.atlassian.confluence.api.service.exceptions.api.BadRequestException: " + msgDuplicateTitle
			if site.dc {
				dupMsg = "com.atlassian.confluence.api.service.exceptions.api.BadRequestException: A page with this title already exists: A page already exists with the title postmortem in the space with key INCIDENTS"
			}
			noSpace := v1PageBody("x", "<p>x</p>", "")
			delete(noSpace, "space")
			noType := v1PageBody("x", "<p>x</p>", "")
			delete(noType, "type")
			tests := []struct {
				name   string
				body   any
				status int
				msg    string // exact when it starts with com., else a substring
			}{
				{"duplicate title, other case", v1PageBody("postmortem", "<p>y</p>", ""), 400, dupMsg},
				{"malformed storage", v1PageBody("Other", "<p>unclosed", ""), 400, "Error parsing xhtml"},
				{"script", v1PageBody("Other", "<script>alert(1)</script>", ""), 400, "script elements are not allowed"},
				{"no space", noSpace, 400, "Space key must be specified"},
				{"no type", noType, 400, "Content type must be specified"},
				{"unknown space", func() any { b := v1PageBody("x", "", ""); b["space"] = map[string]any{"key": "NOPE"}; return b }(), 403, "NOPE"},
				{"bad parent", v1PageBody("Other", "<p>x</p>", "999999"), 404, "999999"},
				{"two ancestors", func() any {
					b := v1PageBody("Other", "", "")
					b["ancestors"] = []any{map[string]any{"id": "1"}, map[string]any{"id": "2"}}
					return b
				}(), 400, "Only one ancestor"},
				{"wiki body", func() any {
					b := v1PageBody("Other", "", "")
					b["body"] = map[string]any{"wiki": map[string]any{"value": "h1. x", "representation": "wiki"}}
					return b
				}(), 400, "body.wiki"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, data := env.do("POST", site.prefix+"/content", tt.body)
					if resp.StatusCode != tt.status {
						t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, data)
					}
					var e v1Err
					if err := json.Unmarshal(data, &e); err != nil || e.StatusCode != tt.status || e.Reason == "" || e.Data.Errors == nil {
						t.Fatalf("v1 error body = %s", data)
					}
					if strings.HasPrefix(tt.msg, "com.") {
						if e.Message != tt.msg {
							t.Errorf("message = %q\nwant      %q", e.Message, tt.msg)
						}
					} else if !strings.Contains(e.Message, tt.msg) {
						t.Errorf("message = %q, want it to contain %q", e.Message, tt.msg)
					}
				})
			}
			// The exact duplicate-title body.
			_, data := env.do("POST", site.prefix+"/content", v1PageBody("postmortem", "<p>y</p>", ""))
			want := `{"statusCode":400,"data":{"authorized":true,"valid":true,"errors":[],"successful":false},"message":` +
				string(mustJSON(t, dupMsg)) + `,"reason":"Bad Request"}`
			if strings.TrimSpace(string(data)) != want {
				t.Errorf("duplicate body = %s\nwant %s", data, want)
			}
			// A trashed page frees its title, as on v2.
			var c v1Content
			env.expect("POST", site.prefix+"/content", v1PageBody("Trashed later", "", ""), 200, &c)
			env.setPageStatus(c.ID, "trashed")
			env.expect("POST", site.prefix+"/content", v1PageBody("Trashed later", "", ""), 200, nil)
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestV1Update(t *testing.T) {
	for _, site := range v1Sites {
		t.Run(site.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			var c v1Content
			env.expect("POST", site.prefix+"/content", v1PageBody("Postmortem", "<p>v1</p>", ""), 200, &c)
			env.expect("POST", site.prefix+"/content", v1PageBody("Taken", "<p>x</p>", ""), 200, nil)
			update := func(version int, title, body string) map[string]any {
				u := map[string]any{"id": c.ID, "type": "page", "title": title, "version": map[string]any{"number": version}}
				if body != "" {
					u["body"] = map[string]any{"storage": map[string]any{"value": body, "representation": "storage"}}
				}
				return u
			}
			tests := []struct {
				name   string
				body   any
				status int
				msg    string
			}{
				{"stale version", update(1, "Postmortem", "<p>v2</p>"), 409,
					"com.atlassian.confluence.api.service.exceptions.api.ConflictException: Version must be incremented on update. Current version is: 1"},
				{"skipped version", update(3, "Postmortem", "<p>v2</p>"), 409, "Current version is: 1"},
				{"no version", map[string]any{"type": "page", "title": "Postmortem"}, 400, "No version supplied"},
				{"title taken", update(2, "TAKEN", "<p>v2</p>"), 400, "A page with this title already exists"},
				{"bad storage", update(2, "Postmortem", "<p>"), 400, "Error parsing xhtml"},
				{"ok", update(2, "Postmortem (updated)", "<p>v2</p>"), 200, ""},
				{"again with the old version", update(2, "Postmortem", "<p>v3</p>"), 409, "Current version is: 2"},
				{"title only keeps the body", update(3, "Postmortem final", ""), 200, ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, data := env.do("PUT", site.prefix+"/content/"+c.ID, tt.body)
					if resp.StatusCode != tt.status {
						t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, data)
					}
					if tt.msg != "" {
						var e v1Err
						_ = json.Unmarshal(data, &e)
						if !strings.Contains(e.Message, tt.msg) || e.StatusCode != tt.status {
							t.Errorf("error = %s, want %q", data, tt.msg)
						}
					}
				})
			}
			pages := env.em.Pages()
			var p Page
			for _, x := range pages {
				if x.ID == c.ID {
					p = x
				}
			}
			if p.Version != 3 || p.Title != "Postmortem final" || p.Body != "<p>v2</p>" {
				t.Errorf("page = %+v", p)
			}
			missing := update(2, "x", "<p>x</p>")
			delete(missing, "id")
			env.expect("PUT", site.prefix+"/content/999999", missing, 404, nil)
			env.expect("PUT", site.prefix+"/content/999999", update(2, "x", "<p>x</p>"), 400, nil) // id mismatch
			var e v1Err
			env.expect("GET", site.prefix+"/content/999999", nil, 404, &e)
			if e.Message != "com.atlassian.confluence.api.service.exceptions.api.NotFoundException: No content found with id: ContentId{id=999999}" || e.Data.Authorized {
				t.Errorf("404 = %+v", e)
			}
		})
	}
}

func TestV1Space(t *testing.T) {
	env := newEnv(t, Options{Spaces: []string{"INCIDENTS"}})
	var sp struct {
		ID    int64             `json:"id"`
		Key   string            `json:"key"`
		Name  string            `json:"name"`
		Type  string            `json:"type"`
		Links map[string]string `json:"_links"`
	}
	env.expect("GET", "/rest/api/space/incidents", nil, 200, &sp)
	id, _ := env.spaceID("INCIDENTS")
	if sp.Key != "INCIDENTS" || sp.Name == "" || sp.Type != "global" || id != strconv.FormatInt(sp.ID, 10) ||
		sp.Links["base"] != env.srv.URL || sp.Links["webui"] != "/display/INCIDENTS" {
		t.Errorf("DC space = %+v", sp)
	}
	env.expect("GET", "/wiki/rest/api/space/INCIDENTS", nil, 200, &sp)
	if sp.Links["base"] != env.srv.URL+"/wiki" || sp.Links["webui"] != "/spaces/INCIDENTS" {
		t.Errorf("Cloud space = %+v", sp)
	}
	var e v1Err
	env.expect("GET", "/rest/api/space/NOPE", nil, 404, &e)
	if e.Message != "com.atlassian.confluence.api.service.exceptions.api.NotFoundException: No space with key : NOPE" || e.StatusCode != 404 {
		t.Errorf("404 = %+v", e)
	}
	// The space web UI links are served too.
	for _, path := range []string{"/display/INCIDENTS", "/wiki/spaces/INCIDENTS"} {
		resp, _ := env.do("GET", path, nil, noAuth())
		for resp.StatusCode == 302 {
			resp, _ = env.do("GET", resp.Header.Get("Location"), nil, noAuth())
		}
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
	}
}

func TestV1ListPaging(t *testing.T) {
	env := newEnv(t, Options{})
	for _, title := range []string{"a", "b", "c"} {
		env.expect("POST", "/rest/api/content", v1PageBody(title, "", ""), 200, nil)
	}
	var l v1List
	// The homepage plus three pages.
	env.expect("GET", "/rest/api/content?spaceKey=INCIDENTS&limit=3", nil, 200, &l)
	if l.Size != 3 || l.Limit != 3 || !strings.HasPrefix(l.Links["next"], "/rest/api/content?") {
		t.Fatalf("first page = %+v", l)
	}
	next := l.Links["next"]
	l = v1List{}
	env.expect("GET", next, nil, 200, &l)
	if l.Size != 1 || l.Start != 3 || l.Links["next"] != "" {
		t.Errorf("second page = %+v", l)
	}
	l = v1List{}
	env.expect("GET", "/rest/api/content?spaceKey=INCIDENTS&type=blogpost", nil, 200, &l)
	if l.Size != 0 {
		t.Errorf("blogposts = %+v", l)
	}
	env.expect("GET", "/rest/api/content?limit=x", nil, 400, nil)
}

func TestV1DCWebUI(t *testing.T) {
	env := newEnv(t, Options{})
	tests := []struct {
		title, webui string
	}{
		{"Postmortem payments-api 2026-03-04", "/display/INCIDENTS/Postmortem+payments-api+2026-03-04"},
		{"Rollback: v1.42 -> v1.41?", "/pages/viewpage.action?pageId="},
		{"Café", "/pages/viewpage.action?pageId="},
	}
	for _, tt := range tests {
		var c v1Content
		env.expect("POST", "/rest/api/content", v1PageBody(tt.title, "<p>"+tt.title+"</p>", ""), 200, &c)
		if !strings.HasPrefix(c.Links["webui"], tt.webui) {
			t.Errorf("%q: webui = %s, want prefix %s", tt.title, c.Links["webui"], tt.webui)
		}
		resp, data := env.do("GET", c.Links["webui"], nil, noAuth())
		if resp.StatusCode != 200 || !strings.Contains(string(data), "<h1>") {
			t.Errorf("GET %s = %d", c.Links["webui"], resp.StatusCode)
		}
	}
	for _, path := range []string{"/display/INCIDENTS/No+such+page", "/pages/viewpage.action?pageId=1", "/display/NOPE/x"} {
		resp, _ := env.do("GET", path, nil, noAuth())
		if resp.StatusCode != 404 {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}

// TestV1UpdateSpaceAndTitle checks the page validator's rules for an
// update: the space may be left out or be the page's own (compared
// exactly), and the title is required, with Confluence's validation error
// body listing every broken rule.
func TestV1UpdateSpaceAndTitle(t *testing.T) {
	for _, site := range v1Sites {
		t.Run(site.name, func(t *testing.T) {
			env := newEnv(t, Options{Spaces: []string{"INCIDENTS", "OTHER"}})
			var c v1Content
			env.expect("POST", site.prefix+"/content", v1PageBody("Postmortem", "<p>v1</p>", ""), 200, &c)
			update := func(version int, title string, space any) map[string]any {
				u := map[string]any{"id": c.ID, "type": "page", "title": title, "version": map[string]any{"number": version},
					"body": map[string]any{"storage": map[string]any{"value": "<p>v" + strconv.Itoa(version) + "</p>", "representation": "storage"}}}
				if space != nil {
					u["space"] = space
				}
				return u
			}
			const spaceMsg = "You can't change an existing page's space."
			const titleMsg = "You need to include the title to update a page."
			rejected := []struct {
				name string
				body map[string]any
				want []string
			}{
				{"empty space key", update(2, "Postmortem", map[string]any{"key": ""}), []string{spaceMsg}},
				{"another space", update(2, "Postmortem", map[string]any{"key": "OTHER"}), []string{spaceMsg}},
				{"key in another case", update(2, "Postmortem", map[string]any{"key": "incidents"}), []string{spaceMsg}},
				{"space without key", update(2, "Postmortem", map[string]any{}), []string{spaceMsg}},
				{"no title", update(2, " ", nil), []string{titleMsg}},
				{"both", update(2, "", map[string]any{"key": ""}), []string{spaceMsg, titleMsg}},
			}
			for _, tt := range rejected {
				t.Run(tt.name, func(t *testing.T) {
					var e struct {
						StatusCode int `json:"statusCode"`
						Data       struct {
							Authorized bool `json:"authorized"`
							Valid      bool `json:"valid"`
							Errors     []struct {
								Message struct {
									Key  string `json:"key"`
									Args []any  `json:"args"`
								} `json:"message"`
							} `json:"errors"`
						} `json:"data"`
						Message string `json:"message"`
						Reason  string `json:"reason"`
					}
					env.expect("PUT", site.prefix+"/content/"+c.ID, tt.body, 400, &e)
					var got []string
					for _, x := range e.Data.Errors {
						if x.Message.Args == nil {
							t.Errorf("error %q has no args list", x.Message.Key)
						}
						got = append(got, x.Message.Key)
					}
					if strings.Join(got, "|") != strings.Join(tt.want, "|") || e.StatusCode != 400 || e.Reason != "Bad Request" ||
						!e.Data.Authorized || e.Data.Valid || !strings.HasPrefix(e.Message, v1BadRequest) {
						t.Errorf("error = %+v, want errors %q", e, tt.want)
					}
				})
			}
			for _, p := range env.em.Pages() {
				if p.ID == c.ID && (p.Version != 1 || p.Body != "<p>v1</p>") {
					t.Fatalf("a rejected update changed the page: %+v", p)
				}
			}
			env.expect("PUT", site.prefix+"/content/"+c.ID, update(2, "Postmortem", map[string]any{"key": "INCIDENTS"}), 200, nil)
			env.expect("PUT", site.prefix+"/content/"+c.ID, update(3, "Postmortem", nil), 200, nil)
			for _, p := range env.em.Pages() {
				if p.ID == c.ID && (p.Version != 3 || p.Body != "<p>v3</p>") {
					t.Errorf("after the updates: %+v", p)
				}
			}
		})
	}
}

// TestV1StatusFilter checks the status values of GET …/content: Data
// Center has no archived status (400) and its "any" is current and
// trashed; Cloud archives pages.
func TestV1StatusFilter(t *testing.T) {
	for _, site := range v1Sites {
		t.Run(site.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			ids := map[string]string{}
			for _, st := range []string{"current", "archived", "trashed"} {
				var c v1Content
				env.expect("POST", site.prefix+"/content", v1PageBody("Page "+st, "<p/>", ""), 200, &c)
				if st != "current" {
					env.setPageStatus(c.ID, st)
				}
				ids[c.ID] = st
			}
			list := func(status ...string) (int, []string) {
				t.Helper()
				q := url.Values{"spaceKey": {"INCIDENTS"}, "type": {"page"}, "status": status}
				resp, data := env.do("GET", site.prefix+"/content?"+q.Encode(), nil)
				if resp.StatusCode != 200 {
					var e v1Err
					if err := json.Unmarshal(data, &e); err != nil || e.StatusCode != resp.StatusCode ||
						!strings.Contains(e.Message, "Unsupported content status: "+status[len(status)-1]) {
						t.Errorf("status %v: error body %s", status, data)
					}
					return resp.StatusCode, nil
				}
				var l v1List
				if err := json.Unmarshal(data, &l); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range l.Results {
					if st, ok := ids[r.ID]; ok {
						got = append(got, st)
					}
				}
				return 200, got
			}
			check := func(wantStatus int, want string, status ...string) {
				t.Helper()
				code, got := list(status...)
				if code != wantStatus || strings.Join(got, ",") != want {
					t.Errorf("status=%v: %d %v, want %d %q", status, code, got, wantStatus, want)
				}
			}
			check(200, "current", "current")
			check(200, "", "deleted", "historical")
			check(200, "trashed", "trashed")
			if site.dc {
				check(400, "", "current", "archived")
				check(400, "", "archived")
				check(200, "current,trashed", "any")
			} else {
				check(200, "current,archived", "current", "archived")
				check(200, "current,archived,trashed", "any")
			}
			check(400, "", "bogus")
		})
	}
}
