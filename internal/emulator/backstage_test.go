package emulator

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const bsPath = "/api/notifications/notifications"

type bsNotification struct {
	ID      string         `json:"id"`
	User    *string        `json:"user"`
	Created string         `json:"created"`
	Updated *string        `json:"updated"`
	Read    *string        `json:"read"`
	Origin  string         `json:"origin"`
	Payload map[string]any `json:"payload"`
}

type bsErr struct {
	Error struct {
		Name    string            `json:"name"`
		Message string            `json:"message"`
		Cause   map[string]string `json:"cause"`
	} `json:"error"`
	Request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response struct {
		StatusCode int `json:"statusCode"`
	} `json:"response"`
}

// notify sends a notification with the default static token.
func (env *testEnv) notify(path string, body any, opts ...reqOpt) (*http.Response, []byte) {
	env.t.Helper()
	return env.do("POST", path, body, append([]reqOpt{withBearer(DefaultBackstageToken)}, opts...)...)
}

func (env *testEnv) notifyOK(body any) []bsNotification {
	env.t.Helper()
	resp, data := env.notify(bsPath, body)
	if resp.StatusCode != 200 {
		env.t.Fatalf("notify: status %d: %s", resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		env.t.Errorf("Content-Type = %q", ct)
	}
	var out []bsNotification
	if err := json.Unmarshal(data, &out); err != nil || out == nil {
		env.t.Fatalf("notify: decode %s: %v", data, err)
	}
	return out
}

func entityNote(refs any, payload map[string]any) map[string]any {
	return map[string]any{"recipients": map[string]any{"type": "entity", "entityRef": refs}, "payload": payload}
}

func TestBackstageAuth(t *testing.T) {
	env := newEnv(t, Options{})
	body := entityNote("user:default/jdoe", map[string]any{"title": "t"})
	tests := []struct {
		name string
		path string
		opt  reqOpt
		want int
		msg  string
		url  string
	}{
		{"no credentials", bsPath, noAuth(), 401, "Missing credentials", "/notifications"},
		{"basic auth", bsPath, withAuth(DefaultEmail, DefaultAPIToken), 401, "Missing credentials", "/notifications"},
		{"wrong token", bsPath, withBearer("not-the-token"), 401, "Illegal token", "/notifications"},
		{"wrong token, a query", bsPath + "?x=1", withBearer("nope"), 401, "Illegal token", "/notifications?x=1"},
		{"token", bsPath, withBearer(DefaultBackstageToken), 200, "", ""},
		{"lower-case scheme", bsPath, withHeader("Authorization", "bearer "+DefaultBackstageToken), 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, data := env.do("POST", tt.path, body, tt.opt)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, data)
			}
			if tt.want != 401 {
				return
			}
			want := `{"error":{"name":"AuthenticationError","message":"` + tt.msg + `"},"request":{"method":"POST","url":"` + tt.url + `"},"response":{"statusCode":401}}`
			if got := strings.TrimSpace(string(data)); got != want {
				t.Errorf("body = %s\nwant   %s", got, want)
			}
		})
	}
	if n := len(env.em.Notifications()); n != 2 {
		t.Errorf("%d notifications, want 2", n)
	}
	if calls := env.em.Calls(); calls["POST "+bsPath] != len(tests) {
		t.Errorf("calls = %v, want %d", calls, len(tests))
	}
}

