package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// isConnReset reports whether err is what a client sees when the server
// resets the connection.
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "reset")
}

func TestResetFault(t *testing.T) {
	tests := []struct {
		name        string
		fault       Fault
		method      string
		path        string
		body        any
		wantIssues  int // issues existing afterwards: did the call take effect?
		minDuration time.Duration
	}{
		{"create reset at once", Fault{Reset: true}, "POST", "/rest/api/3/issue", issueBody("x"), 0, 0},
		{"get reset at once", Fault{Reset: true}, "GET", "/rest/api/3/myself", nil, 0, 0},
		{"wiki reset", Fault{Reset: true}, "GET", "/wiki/api/v2/spaces", nil, 0, 0},
		{"reset after a delay", Fault{Reset: true, Delay: 50 * time.Millisecond}, "POST", "/rest/api/3/issue", issueBody("x"), 0, 50 * time.Millisecond},
		{"created, then reset", Fault{Reset: true, DelayAfter: 10 * time.Millisecond}, "POST", "/rest/api/3/issue", issueBody("x"), 1, 10 * time.Millisecond},
		{"reset wins over status", Fault{Reset: true, Status: 503}, "POST", "/rest/api/3/issue", issueBody("x"), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, Options{})
			route := tt.method + " " + tt.path
			env.em.InjectFault(route, tt.fault, 1)

			var rd io.Reader
			if tt.body != nil {
				b, _ := json.Marshal(tt.body)
				rd = bytes.NewReader(b)
			}
			req, _ := http.NewRequest(tt.method, env.srv.URL+tt.path, rd)
			req.SetBasicAuth(DefaultEmail, DefaultAPIToken)
			req.Header.Set("Content-Type", "application/json")
			// A fresh connection: Go's transport silently retries an
			// idempotent request once when a reused connection is reset.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			start := time.Now()
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got status %d, want a connection reset", resp.StatusCode)
			}
			t.Logf("client error: %v", err)
			if !isConnReset(err) {
				t.Fatalf("error = %v, want connection reset", err)
			}
			if el := time.Since(start); el < tt.minDuration {
				t.Errorf("reset after %v, want at least %v", el, tt.minDuration)
			}
			if n := len(env.em.Issues()); n != tt.wantIssues {
				t.Errorf("issues = %d, want %d", n, tt.wantIssues)
			}
			if got := env.em.Calls()[route]; got != 1 {
				t.Errorf("Calls[%s] = %d, want 1", route, got)
			}
			// The fault is used up; the server keeps serving.
			env.expect(tt.method, tt.path, tt.body, map[string]int{"POST": 201, "GET": 200}[tt.method], nil)
		})
	}
}

func TestOnlyRateLimitResetFault(t *testing.T) {
	tests := []struct {
		route, path string
		retryAfter  int
	}{
		{"GET /rest/api/3/myself", "/rest/api/3/myself", 0},
		{"GET /wiki/api/v2/spaces", "/wiki/api/v2/spaces", 0},
		{"GET /rest/api/3/myself", "/rest/api/3/myself", 30},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 4, 22, 10, 0, 0, 0, time.UTC)}
			env := newEnv(t, Options{Now: clk.Now})
			// Status 0 means 429.
			env.em.InjectFault(tt.route, Fault{OnlyRateLimitReset: true, RetryAfter: tt.retryAfter}, 1)
			resp, data := env.do("GET", tt.path, nil)
			if resp.StatusCode != 429 {
				t.Fatalf("status %d, want 429; body %s", resp.StatusCode, data)
			}
			wait := max(tt.retryAfter, 1)
			if got, want := resp.Header.Get("X-RateLimit-Reset"), clk.Now().Add(time.Duration(wait)*time.Second).Format(time.RFC3339); got != want {
				t.Errorf("X-RateLimit-Reset = %q, want %q", got, want)
			}
			for _, h := range []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "RateLimit-Reason"} {
				if v := resp.Header.Get(h); v != "" {
					t.Errorf("%s = %q, want none", h, v)
				}
			}
			env.expect("GET", tt.path, nil, 200, nil)
		})
	}
}

