package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testEnv is an emulator behind an httptest.Server.
type testEnv struct {
	t   *testing.T
	em  *Emulator
	srv *httptest.Server
}

func newEnv(t *testing.T, opts Options) *testEnv {
	t.Helper()
	em := New(opts)
	srv := httptest.NewServer(em)
	t.Cleanup(srv.Close)
	em.SetBaseURL(srv.URL)
	return &testEnv{t: t, em: em, srv: srv}
}

// setPageStatus archives or trashes a page (or makes it a draft or
// current again). No client archives or deletes pages, so the emulator
// has no API for it; the tests of what such pages do (titles they
// reserve, the status filters) set the status directly.
func (env *testEnv) setPageStatus(id, status string) {
	env.t.Helper()
	env.em.mu.Lock()
	defer env.em.mu.Unlock()
	p, ok := env.em.st.pageByID[id]
	if !ok {
		env.t.Fatalf("no page with id %q", id)
	}
	p.status = status
}

// get sends an authenticated GET for path straight to em's handler,
// without a network: inside a synctest bubble the call then runs on the
// bubble's clock, and synctest.Wait can tell when it is held.
func get(ctx context.Context, em *Emulator, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	req.SetBasicAuth(DefaultEmail, DefaultAPIToken)
	rec := httptest.NewRecorder()
	em.ServeHTTP(rec, req)
	return rec
}

type reqOpt func(*http.Request)

func noAuth() reqOpt { return func(r *http.Request) { r.Header.Del("Authorization") } }

func withAuth(user, pass string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// do sends an authenticated request; body may be nil, a string (sent
// verbatim) or a value encoded as JSON.
func (env *testEnv) do(method, path string, body any, opts ...reqOpt) (*http.Response, []byte) {
	env.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			env.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, env.srv.URL+path, rd)
	if err != nil {
		env.t.Fatal(err)
	}
	req.SetBasicAuth(DefaultEmail, DefaultAPIToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		env.t.Fatal(err)
	}
	return resp, data
}

// expect asserts the status code and decodes the body into out (if not nil).
func (env *testEnv) expect(method, path string, body any, status int, out any, opts ...reqOpt) *http.Response {
	env.t.Helper()
	resp, data := env.do(method, path, body, opts...)
	if resp.StatusCode != status {
		env.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, resp.StatusCode, status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			env.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return resp
}

func adfDoc(text string) map[string]any {
	return map[string]any{"type": "doc", "version": 1, "content": []any{
		map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": text}}},
	}}
}

func issueBody(summary string, labels ...string) map[string]any {
	fields := map[string]any{
		"project":   map[string]any{"key": "OPS"},
		"issuetype": map[string]any{"name": "Incident"},
		"summary":   summary,
	}
	if labels != nil {
		fields["labels"] = labels
	}
	return map[string]any{"fields": fields}
}

type created struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Self string `json:"self"`
}

func (env *testEnv) createIssue(summary string, labels ...string) created {
	env.t.Helper()
	var c created
	env.expect("POST", "/rest/api/3/issue", issueBody(summary, labels...), http.StatusCreated, &c)
	return c
}

type jiraErr struct {
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
}

type wikiErr struct {
	Errors []struct {
		Status int     `json:"status"`
		Code   string  `json:"code"`
		Title  string  `json:"title"`
		Detail *string `json:"detail"`
	} `json:"errors"`
}