// TestBackstageValidation covers the handler's own checks, after the
// request validation (TestBackstageRequestValidation).
func TestBackstageValidation(t *testing.T) {
	env := newEnv(t, Options{})
	tests := []struct {
		name   string
		body   any
		ctype  string
		status int
		errMsg string // exact error.message
		errNm  string
	}{
		{"empty title", entityNote("user:default/a", map[string]any{"title": ""}), "", 400,
			"Invalid notification request received: missing title", "InputError"},
		{"javascript link", entityNote("user:default/a", map[string]any{"title": "t", "link": "javascript:alert(1)"}), "", 400,
			"Invalid link provided; caused by Error: Only HTTP/HTTPS links are allowed", "InputError"},
		{"ftp link", entityNote("user:default/a", map[string]any{"title": "t", "link": " FTP://x/y"}), "", 400,
			"Invalid link provided; caused by Error: Only HTTP/HTTPS links are allowed", "InputError"},
		{"entity ref without kind", entityNote("jdoe", map[string]any{"title": "t"}), "", 400,
			`Failed to send user notifications; caused by Error: Entity reference "jdoe" had missing or empty kind (e.g. did not start with "component:" or similar)`, "InputError"},
		{"empty entity ref", entityNote("", map[string]any{"title": "t"}), "", 400,
			"Failed to send user notifications; caused by Error: Entity reference must not be empty", "InputError"},
		{"an empty ref in a list", entityNote([]any{"user:default/a", ""}, map[string]any{"title": "t"}), "", 400,
			"Failed to send user notifications; caused by Error: Entity reference must not be empty", "InputError"},
		{"malformed entity ref", entityNote("user:", map[string]any{"title": "t"}), "", 400,
			`Failed to send user notifications; caused by TypeError: Entity reference "user:" was not on the form [<kind>:][<namespace>/]<name>`, "InputError"},
		{"unknown severity", entityNote("user:default/a", map[string]any{"title": "t", "severity": "warning"}), "", 400,
			"request/body/payload/severity must be equal to one of the allowed values: critical, high, normal, low", "InputError"},
		{"missing entityRef", map[string]any{"recipients": map[string]any{"type": "entity"}, "payload": map[string]any{"title": "t"}}, "", 400,
			"request/body/recipients must have required property 'entityRef', request/body/recipients/type must be equal to one of the allowed values: broadcast, request/body/recipients must match exactly one schema in oneOf", "InputError"},
		{"not JSON", `{"payload":{"title":"t"},"recipients":{"type":"broadcast"}}`, "text/plain", 400,
			"unsupported media type text/plain", "InputError"},
		{"broken JSON", `{"payload":`, "", 400, "", "InputError"},
		{"relative link", entityNote("user:default/a", map[string]any{"title": "t", "link": "/catalog/default/component/payments"}), "", 200, "", ""},
		{"http link", entityNote("user:default/a", map[string]any{"title": "t", "link": "https://x.atlassian.net/browse/OPS-1"}), "", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []reqOpt
			if tt.ctype != "" {
				opts = append(opts, withHeader("Content-Type", tt.ctype))
			}
			resp, data := env.notify(bsPath, tt.body, opts...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, data)
			}
			if tt.status == 200 {
				return
			}
			var e bsErr
			if err := json.Unmarshal(data, &e); err != nil {
				t.Fatal(err)
			}
			if e.Error.Name != tt.errNm || (tt.errMsg != "" && e.Error.Message != tt.errMsg) ||
				e.Response.StatusCode != tt.status || e.Request.Method != "POST" || e.Request.URL != "/notifications" {
				t.Errorf("error = %s", data)
			}
			if strings.Contains(tt.errMsg, "caused by") && e.Error.Cause["message"] == "" {
				t.Errorf("no cause in %s", data)
			}
		})
	}
	// Only the two valid sends were stored.
	if n := len(env.em.Notifications()); n != 2 {
		t.Errorf("%d notifications, want 2", n)
	}
}

