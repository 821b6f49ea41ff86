package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	base := start(t, time.Now, "-token", "t0k", "-projects", "SRE:Incident", "-spaces", "ENG,OPS")
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("printed URL = %q", base)
	}
	req, _ := http.NewRequest("GET", base+"/wiki/api/v2/spaces?keys=eng", nil)
	req.SetBasicAuth("bot@example.com", "t0k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sl struct {
		Results []struct{ Key string }
		Links   map[string]string `json:"_links"`
	}
	err = json.NewDecoder(resp.Body).Decode(&sl)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(sl.Results) != 1 || sl.Links["base"] != base+"/wiki" {
		t.Fatalf("spaces: status %d, %+v, %v", resp.StatusCode, sl, err)
	}
}

// fakeClock is a clock the test moves; the emulator's handlers read it
// concurrently.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// start runs the command with args and clock now on a free port and
// returns its URL; the command is stopped, and must shut down cleanly,
// when the test ends (a hang is the test binary's -timeout).
func start(t *testing.T, now func() time.Time, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), outW, io.Discard, now)
		outW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run returned %v", err)
		}
	})
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("read URL: %v", err)
	}
	go io.Copy(io.Discard, outR)
	return strings.TrimSpace(line)
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth("bot@example.com", "emulator-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestRunFaultFlags(t *testing.T) {
	base := start(t, time.Now,
		"-fault", "GET /rest/api/3/myself=503x2,retry-after=3",
		"-fault", "*=429,only-reset-header",
		"-rate-limit", "0.1", "-rate-burst", "4", "-per-issue-writes", "20")
	myself := base + "/rest/api/3/myself"
	for i, want := range []int{503, 503, 429, 200, 429} {
		resp := get(t, myself)
		if resp.StatusCode != want {
			t.Fatalf("call %d: status %d, want %d", i, resp.StatusCode, want)
		}
		switch {
		case i < 2 && resp.Header.Get("Retry-After") != "3":
			t.Errorf("call %d: Retry-After %q, want 3", i, resp.Header.Get("Retry-After"))
		case i == 2 && (resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-RateLimit-Reset") == ""):
			t.Errorf("only-reset-header 429: headers %v", resp.Header)
		case i == 4 && resp.Header.Get("RateLimit-Reason") != "jira-burst-based":
			t.Errorf("rate-limited call: headers %v", resp.Header)
		}
	}
	resp, err := http.Get(base + "/_emulator/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		RateLimited int            `json:"rateLimited"`
		Calls       map[string]int `json:"calls"`
		RateLimit   struct {
			PerSecond      float64 `json:"perSecond"`
			Burst          int     `json:"burst"`
			PerIssueWrites int     `json:"perIssueWrites"`
		} `json:"rateLimit"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.RateLimited != 1 || st.Calls["GET /rest/api/3/myself"] != 5 || st.RateLimit.Burst != 4 || st.RateLimit.PerIssueWrites != 20 {
		t.Errorf("state = %+v", st)
	}
}

func TestRunOutageFlag(t *testing.T) {
	clock := newFakeClock()
	base := start(t, clock.Now, "-outage", "502:200ms")
	if resp := get(t, base+"/wiki/api/v2/spaces"); resp.StatusCode != 502 {
		t.Fatalf("during the outage: status %d", resp.StatusCode)
	}
	clock.Advance(199 * time.Millisecond)
	if resp := get(t, base+"/wiki/api/v2/spaces"); resp.StatusCode != 502 {
		t.Fatalf("just before the outage ends: status %d", resp.StatusCode)
	}
	clock.Advance(time.Millisecond)
	if resp := get(t, base+"/wiki/api/v2/spaces"); resp.StatusCode != 200 {
		t.Fatalf("after the outage: status %d", resp.StatusCode)
	}
}

func TestRunDataCenterAndBackstageFlags(t *testing.T) {
	base := start(t, time.Now, "-bearer-token", "dc-pat-1", "-backstage-token", "bs-token-1", "-backstage-subject", "ci-bot",
		"-backstage-group", "group:default/payments-team=user:default/alice, user:default/bob",
		"-backstage-owner", "component:default/checkout-api=group:default/payments-team",
		"-backstage-extra-token", "argocd-notifications=argocd-token-1")
	do := func(method, path, auth, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if code, body := do("GET", "/rest/api/2/myself", "Bearer dc-pat-1", ""); code != 200 {
		t.Errorf("DC bearer: %d %s", code, body)
	}
	if code, _ := do("GET", "/rest/api/3/myself", "Bearer dc-pat-1", ""); code != 401 {
		t.Errorf("Cloud bearer: %d, want 401", code)
	}
	code, body := do("POST", "/api/notifications/notifications", "Bearer bs-token-1",
		`{"recipients":{"type":"entity","entityRef":"group:default/payments-team"},"payload":{"title":"t"}}`)
	if code != 200 || strings.Count(body, `"origin":"ci-bot"`) != 2 || !strings.Contains(body, "user:default/bob") {
		t.Errorf("notification: %d %s", code, body)
	}
	code, body = do("POST", "/api/notifications/notifications", "Bearer bs-token-1",
		`{"recipients":{"type":"entity","entityRef":"component:default/checkout-api"},"payload":{"title":"t"}}`)
	if code != 200 || strings.Count(body, `"origin":"ci-bot"`) != 2 || !strings.Contains(body, "user:default/alice") {
		t.Errorf("notification to a component: %d %s", code, body)
	}
	code, body = do("POST", "/api/notifications/notifications", "Bearer argocd-token-1",
		`{"recipients":{"type":"broadcast"},"payload":{"title":"t"}}`)
	if code != 200 || !strings.Contains(body, `"origin":"argocd-notifications"`) {
		t.Errorf("extra token: %d %s", code, body)
	}
}

func TestRunFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-projects", "bad"},
		{"-spaces", " , "},
		{"-listen", "256.0.0.1:99999"},
		{"extra"},
		{"-fault", "POST /rest/api/3/issue"},
		{"-fault", "POST /rest/api/3/issue=ok"},
		{"-fault", "POST /rest/api/3/issues=503"},
		{"-fault", "*=503,sometimes"},
		{"-outage", "503:forever"},
		{"-backstage-owner", "component:default/x"},
		{"-backstage-extra-token", "argocd=short"},
		{"-outage", "up"},
		{"-rate-limit", "-1"},
		{"-rate-limit", "fast"},
		{"-rate-burst", "5"},
		{"-per-issue-writes", "-20"},
		{"-backstage-token", "short"},
		{"-backstage-token", "has white space"},
		{"-backstage-subject", "rollback bot"},
		{"-backstage-group", "=user:default/a"},
		{"-bearer-token", "a b"},
	} {
		err := run(context.Background(), args, io.Discard, io.Discard, time.Now)
		if err == nil {
			t.Errorf("run(%q) = nil, want error", args)
		}
	}
}

// TestRunAppliedFault starts the command with a "took effect, answer
// lost" fault: the issue is created, and the client sees a reset.
func TestRunAppliedFault(t *testing.T) {
	base := start(t, time.Now, "-fault", "POST /rest/api/2/issue=0,applied,reset")
	body := `{"fields":{"project":{"key":"OPS"},"issuetype":{"name":"Incident"},"summary":"lost"}}`
	req, _ := http.NewRequest("POST", base+"/rest/api/2/issue", strings.NewReader(body))
	req.SetBasicAuth("bot@example.com", "emulator-token")
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("create answered %d, want a reset connection", resp.StatusCode)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("create: %v, want a reset connection", err)
	}
	st, err := http.Get(base + "/_emulator/state")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Body.Close()
	var state struct {
		Issues []struct{ Summary string } `json:"issues"`
		Faults []any                      `json:"faults"`
	}
	if err := json.NewDecoder(st.Body).Decode(&state); err != nil {
		t.Fatal(err)
	}
	if len(state.Issues) != 1 || state.Issues[0].Summary != "lost" || len(state.Faults) != 0 {
		t.Errorf("state = %+v, want the issue created and the fault used", state)
	}
}
