package emulator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAdminFaultsOutageRateLimit(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := newEnv(t, Options{Now: clk.Now})
	admin := func(method, path, body string) {
		t.Helper()
		env.expect(method, path, body, 204, nil, noAuth())
	}
	state := func() stateView {
		t.Helper()
		var st stateView
		env.expect("GET", "/_emulator/state", nil, 200, &st, noAuth())
		return st
	}

	admin("POST", "/_emulator/faults", `{"route":"POST /rest/api/3/issue","status":503,"count":2,"retryAfter":7,"noRetryAfter":false,"onlyRateLimitReset":false,"delay":"","delayAfter":"","reset":false}`)
	admin("POST", "/_emulator/faults", `{"route":"*","reset":true,"delay":"1ms"}`)
	st := state()
	if len(st.Faults) != 2 || st.Faults[0] != (faultSpec{Route: "POST /rest/api/3/issue", Status: 503, Count: 2, RetryAfter: 7}) ||
		st.Faults[1] != (faultSpec{Route: "*", Count: 1, Delay: "1ms", Reset: true}) {
		t.Errorf("state faults = %+v", st.Faults)
	}
	if len(st.Routes) == 0 || st.Routes[0] != "POST /rest/api/3/issue" {
		t.Errorf("state routes = %v", st.Routes)
	}
	resp, _ := env.do("POST", "/rest/api/3/issue", issueBody("x"))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("first create: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	st = state()
	if st.Calls["POST /rest/api/3/issue"] != 1 || st.Faults[0].Count != 1 {
		t.Errorf("state calls = %v faults = %+v", st.Calls, st.Faults)
	}
	admin("DELETE", "/_emulator/faults", "")
	env.createIssue("after clearing")

	// A timed outage, reported with its end.
	admin("POST", "/_emulator/outage", `{"status":503,"duration":"30s"}`)
	env.expect("GET", "/rest/api/3/myself", nil, 503, nil)
	if st = state(); st.Outage == nil || st.Outage.Status != 503 || st.Outage.Until == nil || !st.Outage.Until.Equal(clk.Now().Add(30*time.Second)) {
		t.Errorf("state outage = %+v", st.Outage)
	}
	clk.Advance(30 * time.Second)
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
	// Without a duration it lasts until cleared, by either DELETE.
	admin("POST", "/_emulator/outage", `{"status":502}`)
	if st = state(); st.Outage == nil || st.Outage.Until != nil {
		t.Errorf("state outage = %+v", st.Outage)
	}
	clk.Advance(time.Hour)
	env.expect("GET", "/rest/api/3/myself", nil, 502, nil)
	admin("DELETE", "/_emulator/faults", "")
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
	admin("POST", "/_emulator/outage", `{"status":500}`)
	admin("DELETE", "/_emulator/outage", "")
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)

	admin("PUT", "/_emulator/ratelimit", `{"perSecond":1,"burst":1,"perIssueWrites":20}`)
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
	env.expect("GET", "/rest/api/3/myself", nil, 429, nil)
	st = state()
	if st.RateLimit != (RateLimit{PerSecond: 1, Burst: 1, PerIssueWrites: 20}) || st.RateLimited != 1 || st.MaxConcurrent != 1 {
		t.Errorf("state rateLimit = %+v rateLimited = %d maxConcurrent = %d", st.RateLimit, st.RateLimited, st.MaxConcurrent)
	}
	admin("PUT", "/_emulator/ratelimit", `{}`)
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
}