// TestBackstageRequestValidation replays testdata/backstage/validation.json,
// the answers of the real router stack (express.json() and
// express-openapi-validator with the plugin's OpenAPI spec, see
// testdata/backstage/capture.js), and expects the same status and message.
// Requests the real validation lets through reach the handler here too.
func TestBackstageRequestValidation(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "backstage", "validation.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name        string  `json:"name"`
		Path        string  `json:"path"`
		ContentType *string `json:"contentType"`
		Body        string  `json:"body"`
		Status      int     `json:"status"`
		Message     string  `json:"message"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 60 {
		t.Fatalf("%d cases", len(cases))
	}
	// What the handler answers to bodies the validation accepts.
	handler := map[string]string{
		"empty title passes validation":      "Invalid notification request received: missing title",
		"empty entity ref passes validation": "Failed to send user notifications; caused by Error: Entity reference must not be empty",
	}
	// JSON.parse's own words, which Go's decoder does not reproduce.
	v8Text := map[string]bool{"malformed JSON": true}
	env := newEnv(t, Options{BackstageGroups: map[string][]string{"group:default/a": {"user:default/u"}}})
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			ct := func(r *http.Request) {
				r.Header.Del("Content-Type")
				if c.ContentType != nil {
					r.Header.Set("Content-Type", *c.ContentType)
				}
			}
			resp, data := env.notify("/api/notifications"+c.Path, c.Body, ct)
			var e bsErr
			_ = json.Unmarshal(data, &e)
			want, wantStatus := c.Message, c.Status
			if msg, ok := handler[c.Name]; ok {
				want, wantStatus = msg, 400
			}
			if resp.StatusCode != wantStatus {
				t.Fatalf("status %d, want %d (%s): %s", resp.StatusCode, wantStatus, want, data)
			}
			if wantStatus == 200 {
				return
			}
			if e.Error.Name != "InputError" || e.Response.StatusCode != 400 || (!v8Text[c.Name] && e.Error.Message != want) {
				t.Errorf("error %s\nwant InputError %q", data, want)
			}
		})
	}
}

// A re-send with the same scope keeps what it leaves out (knex skips
// undefined columns), replaces metadata, and is unread again.
func TestBackstageScopeRestoreKeepsAbsentMembers(t *testing.T) {
	env := newEnv(t, Options{})
	env.notifyOK(entityNote("user:default/alice", map[string]any{"title": "one", "description": "d1",
		"link": "https://x/1", "topic": "t1", "scope": "s", "severity": "high", "metadata": map[string]any{"k": "v"}}))
	out := env.notifyOK(entityNote("user:default/alice", map[string]any{"title": "two", "scope": "s"}))
	notes := env.em.Notifications()
	if len(notes) != 1 || len(out) != 1 {
		t.Fatalf("notes %+v, answer %+v", notes, out)
	}
	p := notes[0].Payload
	if p.Title != "two" || p.Description != "d1" || p.Link != "https://x/1" || p.Topic != "t1" || p.Severity != "normal" ||
		p.Metadata != nil || notes[0].Updated.IsZero() {
		t.Errorf("restored %+v", notes[0])
	}
	if out[0].Payload["description"] != "d1" || out[0].Payload["metadata"] != nil {
		t.Errorf("answer %+v", out[0])
	}
}

func TestBackstageRecipients(t *testing.T) {
	env := newEnv(t, Options{
		BackstageSubject: "rollback-bot",
		BackstageGroups: map[string][]string{
			"group:default/payments-team": {"user:default/alice", "bob", "group:payments-oncall"},
			"payments-oncall":             {"user:default/carol", "user:default/alice"},
			"group:default/empty":         nil,
		},
		BackstageOwners: map[string]string{
			"component:default/checkout-api": "payments-team",
			"system:storefront":              "user:default/dave",
		},
	})
	tests := []struct {
		name    string
		refs    any
		exclude any
		users   []string
	}{
		{"one user, verbatim", "user:default/jdoe", nil, []string{"user:default/jdoe"}},
		{"user refs are not normalized", []any{"user:jdoe", "User:default/jdoe"}, nil, []string{"user:jdoe", "User:default/jdoe"}},
		{"group with a child group, deduplicated", "group:default/payments-team", nil,
			[]string{"user:default/alice", "user:default/bob", "user:default/carol"}},
		{"group ref case and namespace", "Group:Payments-Team", nil,
			[]string{"user:default/alice", "user:default/bob", "user:default/carol"}},
		{"user and group overlap", []any{"user:default/alice", "group:payments-oncall"}, nil,
			[]string{"user:default/alice", "user:default/carol"}},
		{"excluded user", "group:default/payments-team", "user:default/bob",
			[]string{"user:default/alice", "user:default/carol"}},
		{"excluded child group", "group:default/payments-team", []any{"group:default/payments-oncall"},
			[]string{"user:default/alice", "user:default/bob"}},
		{"group without members", "group:default/empty", nil, nil},
		{"unknown group", "group:default/nobody", nil, nil},
		{"entities not in the catalog are dropped", []any{"component:default/payments-api", "system:x"}, nil, nil},
		{"a component notifies its owner", "component:default/checkout-api", nil,
			[]string{"user:default/alice", "user:default/bob", "user:default/carol"}},
		{"a system owned by a user", "system:default/storefront", nil, []string{"user:default/dave"}},
		{"an excluded component", "component:default/checkout-api", "component:default/checkout-api", nil},
		{"a component and its owner's member", []any{"component:default/checkout-api", "user:default/alice"}, "user:default/bob",
			[]string{"user:default/alice", "user:default/carol"}},
		{"empty list", []any{}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := map[string]any{"type": "entity", "entityRef": tt.refs}
			if tt.exclude != nil {
				rec["excludeEntityRef"] = tt.exclude
			}
			out := env.notifyOK(map[string]any{"recipients": rec, "payload": map[string]any{"title": "Rollback"}})
			var users []string
			for _, n := range out {
				if n.User == nil || n.Origin != "rollback-bot" || n.ID == "" || n.Payload["severity"] != "normal" {
					t.Errorf("notification = %+v", n)
					continue
				}
				users = append(users, *n.User)
			}
			if strings.Join(users, ",") != strings.Join(tt.users, ",") {
				t.Errorf("users = %v, want %v", users, tt.users)
			}
		})
	}

	// A broadcast is one notification with user null.
	resp, data := env.notify(bsPath, map[string]any{"recipients": map[string]any{"type": "broadcast"},
		"payload": map[string]any{"title": "All hands", "severity": "critical", "metadata": map[string]any{"k": 1}}})
	if resp.StatusCode != 200 || !strings.Contains(string(data), `"user":null`) || strings.Count(string(data), `"id"`) != 1 ||
		!strings.Contains(string(data), `"metadata":{"k":1}`) || !strings.Contains(string(data), `"severity":"critical"`) {
		t.Errorf("broadcast = %d %s", resp.StatusCode, data)
	}
	notes := env.em.Notifications()
	last := notes[len(notes)-1]
	if !last.Broadcast || last.User != "" || last.Payload.Severity != "critical" || last.Payload.Title != "All hands" {
		t.Errorf("stored broadcast = %+v", last)
	}
}

func TestBackstageScopeDedupe(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}
	env := newEnv(t, Options{Now: clock.Now, BackstageExtraTokens: map[string]string{"other-bot-token": "other-bot"}})
	send := func(title string) []bsNotification {
		return env.notifyOK(entityNote([]any{"user:default/alice", "user:default/bob"}, map[string]any{
			"title": title, "severity": "high", "scope": "rollback:rbk-1", "topic": "deployment-rollback",
			"link": "https://x.atlassian.net/browse/OPS-7", "icon": "warning"}))
	}
	first := send("Rollback started")
	if len(first) != 2 || first[0].Updated != nil || first[0].Payload["scope"] != "rollback:rbk-1" {
		t.Fatalf("first = %+v", first)
	}
	if err := env.em.SetNotificationRead(first[0].ID, true); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	second := send("Rollback finished")
	if len(second) != 2 {
		t.Fatalf("second = %+v", second)
	}
	for i := range second {
		if second[i].ID != first[i].ID || second[i].Updated == nil || second[i].Read != nil ||
			second[i].Payload["title"] != "Rollback finished" || second[i].Created != first[i].Created {
			t.Errorf("re-send %d = %+v, want the same notification updated", i, second[i])
		}
	}
	notes := env.em.Notifications()
	if len(notes) != 2 {
		t.Fatalf("%d stored notifications, want 2", len(notes))
	}
	for _, n := range notes {
		if n.Payload.Title != "Rollback finished" || n.Read || !n.Updated.Equal(clock.Now().UTC()) || n.Payload.Icon != "warning" {
			t.Errorf("stored = %+v", n)
		}
	}

	// Another scope, or no scope, inserts.
	env.notifyOK(entityNote("user:default/alice", map[string]any{"title": "x", "scope": "rollback:rbk-2"}))
	env.notifyOK(entityNote("user:default/alice", map[string]any{"title": "x"}))
	env.notifyOK(entityNote("user:default/alice", map[string]any{"title": "x"}))
	// The same scope from another origin inserts too.
	other := entityNote("user:default/alice", map[string]any{"title": "x", "scope": "rollback:rbk-1"})
	if resp, data := env.do("POST", bsPath, other, withBearer("other-bot-token")); resp.StatusCode != 200 {
		t.Fatalf("from another origin: %d %s", resp.StatusCode, data)
	}
	if n := len(env.em.Notifications()); n != 6 {
		t.Errorf("%d stored notifications, want 6", n)
	}

	// Broadcasts dedupe by scope and origin too. 0.6.11 answers the re-send
	// with a fresh id, while the stored notification keeps its own.
	b1 := env.notifyOK(map[string]any{"recipients": map[string]any{"type": "broadcast"}, "payload": map[string]any{"title": "b1", "scope": "s"}})
	b2 := env.notifyOK(map[string]any{"recipients": map[string]any{"type": "broadcast"}, "payload": map[string]any{"title": "b2", "scope": "s"}})
	if len(b1) != 1 || len(b2) != 1 || b1[0].User != nil || b2[0].Payload["title"] != "b2" {
		t.Fatalf("broadcasts = %+v %+v", b1, b2)
	}
	var stored []Notification
	for _, n := range env.em.Notifications() {
		if n.Broadcast {
			stored = append(stored, n)
		}
	}
	if len(stored) != 1 || stored[0].ID != b1[0].ID || stored[0].Payload.Title != "b2" || stored[0].Updated.IsZero() {
		t.Errorf("stored broadcasts = %+v", stored)
	}
	if b2[0].ID == b1[0].ID {
		t.Errorf("re-sent broadcast answered with the stored id %s; 0.6.11 answers with a new one", b2[0].ID)
	}
}

func TestBackstageFaultsAndState(t *testing.T) {
	env := newEnv(t, Options{RateLimit: RateLimit{PerSecond: 1, Burst: 1}})
	body := entityNote("user:default/a", map[string]any{"title": "t"})
	// Not behind the Atlassian rate limits.
	for i := 0; i < 3; i++ {
		if resp, data := env.notify(bsPath, body); resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("send %d = %d %v %s", i, resp.StatusCode, resp.Header, data)
		}
	}
	env.em.FailNext("POST /api/notifications/notifications", 503, 1)
	resp, data := env.notify(bsPath, body)
	var e bsErr
	_ = json.Unmarshal(data, &e)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || e.Error.Name != "ServiceUnavailableError" ||
		e.Response.StatusCode != 503 || e.Request.URL != "/notifications" {
		t.Errorf("fault = %d %v %s", resp.StatusCode, resp.Header, data)
	}
	env.em.SetOutage(503)
	if resp, _ := env.notify(bsPath, body); resp.StatusCode != 503 {
		t.Errorf("outage = %d", resp.StatusCode)
	}
	env.em.ClearOutage()
	if n := len(env.em.Notifications()); n != 3 {
		t.Errorf("%d notifications, want 3", n)
	}
	var st struct {
		Notifications []Notification `json:"notifications"`
		Routes        []string       `json:"routes"`
	}
	env.expect("GET", "/_emulator/state", nil, 200, &st, noAuth())
	if len(st.Notifications) != 3 || !strings.Contains(strings.Join(st.Routes, "\n"), "POST /api/notifications/notifications") {
		t.Errorf("state = %+v", st)
	}
	env.em.Reset()
	if n := len(env.em.Notifications()); n != 0 {
		t.Errorf("after Reset: %d notifications", n)
	}
}

// Each externalAccess entry is its own origin: the same scope from two
// senders makes two notifications.
func TestBackstageExtraTokens(t *testing.T) {
	env := newEnv(t, Options{BackstageExtraTokens: map[string]string{"argocd-token-1": "argocd-notifications"}})
	body := entityNote("user:default/alice", map[string]any{"title": "t", "scope": "s"})
	if resp, data := env.do("POST", bsPath, body, withBearer("argocd-token-1")); resp.StatusCode != 200 ||
		!strings.Contains(string(data), `"origin":"argocd-notifications"`) {
		t.Fatalf("extra token: %d %s", resp.StatusCode, data)
	}
	if out := env.notifyOK(body); len(out) != 1 || out[0].Origin != DefaultBackstageSubject {
		t.Fatalf("default token: %+v", out)
	}
	if resp, _ := env.do("POST", bsPath, body, withBearer("argocd-token-2")); resp.StatusCode != 401 {
		t.Errorf("unknown token: %d", resp.StatusCode)
	}
	if n := len(env.em.Notifications()); n != 2 {
		t.Errorf("%d notifications, want 2 (one per origin)", n)
	}
}

func TestValidateBackstageToken(t *testing.T) {
	for _, tt := range []struct {
		token, subject string
		ok             bool
	}{
		{"backstage-token", "rollback-bot", true},
		{"short", "rollback-bot", false},
		{"has space token", "rollback-bot", false},
		{"backstage-token", "rollback bot", false},
		{"backstage-token", "", false},
	} {
		if err := ValidateBackstageToken(tt.token, tt.subject); (err == nil) != tt.ok {
			t.Errorf("ValidateBackstageToken(%q, %q) = %v", tt.token, tt.subject, err)
		}
	}
}
