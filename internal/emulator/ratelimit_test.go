package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestBurstRateLimit(t *testing.T) {
	tests := []struct {
		name           string
		rl             RateLimit
		path           string
		wantOK         int // calls admitted from a full bucket
		wantRetryAfter string
		wantReason     string
		refill         time.Duration // clock advance that earns one token
	}{
		{"jira", RateLimit{PerSecond: 2, Burst: 3}, "/rest/api/3/myself", 3, "1", "jira-burst-based", 500 * time.Millisecond},
		{"confluence has no reason", RateLimit{PerSecond: 2, Burst: 3}, "/wiki/api/v2/spaces", 3, "1", "", 500 * time.Millisecond},
		{"slow refill", RateLimit{PerSecond: 0.25, Burst: 1}, "/rest/api/3/myself", 1, "4", "jira-burst-based", 4 * time.Second},
		{"burst defaults to rate", RateLimit{PerSecond: 1.5}, "/rest/api/3/myself", 2, "1", "jira-burst-based", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			env := newEnv(t, Options{Now: clk.Now, RateLimit: tt.rl})
			limit := strconv.Itoa(env.em.RateLimits().Burst)
			for i := range tt.wantOK {
				resp, data := env.do("GET", tt.path, nil)
				if resp.StatusCode != 200 {
					t.Fatalf("call %d: status %d; %s", i, resp.StatusCode, data)
				}
				if got, want := resp.Header.Get("X-RateLimit-Remaining"), strconv.Itoa(tt.wantOK-1-i); got != want || resp.Header.Get("X-RateLimit-Limit") != limit {
					t.Errorf("call %d: X-RateLimit-Remaining %q Limit %q, want %s and %s", i, got, resp.Header.Get("X-RateLimit-Limit"), want, limit)
				}
			}
			resp, data := env.do("GET", tt.path, nil)
			if resp.StatusCode != 429 {
				t.Fatalf("status %d, want 429", resp.StatusCode)
			}
			ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			h := resp.Header
			if h.Get("Retry-After") != tt.wantRetryAfter || ra < 1 || h.Get("X-RateLimit-Limit") != limit ||
				h.Get("X-RateLimit-Remaining") != "0" || h.Get("RateLimit-Reason") != tt.wantReason ||
				h.Get("X-RateLimit-Reset") != clk.Now().Add(time.Duration(ra)*time.Second).Format(time.RFC3339) {
				t.Errorf("429 headers = %v", h)
			}
			if !json.Valid(data) {
				t.Errorf("429 body = %s", data)
			}
			clk.Advance(tt.refill)
			env.expect("GET", tt.path, nil, 200, nil)
			env.expect("GET", tt.path, nil, 429, nil)
			if got := env.em.RateLimited(); got != 2 {
				t.Errorf("RateLimited = %d, want 2", got)
			}
			// Rejected calls are counted like any other.
			if got := env.em.Calls()["GET "+tt.path]; got != tt.wantOK+3 {
				t.Errorf("Calls = %d, want %d", got, tt.wantOK+3)
			}
		})
	}
}

func TestRateLimitSharedAndOrdered(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := newEnv(t, Options{Now: clk.Now})
	env.em.SetRateLimit(RateLimit{PerSecond: 1, Burst: 2})
	// One bucket for the tenant: Jira and Confluence calls share it, and
	// unauthenticated calls spend tokens too.
	env.expect("GET", "/rest/api/3/myself", nil, 401, nil, noAuth())
	env.expect("GET", "/wiki/api/v2/spaces", nil, 200, nil)
	// A call the limiter rejects does not use up an injected fault.
	env.em.FailNext("GET /rest/api/3/myself", 500, 1)
	env.expect("GET", "/rest/api/3/myself", nil, 429, nil)
	clk.Advance(time.Second)
	env.expect("GET", "/rest/api/3/myself", nil, 500, nil)
	// The HTML view and admin API are never limited.
	env.expect("GET", "/", nil, 200, nil)
	env.expect("GET", "/_emulator/state", nil, 200, nil)
	// Turning the limit off lets everything through.
	env.em.SetRateLimit(RateLimit{})
	for range 5 {
		resp, _ := env.do("GET", "/rest/api/3/myself", nil)
		if resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("without limits: status %d, headers %v", resp.StatusCode, resp.Header)
		}
	}
	if got := env.em.RateLimited(); got != 1 {
		t.Errorf("RateLimited = %d, want 1", got)
	}
	env.em.Reset()
	if got := env.em.RateLimited(); got != 0 {
		t.Errorf("RateLimited after Reset = %d", got)
	}
}