func TestAuth(t *testing.T) {
	env := newEnv(t, Options{})
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		opt    reqOpt
		want   int
	}{
		{"jira no auth", "GET", "/rest/api/3/myself", nil, noAuth(), 401},
		{"jira wrong token", "GET", "/rest/api/3/myself", nil, withAuth(DefaultEmail, "nope"), 401},
		{"jira wrong email", "GET", "/rest/api/3/myself", nil, withAuth("x@example.com", DefaultAPIToken), 401},
		{"jira bearer", "GET", "/rest/api/3/myself", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+DefaultAPIToken) }, 401},
		{"jira create no auth", "POST", "/rest/api/3/issue", issueBody("x"), noAuth(), 401},
		{"wiki no auth", "GET", "/wiki/api/v2/spaces?keys=INCIDENTS", nil, noAuth(), 401},
		{"jira ok", "GET", "/rest/api/3/myself", nil, nil, 200},
		{"email case-insensitive", "GET", "/rest/api/3/myself", nil, withAuth("BOT@example.com", DefaultAPIToken), 200},
		{"wiki ok", "GET", "/wiki/api/v2/spaces?keys=INCIDENTS", nil, nil, 200},
		{"html needs no auth", "GET", "/", nil, noAuth(), 200},
		{"admin needs no auth", "GET", "/_emulator/state", nil, noAuth(), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []reqOpt
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			resp, data := env.do(tt.method, tt.path, tt.body, opts...)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, data)
			}
			if tt.want != 401 {
				return
			}
			if strings.HasPrefix(tt.path, "/wiki/") {
				var we wikiErr
				if err := json.Unmarshal(data, &we); err != nil || len(we.Errors) != 1 || we.Errors[0].Status != 401 {
					t.Errorf("wiki 401 body = %s", data)
				}
				return
			}
			if want := `{"errorMessages":["Client must be authenticated to access this resource."],"errors":{}}`; strings.TrimSpace(string(data)) != want {
				t.Errorf("jira 401 body = %s, want %s", data, want)
			}
		})
	}
	if len(env.em.Issues()) != 0 {
		t.Error("unauthenticated create must not create an issue")
	}
}

func TestCustomCredentials(t *testing.T) {
	env := newEnv(t, Options{Email: "ci@corp.example", APIToken: "s3cret"})
	env.expect("GET", "/rest/api/3/myself", nil, 401, nil)
	var me struct {
		AccountID    string `json:"accountId"`
		EmailAddress string `json:"emailAddress"`
		DisplayName  string `json:"displayName"`
	}
	env.expect("GET", "/rest/api/3/myself", nil, 200, &me, withAuth("ci@corp.example", "s3cret"))
	if me.EmailAddress != "ci@corp.example" || len(me.AccountID) != 24 || me.DisplayName == "" {
		t.Errorf("myself = %+v", me)
	}
}

func TestContentType(t *testing.T) {
	env := newEnv(t, Options{})
	tests := []struct {
		name   string
		method string
		path   string
		ct     string
		want   int
	}{
		{"jira missing", "POST", "/rest/api/3/issue", "", 415},
		{"jira text", "POST", "/rest/api/3/issue", "text/plain", 415},
		{"jira form", "POST", "/rest/api/3/search/jql", "application/x-www-form-urlencoded", 415},
		{"wiki missing", "POST", "/wiki/api/v2/pages", "", 415},
		{"wiki put", "PUT", "/wiki/api/v2/pages/1", "text/xml", 415},
		{"charset ok", "POST", "/rest/api/3/issue", "application/json; charset=utf-8", 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "{}"
			if tt.want == 201 {
				b, _ := json.Marshal(issueBody("ok"))
				body = string(b)
			}
			resp, data := env.do(tt.method, tt.path, body, func(r *http.Request) {
				if tt.ct == "" {
					r.Header.Del("Content-Type")
				} else {
					r.Header.Set("Content-Type", tt.ct)
				}
			})
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, data)
			}
		})
	}
}

func TestUnknownRoutes(t *testing.T) {
	env := newEnv(t, Options{})
	var je jiraErr
	env.expect("GET", "/rest/api/3/nope", nil, 404, &je)
	if len(je.ErrorMessages) == 0 {
		t.Errorf("404 body = %+v", je)
	}
	resp := env.expect("PUT", "/rest/api/3/issue", "{}", 405, nil)
	if resp.Header.Get("Allow") != "POST" {
		t.Errorf("Allow = %q", resp.Header.Get("Allow"))
	}
	var we wikiErr
	env.expect("GET", "/wiki/api/v2/nope", nil, 404, &we)
	if len(we.Errors) != 1 || we.Errors[0].Code != "NOT_FOUND" {
		t.Errorf("wiki 404 body = %+v", we)
	}
}

