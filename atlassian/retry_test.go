package atlassian

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type recorder struct {
	mu       sync.Mutex
	statuses []int
	retries  int
	waited   time.Duration
}

func (r *recorder) Request(_, _ string, status int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, status)
}
func (r *recorder) Retried(string, string) { r.mu.Lock(); r.retries++; r.mu.Unlock() }
func (r *recorder) RateLimitWait(_ string, d time.Duration) {
	r.mu.Lock()
	r.waited += d
	r.mu.Unlock()
}

var fastRetry = Retry{MaxRetries: 4, Base: time.Millisecond, Max: 5 * time.Millisecond, RateLimitFallback: 5 * time.Millisecond}

// TestRetryPolicy: what is retried, how often, and what is not.
func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name       string
		answers    []int // statuses in order; 200 ends
		idempotent bool
		wantCalls  int
		wantErr    bool
	}{
		{"503 then ok", []int{503, 503, 200}, false, 3, false},
		{"429 then ok", []int{429, 200}, false, 2, false},
		{"502 idempotent", []int{502, 504, 200}, true, 3, false},
		{"502 not idempotent: the answer may be lost after the write", []int{502, 200}, false, 1, true},
		{"500 is not retried", []int{500, 200}, true, 1, true},
		{"400 is not retried", []int{400, 200}, true, 1, true},
		{"401 is retried once with fresh credentials", []int{401, 200}, true, 2, false},
		{"401 twice is final", []int{401, 401, 200}, true, 2, true},
		{"gives up after MaxRetries", []int{503, 503, 503, 503, 503, 503}, true, 5, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				w.WriteHeader(tc.answers[min(i, len(tc.answers)-1)])
				_, _ = w.Write([]byte(`{}`))
			}))
			defer ts.Close()
			rec := &recorder{}
			c := New(Options{BaseURL: ts.URL, Service: "jira", Timeout: time.Second, Retry: fastRetry, Observer: rec})
			_, err := c.Do(context.Background(), Call{Op: "x", Method: http.MethodPost, Path: "/", Body: map[string]int{}, Idempotent: tc.idempotent})
			if (err != nil) != tc.wantErr || int(n.Load()) != tc.wantCalls {
				t.Errorf("calls %d err %v, want %d calls, error %v", n.Load(), err, tc.wantCalls, tc.wantErr)
			}
			wantRetries := tc.wantCalls - 1
			if tc.answers[0] == 401 {
				wantRetries = 0 // a credential refresh is not a retry
			}
			if rec.retries != wantRetries || len(rec.statuses) != tc.wantCalls {
				t.Errorf("observer: %d retries %v statuses", rec.retries, rec.statuses)
			}
		})
	}
}

func TestRetryConnectionRefused(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	rec := &recorder{}
	c := New(Options{BaseURL: url, Service: "jira", Timeout: time.Second, Retry: fastRetry, Observer: rec})
	// A refused connection never carried the request: safe to retry even a
	// create.
	_, err := c.Do(context.Background(), Call{Op: "create issue", Method: http.MethodPost, Path: "/", Body: map[string]int{}})
	if !IsTemporary(err) || rec.retries != 4 {
		t.Errorf("err %v, %d retries", err, rec.retries)
	}
}

func TestBackoffHonoursServer(t *testing.T) {
	c := New(Options{Retry: Retry{MaxRetries: 4, Base: 100 * time.Millisecond, Max: time.Second, RateLimitFallback: 2 * time.Second}})
	for attempt := range 6 {
		d := c.backoff(attempt, &Error{Status: 503})
		if d < 0 || d > time.Second {
			t.Errorf("attempt %d: %v outside [0, 1s]", attempt, d)
		}
	}
	if d := c.backoff(0, &Error{Status: 429, RetryAfter: 7 * time.Second}); d != 7*time.Second {
		t.Errorf("Retry-After 7s: %v", d)
	}
	if d := c.backoff(0, &Error{Status: 429}); d != 2*time.Second {
		t.Errorf("429 without Retry-After: %v, want the 2 s fallback", d)
	}
}