func TestOutageFor(t *testing.T) {
	t.Run("default clock", func(t *testing.T) {
		// Options.Now defaults to time.Now, the bubble's clock here.
		synctest.Test(t, func(t *testing.T) {
			em := New(Options{})
			em.SetOutageFor(503, 100*time.Millisecond)
			for _, path := range []string{"/rest/api/3/myself", "/wiki/api/v2/spaces"} {
				if rec := get(t.Context(), em, path); rec.Code != 503 {
					t.Errorf("GET %s during the outage: %d, want 503", path, rec.Code)
				}
			}
			time.Sleep(99 * time.Millisecond)
			if rec := get(t.Context(), em, "/rest/api/3/myself"); rec.Code != 503 {
				t.Errorf("just before the end: %d, want 503", rec.Code)
			}
			time.Sleep(time.Millisecond)
			if rec := get(t.Context(), em, "/rest/api/3/myself"); rec.Code != 200 {
				t.Errorf("after the outage: %d, want 200", rec.Code)
			}
		})
	})
	t.Run("fake clock", func(t *testing.T) {
		clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		env := newEnv(t, Options{Now: clk.Now})
		env.em.SetOutageFor(502, time.Minute)
		var st stateView
		env.expect("GET", "/_emulator/state", nil, 200, &st)
		if st.Outage == nil || st.Outage.Status != 502 || st.Outage.Until == nil || !st.Outage.Until.Equal(clk.Now().Add(time.Minute)) {
			t.Errorf("state outage = %+v", st.Outage)
		}
		clk.Advance(59 * time.Second)
		env.expect("GET", "/rest/api/3/myself", nil, 502, nil)
		clk.Advance(time.Second)
		env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
		env.expect("GET", "/_emulator/state", nil, 200, &st)
		if st.Outage != nil {
			t.Errorf("state outage after its end = %+v", st.Outage)
		}
	})
	t.Run("zero duration lasts until cleared", func(t *testing.T) {
		clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		env := newEnv(t, Options{Now: clk.Now})
		env.em.SetOutageFor(503, 0)
		clk.Advance(24 * time.Hour)
		env.expect("GET", "/rest/api/3/myself", nil, 503, nil)
		env.em.ClearOutage()
		env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
	})
}

// TestResetRetriedByGoTransport pins down the caveat documented on
// Fault.Reset: net/http retries an idempotent request by itself when a
// reused connection is reset, so the caller never sees a single reset.
func TestResetRetriedByGoTransport(t *testing.T) {
	env := newEnv(t, Options{})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", env.srv.URL+"/rest/api/3/myself", nil)
		req.SetBasicAuth(DefaultEmail, DefaultAPIToken)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if _, err := get(); err != nil { // opens the keep-alive connection
		t.Fatal(err)
	}
	env.em.InjectFault("GET /rest/api/3/myself", Fault{Reset: true}, 1)
	resp, err := get()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET on a reused connection: %v (want a silent retry)", err)
	}
	if got := env.em.Calls()["GET /rest/api/3/myself"]; got != 3 {
		t.Errorf("calls = %d, want 3 (one, reset, the transport's retry)", got)
	}
}

// TestInjectionFired: an injection counts the calls it answered, the
// count survives ClearFaults, and a route the emulator does not serve, or
// serves for another method, is refused rather than injected as a fault
// that never fires.
func TestInjectionFired(t *testing.T) {
	env := newEnv(t, Options{})
	myself := env.em.FailNext("GET /rest/api/3/myself", 503, 2)
	anyRoute := env.em.FailNext(AnyRoute, 500, 1)
	none := env.em.FailNext("GET /rest/api/3/myself", 503, 0)
	if myself.Fired() != 0 || anyRoute.Fired() != 0 {
		t.Errorf("fired before any call: %d, %d", myself.Fired(), anyRoute.Fired())
	}
	env.expect("GET", "/wiki/api/v2/spaces", nil, 500, nil) // only "*" matches
	env.expect("GET", "/rest/api/3/myself", nil, 503, nil)
	env.expect("GET", "/rest/api/3/myself", nil, 503, nil)
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
	if myself.Fired() != 2 || anyRoute.Fired() != 1 || none.Fired() != 0 {
		t.Errorf("fired %d, %d, %d; want 2, 1, 0", myself.Fired(), anyRoute.Fired(), none.Fired())
	}
	pending := env.em.FailNext("GET /rest/api/3/myself", 503, 3)
	env.expect("GET", "/rest/api/3/myself", nil, 503, nil)
	env.em.ClearFaults()
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
	if pending.Fired() != 1 {
		t.Errorf("fired %d after ClearFaults, want the 1 call before it", pending.Fired())
	}

	for _, route := range []string{"GET /rest/api/3/issues", "POST /rest/api/3/myself", "GET /rest/api/3/myself ", ""} {
		if _, err := env.em.AddFault(route, Fault{Status: 503}, 1); err == nil || !strings.Contains(err.Error(), "unknown route") {
			t.Errorf("AddFault(%q): %v, want an unknown route", route, err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("InjectFault(%q) did not panic", route)
				}
			}()
			env.em.InjectFault(route, Fault{Status: 503}, 1)
		}()
	}
	env.expect("GET", "/rest/api/3/myself", nil, 200, nil)
}