func TestFailNext(t *testing.T) {
	env := newEnv(t, Options{})
	env.em.FailNext("POST /rest/api/3/issue", 429, 2)

	for i := 0; i < 2; i++ {
		resp, data := env.do("POST", "/rest/api/3/issue", issueBody("x"))
		if resp.StatusCode != 429 {
			t.Fatalf("call %d: status %d, want 429", i, resp.StatusCode)
		}
		if resp.Header.Get("Retry-After") != "1" || resp.Header.Get("RateLimit-Reason") != "jira-burst-based" ||
			resp.Header.Get("X-RateLimit-Reset") == "" {
			t.Errorf("429 headers = %v", resp.Header)
		}
		var je jiraErr
		if err := json.Unmarshal(data, &je); err != nil || len(je.ErrorMessages) == 0 {
			t.Errorf("429 body = %s", data)
		}
	}
	// Other routes are unaffected; the third create succeeds.
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
	env.createIssue("third")
	if got := env.em.Calls()["POST /rest/api/3/issue"]; got != 3 {
		t.Errorf("Calls[POST /rest/api/3/issue] = %d, want 3", got)
	}
	if n := len(env.em.Issues()); n != 1 {
		t.Errorf("issues = %d, want 1", n)
	}

	// "*" matches any API route; Confluence faults use the v2 dialect.
	env.em.FailNext(AnyRoute, 503, 1)
	resp, data := env.do("GET", "/wiki/api/v2/spaces", nil)
	var we wikiErr
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || json.Unmarshal(data, &we) != nil || we.Errors[0].Status != 503 {
		t.Errorf("wiki 503: status %d headers %v body %s", resp.StatusCode, resp.Header, data)
	}
	env.expect("GET", "/wiki/api/v2/spaces", nil, 200, nil)

	// Gateway-style 429 without Retry-After.
	env.em.InjectFault("GET /rest/api/3/myself", Fault{Status: 429, NoRetryAfter: true}, 1)
	resp, _ = env.do("GET", "/rest/api/3/myself", nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" {
		t.Errorf("gateway 429: status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// 500 has no Retry-After.
	env.em.FailNext("GET /rest/api/3/myself", 500, 1)
	resp, _ = env.do("GET", "/rest/api/3/myself", nil)
	if resp.StatusCode != 500 || resp.Header.Get("Retry-After") != "" {
		t.Errorf("500: status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestOutage(t *testing.T) {
	env := newEnv(t, Options{})
	env.em.SetOutage(503)
	for _, path := range []string{"/rest/api/3/myself", "/wiki/api/v2/spaces"} {
		resp, _ := env.do("GET", path, nil)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s during outage: %d", path, resp.StatusCode)
		}
	}
	// The HTML view and admin API stay up.
	env.expect("GET", "/", nil, 200, nil)
	env.expect("GET", "/_emulator/state", nil, 200, nil)
	env.em.ClearOutage()
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
}

func TestConcurrentCreates(t *testing.T) {
	env := newEnv(t, Options{})
	const n = 200
	keys := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(issueBody(fmt.Sprintf("issue %d", i), fmt.Sprintf("l%d", i)))
			req, _ := http.NewRequest("POST", env.srv.URL+"/rest/api/3/issue", bytes.NewReader(b))
			req.SetBasicAuth(DefaultEmail, DefaultAPIToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var c created
			if resp.StatusCode != 201 || json.NewDecoder(resp.Body).Decode(&c) != nil {
				errs <- fmt.Errorf("create %d: status %d", i, resp.StatusCode)
				return
			}
			keys[i] = c.Key
			// Interleave reads with the writes.
			_ = env.em.Issues()
			_ = env.em.Calls()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			t.Errorf("duplicate key %s", k)
		}
		seen[k] = true
	}
	if len(env.em.Issues()) != n || env.em.Calls()["POST /rest/api/3/issue"] != n {
		t.Errorf("issues = %d, calls = %d", len(env.em.Issues()), env.em.Calls()["POST /rest/api/3/issue"])
	}
	if !seen["OPS-1"] || !seen[fmt.Sprintf("OPS-%d", n)] {
		t.Errorf("keys should be OPS-1..OPS-%d", n)
	}
}

func TestAdminStateAndReset(t *testing.T) {
	env := newEnv(t, Options{})
	c := env.createIssue("hello", "rbk-1")
	env.expect("POST", "/rest/api/3/issue/"+c.Key+"/comment", map[string]any{"body": adfDoc("hi")}, 201, nil)
	var st struct {
		Issues []struct {
			ID          string   `json:"id"`
			Key         string   `json:"key"`
			Summary     string   `json:"summary"`
			Labels      []string `json:"labels"`
			Status      string   `json:"status"`
			RemoteLinks []any    `json:"remoteLinks"`
			Comments    int      `json:"comments"`
		} `json:"issues"`
		Pages []struct {
			ID       string `json:"id"`
			SpaceKey string `json:"spaceKey"`
			Title    string `json:"title"`
			Version  int    `json:"version"`
			WebUI    string `json:"webui"`
		} `json:"pages"`
	}
	env.expect("GET", "/_emulator/state", nil, 200, &st, noAuth())
	if len(st.Issues) != 1 || st.Issues[0].Key != "OPS-1" || st.Issues[0].Comments != 1 ||
		st.Issues[0].Status != "To Do" || st.Issues[0].Labels[0] != "rbk-1" || st.Issues[0].RemoteLinks == nil {
		t.Errorf("state issues = %+v", st.Issues)
	}
	if len(st.Pages) != 1 || st.Pages[0].SpaceKey != "INCIDENTS" || st.Pages[0].WebUI == "" {
		t.Errorf("state pages = %+v", st.Pages)
	}
	env.em.FailNext("*", 500, 5)
	env.expect("POST", "/_emulator/reset", "", 204, nil, noAuth())
	if len(env.em.Issues()) != 0 || len(env.em.Calls()) != 0 {
		t.Error("reset should drop issues and calls")
	}
	// Faults were dropped too; numbering restarts.
	if c := env.createIssue("again"); c.Key != "OPS-1" {
		t.Errorf("key after reset = %s", c.Key)
	}
}

func TestProjectsAndSpacesOptions(t *testing.T) {
	env := newEnv(t, Options{
		Projects: map[string][]string{"sre": {"Incident"}, "OPS": {"Task"}},
		Spaces:   []string{"ENG", "eng", "POST"},
	})
	var c created
	body := issueBody("x")
	body["fields"].(map[string]any)["project"] = map[string]any{"key": "SRE"}
	env.expect("POST", "/rest/api/3/issue", body, 201, &c)
	if c.Key != "SRE-1" {
		t.Errorf("key = %s", c.Key)
	}
	// OPS has no Incident type here.
	var je jiraErr
	env.expect("POST", "/rest/api/3/issue", issueBody("x"), 400, &je)
	if je.Errors["issuetype"] == "" {
		t.Errorf("errors = %v", je.Errors)
	}
	var spaces struct {
		Results []struct{ Key string } `json:"results"`
	}
	env.expect("GET", "/wiki/api/v2/spaces", nil, 200, &spaces)
	if len(spaces.Results) != 2 {
		t.Errorf("spaces = %+v (duplicates should be folded)", spaces.Results)
	}
}

func TestParseProjects(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string][]string
		wantErr bool
	}{
		{"OPS:Incident,Task,Bug;SRE:Incident", map[string][]string{"OPS": {"Incident", "Task", "Bug"}, "SRE": {"Incident"}}, false},
		{" ops : Incident , Task ; ", map[string][]string{"OPS": {"Incident", "Task"}}, false},
		{"", nil, true},
		{"OPS", nil, true},
		{"OPS:", nil, true},
		{"1OPS:Task", nil, true},
		{"OPS:Task;OPS:Bug", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseProjects(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseProjects(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if tt.wantErr {
			continue
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(tt.want)
		if string(gj) != string(wj) {
			t.Errorf("ParseProjects(%q) = %s, want %s", tt.in, gj, wj)
		}
	}
}

// fakeClock is a settable clock for lag tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