func TestAdminValidation(t *testing.T) {
	tests := []struct {
		method, path, body string
		wantMsg            string
	}{
		{"POST", "/_emulator/faults", ``, "empty"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503`, "invalid JSON"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503} {}`, "unexpected data"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503,"sttaus":1}`, `unknown field "sttaus"`},
		{"POST", "/_emulator/faults", `{"route":"*","status":"503"}`, "invalid JSON"},
		{"POST", "/_emulator/faults", `{"route":"POST /rest/api/3/issues","status":503}`, "unknown route"},
		{"POST", "/_emulator/faults", `{"route":"GET /rest/api/3/issue","status":503}`, "unknown route"}, // another method
		{"POST", "/_emulator/faults", `{"status":503}`, "unknown route"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503,"count":-1}`, "count"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503,"delay":"2 seconds"}`, "delay"},
		{"POST", "/_emulator/faults", `{"route":"*","delayAfter":"-1s"}`, "delayAfter"},
		{"POST", "/_emulator/faults", `{"route":"*","status":200}`, "400-599"},
		{"POST", "/_emulator/faults", `{"route":"*"}`, "does nothing"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503,"reset":true}`, "no status"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503,"onlyRateLimitReset":true}`, "429"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503,"delayAfter":"1s"}`, "status 0"},
		{"POST", "/_emulator/faults", `{"route":"*","status":503,"applied":true}`, "status 0"},
		{"POST", "/_emulator/outage", `{"duration":"30s"}`, "400-599"},
		{"POST", "/_emulator/outage", `{"status":503,"duration":"soon"}`, "duration"},
		{"POST", "/_emulator/outage", `{"status":503,"until":"2026-01-01T00:00:00Z"}`, "until"},
		{"PUT", "/_emulator/ratelimit", `{"perSecond":-1}`, "negative"},
		{"PUT", "/_emulator/ratelimit", `{"perSecond":10,"perIssue":20}`, "unknown field"},
		{"PUT", "/_emulator/ratelimit", `[]`, "invalid JSON"},
	}
	env := newEnv(t, Options{})
	for _, tt := range tests {
		var out struct {
			Error string `json:"error"`
		}
		env.expect(tt.method, tt.path, tt.body, 400, &out, noAuth())
		if !strings.Contains(out.Error, tt.wantMsg) {
			t.Errorf("%s %s %s: error %q, want it to mention %q", tt.method, tt.path, tt.body, out.Error, tt.wantMsg)
		}
	}
	// Nothing was configured by the rejected requests.
	var st stateView
	env.expect("GET", "/_emulator/state", nil, 200, &st)
	if len(st.Faults) != 0 || st.Outage != nil || st.RateLimit != (RateLimit{}) {
		t.Errorf("state after rejected requests: faults %+v outage %+v rateLimit %+v", st.Faults, st.Outage, st.RateLimit)
	}
}

// TestAdminAppliedFaults sets the two "took effect, answer lost" faults
// through the admin API and reads them back from the state.
func TestAdminAppliedFaults(t *testing.T) {
	env := newEnv(t, Options{})
	env.expect("POST", "/_emulator/faults", `{"route":"POST /rest/api/3/issue/{issueIdOrKey}/comment","applied":true,"reset":true}`, 204, nil, noAuth())
	env.expect("POST", "/_emulator/faults", `{"route":"POST /rest/api/2/issue","applied":true,"count":2}`, 204, nil, noAuth())
	var st stateView
	env.expect("GET", "/_emulator/state", nil, 200, &st, noAuth())
	want := []faultSpec{
		{Route: "POST /rest/api/3/issue/{issueIdOrKey}/comment", Count: 1, Applied: true, Reset: true},
		{Route: "POST /rest/api/2/issue", Count: 2, Applied: true},
	}
	if len(st.Faults) != 2 || st.Faults[0] != want[0] || st.Faults[1] != want[1] {
		t.Errorf("state faults = %+v, want %+v", st.Faults, want)
	}
	// The reset one acts: the comment is added, the caller gets no answer.
	key := env.createIssue("x").Key
	_, err := sendFresh(t.Context(), env, "POST /rest/api/3/issue/{issueIdOrKey}/comment",
		"/rest/api/3/issue/"+key+"/comment", map[string]any{"body": adfDoc("news")}, nil)
	if err == nil || !isConnReset(err) {
		t.Errorf("comment: %v, want a reset", err)
	}
	if n := len(env.em.Comments(key)); n != 1 {
		t.Errorf("comments = %d, want 1", n)
	}
}

