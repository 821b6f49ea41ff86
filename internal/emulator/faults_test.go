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
	t.Run("real time", func(t *testing.T) {
		env := newEnv(t, Options{})
		env.em.SetOutageFor(503, 100*time.Millisecond)
		env.expect("GET", "/rest/api/3/myself", nil, 503, nil)
		env.expect("GET", "/wiki/api/v2/spaces", nil, 503, nil)
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, _ := env.do("GET", "/rest/api/3/myself", nil)
			if resp.StatusCode == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("outage did not end: status %d", resp.StatusCode)
			}
			time.Sleep(20 * time.Millisecond)
		}
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