// TestRetryRespectsDeadline: a Retry-After beyond the deadline is not
// waited for; the caller gets the error while it can still answer.
func TestRetryRespectsDeadline(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer ts.Close()
	c := New(Options{BaseURL: ts.URL, Service: "jira", Timeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, Call{Op: "x", Method: http.MethodGet, Path: "/", Idempotent: true})
	ae, ok := AsError(err)
	if !ok || ae.Status != 429 || ae.RetryAfter != 30*time.Second || time.Since(start) > time.Second {
		t.Errorf("err %v after %v", err, time.Since(start))
	}
}

func TestRateLimiterSpacesCalls(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer ts.Close()
	rec := &recorder{}
	c := New(Options{BaseURL: ts.URL, Service: "jira", Timeout: time.Second, Limiter: NewTokenBucket(20, 1), Observer: rec})
	start := time.Now()
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Do(context.Background(), Call{Op: "x", Method: http.MethodGet, Path: "/", Idempotent: true})
		}()
	}
	wg.Wait()
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("6 calls at 20/s burst 1 took %v, want ≥ 250 ms", el)
	}
	if rec.waited == 0 || calls.Load() != 6 {
		t.Errorf("waited %v, %d calls", rec.waited, calls.Load())
	}
	// A wait that cannot end before the deadline fails at once, temporary.
	slow := New(Options{BaseURL: ts.URL, Service: "jira", Timeout: time.Second, Limiter: NewTokenBucket(1.0/3600, 1)})
	_, _ = slow.Do(context.Background(), Call{Op: "x", Method: http.MethodGet, Path: "/"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := slow.Do(ctx, Call{Op: "x", Method: http.MethodGet, Path: "/"}); !IsTemporary(err) || !strings.Contains(err.Error(), "rate limit") {
		t.Errorf("err %v", err)
	}
}

func TestTraceparentCarried(t *testing.T) {
	got := make(chan string, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("traceparent") }))
	defer ts.Close()
	c := New(Options{BaseURL: ts.URL, Service: "jira", Timeout: time.Second})
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := WithTraceparent(context.Background(), in)
	if TraceID(ctx) != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %q", TraceID(ctx))
	}
	_, _ = c.Do(ctx, Call{Op: "x", Method: http.MethodGet, Path: "/"})
	out := <-got
	if len(out) != 55 || out[:36] != in[:36] || out[52:] != in[52:] || out[36:52] == in[36:52] {
		t.Errorf("outgoing traceparent %q for %q: same trace, new span id", out, in)
	}
	for _, bad := range []string{"", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"} {
		if WithTraceparent(context.Background(), bad) != context.Background() {
			t.Errorf("accepted invalid traceparent %q", bad)
		}
	}
}

// TestRefreshOn401: a 401 hands the refused credentials back to the
// source, which fetches them again; the call is repeated once with the new
// ones (a token rotated without a restart).
func TestRefreshOn401(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, _ := r.BasicAuth(); pass != "new-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer ts.Close()
	src := &rotating{current: Auth{Email: "bot@example.com", APIToken: "old-token"}}
	c := New(Options{BaseURL: ts.URL, Service: "jira", Timeout: time.Second, Auth: src})
	if _, err := c.Do(context.Background(), Call{Op: "x", Method: http.MethodGet, Path: "/"}); err != nil {
		t.Fatal(err)
	}
	if src.invalidated != 1 {
		t.Errorf("%d invalidations, want 1", src.invalidated)
	}
}

type rotating struct {
	mu          sync.Mutex
	current     Auth
	invalidated int
}

func (r *rotating) Auth(context.Context) (Auth, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current, nil
}

func (r *rotating) Invalidate(stale Auth) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.invalidated++
	if stale.APIToken == r.current.APIToken {
		r.current.APIToken = "new-token"
	}
}