// TestAdminGuard checks that a web page cannot reach the admin API: other
// origins get 403, and state-changing requests that are not JSON 415.
func TestAdminGuard(t *testing.T) {
	env := newEnv(t, Options{})
	fault := `{"route":"*","status":503}`
	type call struct{ method, path, body string }
	calls := []call{
		{"GET", "/_emulator/state", ""},
		{"POST", "/_emulator/reset", ""},
		{"POST", "/_emulator/faults", fault},
		{"DELETE", "/_emulator/faults", ""},
		{"POST", "/_emulator/outage", `{"status":503}`},
		{"DELETE", "/_emulator/outage", ""},
		{"PUT", "/_emulator/ratelimit", `{"perSecond":1}`},
	}
	send := func(c call, opts ...reqOpt) (int, string) {
		t.Helper()
		var body any
		if c.body != "" {
			body = c.body
		}
		resp, data := env.do(c.method, c.path, body, append([]reqOpt{noAuth()}, opts...)...)
		var out struct {
			Error string `json:"error"`
		}
		if resp.StatusCode >= 400 {
			if err := json.Unmarshal(data, &out); err != nil || out.Error == "" {
				t.Errorf("%s %s: %d with body %s, want {\"error\"}", c.method, c.path, resp.StatusCode, data)
			}
		}
		return resp.StatusCode, out.Error
	}
	for _, c := range calls {
		for _, origin := range []string{"http://evil.example", "null", strings.Replace(env.srv.URL, "127.0.0.1", "localhost", 1),
			strings.Replace(env.srv.URL, "http:", "https:", 1)} {
			if code, _ := send(c, withHeader("Content-Type", "application/json"), withHeader("Origin", origin)); code != 403 {
				t.Errorf("%s %s from %s: %d, want 403", c.method, c.path, origin, code)
			}
		}
		if c.method == "GET" {
			continue
		}
		// What an HTML form or a no-cors fetch can send.
		for _, ct := range []string{"application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""} {
			opt := withHeader("Content-Type", ct)
			if code, _ := send(c, opt); code != 415 {
				t.Errorf("%s %s with Content-Type %q: %d, want 415", c.method, c.path, ct, code)
			}
		}
	}
	var st stateView
	env.expect("GET", "/_emulator/state", nil, 200, &st, noAuth())
	if len(st.Faults) != 0 || st.Outage != nil || st.RateLimit != (RateLimit{}) {
		t.Fatalf("refused requests changed the state: %+v %+v %+v", st.Faults, st.Outage, st.RateLimit)
	}
	// The emulator's own origin, and scripts that send no Origin, pass.
	if code, msg := send(calls[2], withHeader("Content-Type", "application/json; charset=utf-8"), withHeader("Origin", env.srv.URL)); code != 204 {
		t.Errorf("same origin: %d %s", code, msg)
	}
	if code, msg := send(calls[4], withHeader("Content-Type", "application/json")); code != 204 {
		t.Errorf("no origin: %d %s", code, msg)
	}
	env.expect("GET", "/_emulator/state", nil, 200, &st, noAuth())
	if len(st.Faults) != 1 || st.Outage == nil {
		t.Errorf("accepted requests: faults %+v outage %+v", st.Faults, st.Outage)
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		origin, base string
		want         bool
	}{
		{"http://127.0.0.1:8081", "http://127.0.0.1:8081", true},
		{"HTTP://LOCALHOST:8081", "http://localhost:8081", true},
		{"http://example.com", "http://example.com:80", true},
		{"https://example.com:443", "https://example.com", true},
		{"http://localhost:8081", "http://127.0.0.1:8081", false},
		{"http://127.0.0.1:8082", "http://127.0.0.1:8081", false},
		{"https://127.0.0.1:8081", "http://127.0.0.1:8081", false},
		{"null", "http://127.0.0.1:8081", false},
		{"http://127.0.0.1:8081.evil.example", "http://127.0.0.1:8081", false},
	}
	for _, tt := range tests {
		if got := sameOrigin(tt.origin, tt.base); got != tt.want {
			t.Errorf("sameOrigin(%q, %q) = %v, want %v", tt.origin, tt.base, got, tt.want)
		}
	}
}