func TestPerIssueWriteLimit(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := newEnv(t, Options{Now: clk.Now, RateLimit: RateLimit{PerIssueWrites: 2}})
	a := env.createIssue("a")
	b := env.createIssue("b")
	// Creates are not per-issue writes.
	env.createIssue("c")

	issue := func(idOrKey string) string { return "/rest/api/3/issue/" + idOrKey }
	edit := map[string]any{"fields": map[string]any{"summary": "edited"}}
	comment := map[string]any{"body": adfDoc("hi")}
	env.expect("PUT", issue(a.Key), edit, 204, nil)
	clk.Advance(500 * time.Millisecond)
	env.expect("POST", issue(a.Key)+"/comment", comment, 201, nil)

	// A third write within 2 s, addressed by id, hits the same budget.
	resp, data := env.do("PUT", issue(a.ID), edit)
	h := resp.Header
	if resp.StatusCode != 429 || h.Get("RateLimit-Reason") != "jira-per-issue-on-write" ||
		h.Get("Retry-After") != "2" || h.Get("X-RateLimit-Limit") != "2" || h.Get("X-RateLimit-Remaining") != "0" ||
		h.Get("X-RateLimit-Reset") != clk.Now().Add(2*time.Second).Format(time.RFC3339) {
		t.Fatalf("third write: status %d headers %v body %s", resp.StatusCode, h, data)
	}
	var je jiraErr
	if json.Unmarshal(data, &je) != nil || len(je.ErrorMessages) == 0 {
		t.Errorf("429 body = %s", data)
	}
	// Reads of that issue and writes to another are not affected.
	env.expect("GET", issue(a.Key), nil, 200, nil)
	env.expect("PUT", issue(b.Key), edit, 204, nil)

	// The window slides: the first write leaves it after 2 s.
	clk.Advance(time.Second)
	resp, _ = env.do("POST", issue(a.Key)+"/comment", comment)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("write 1.5 s in: status %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	clk.Advance(500 * time.Millisecond)
	env.expect("POST", issue(a.Key)+"/comment", comment, 201, nil)
	env.expect("PUT", issue(a.Key), edit, 429, nil)
	if got := env.em.RateLimited(); got != 3 {
		t.Errorf("RateLimited = %d, want 3", got)
	}
}

// TestMaxConcurrent: the peak of calls in flight at once is counted. The
// calls go straight to the handler in a synctest bubble, so synctest.Wait
// says when all of them are held by their fault.
func TestMaxConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		em := New(Options{})
		for range 3 {
			if rec := get(t.Context(), em, "/rest/api/3/myself"); rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
		if got := em.MaxConcurrent(); got != 1 {
			t.Errorf("MaxConcurrent after sequential calls = %d, want 1", got)
		}

		// Hold n calls in flight until all of them have arrived.
		const n = 5
		em.InjectFault("GET /rest/api/3/myself", Fault{Delay: time.Hour}, n)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() { get(ctx, em, "/rest/api/3/myself") })
		}
		synctest.Wait()
		if got := em.MaxConcurrent(); got != n {
			t.Errorf("MaxConcurrent = %d, want %d", got, n)
		}
		cancel() // the emulator stops waiting when the caller goes away
		wg.Wait()
		var st stateView
		if err := json.Unmarshal(get(t.Context(), em, "/_emulator/state").Body.Bytes(), &st); err != nil || st.MaxConcurrent != n {
			t.Errorf("state maxConcurrent = %d (%v), want %d", st.MaxConcurrent, err, n)
		}
	})
}
