package emulator

import (
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
