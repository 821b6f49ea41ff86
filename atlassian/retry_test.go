package atlassian

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// inProcess serves a client's calls with a handler, without a network:
// network I/O is not durably blocking, so a synctest bubble's clock would
// not advance past a call that used it.
type inProcess struct{ http.Handler }

func (p inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w.Result(), nil
}

// inProcessClient is a client of h with options o, for use in a bubble.
func inProcessClient(h http.HandlerFunc, o Options) *Client {
	o.BaseURL, o.Service, o.Timeout = "http://jira.test", "jira", time.Minute
	o.HTTPClient = &http.Client{Transport: inProcess{h}}
	return New(o)
}

// TestRetryRespectsDeadline: a Retry-After beyond the deadline is not
// waited for; the caller gets the error while it can still answer.
func TestRetryRespectsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := inProcessClient(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		}, Options{})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Do(ctx, Call{Op: "x", Method: http.MethodGet, Path: "/", Idempotent: true})
		ae, ok := AsError(err)
		if !ok || ae.Status != 429 || ae.RetryAfter != 30*time.Second || time.Since(start) != 0 {
			t.Errorf("err %v after %v, want the 429 at once", err, time.Since(start))
		}
	})
}

// TestRetryDelays: the wait before each retry is what the server asked
// for, the fallback after a bare 429, or the jittered backoff.
func TestRetryDelays(t *testing.T) {
	retry := Retry{MaxRetries: 4, Base: 100 * time.Millisecond, Max: 300 * time.Millisecond, RateLimitFallback: 2 * time.Second}
	tests := []struct {
		name     string
		header   string // Retry-After of every failed answer
		status   int    // of the failed answers; the last answer is 200
		failures int
		// each gap between attempts must lie in [min, max]
		min, max []time.Duration
	}{
		{"Retry-After", "3", 429, 2, []time.Duration{3 * time.Second, 3 * time.Second}, []time.Duration{3 * time.Second, 3 * time.Second}},
		{"bare 429: the fallback", "", 429, 1, []time.Duration{2 * time.Second}, []time.Duration{2 * time.Second}},
		{"503: backoff doubles to Max, jittered to its upper half", "", 503, 4,
			[]time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var at []time.Time
				c := inProcessClient(func(w http.ResponseWriter, r *http.Request) {
					at = append(at, time.Now())
					if len(at) > tc.failures {
						return
					}
					if tc.header != "" {
						w.Header().Set("Retry-After", tc.header)
					}
					w.WriteHeader(tc.status)
				}, Options{Retry: retry})
				if _, err := c.Do(t.Context(), Call{Op: "x", Method: http.MethodGet, Path: "/", Idempotent: true}); err != nil {
					t.Fatal(err)
				}
				if len(at) != tc.failures+1 {
					t.Fatalf("%d attempts, want %d", len(at), tc.failures+1)
				}
				for i := range tc.failures {
					if gap := at[i+1].Sub(at[i]); gap < tc.min[i] || gap > tc.max[i] {
						t.Errorf("retry %d after %v, want [%v, %v]", i+1, gap, tc.min[i], tc.max[i])
					}
				}
			})
		})
	}
}

// TestRateLimiterSpacesCalls: concurrent calls go out one per interval of
// the host's bucket, and a wait past the deadline fails at once.
func TestRateLimiterSpacesCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		h := func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			at = append(at, time.Since(start))
			mu.Unlock()
		}
		rec := &recorder{}
		c := inProcessClient(h, Options{Limiter: NewTokenBucket(20, 1), Observer: rec})
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				_, _ = c.Do(t.Context(), Call{Op: "x", Method: http.MethodGet, Path: "/", Idempotent: true})
			})
		}
		wg.Wait()
		slices.Sort(at)
		want := []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, 200 * time.Millisecond, 250 * time.Millisecond}
		if !slices.Equal(at, want) {
			t.Errorf("6 calls at 20/s burst 1 went at %v, want %v", at, want)
		}
		if rec.waited != 750*time.Millisecond {
			t.Errorf("observer saw %v of waiting, want 750ms", rec.waited)
		}
		// A wait that cannot end before the deadline fails at once, temporary.
		slow := inProcessClient(h, Options{Limiter: NewTokenBucket(1.0/3600, 1)})
		_, _ = slow.Do(t.Context(), Call{Op: "x", Method: http.MethodGet, Path: "/"})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, err := slow.Do(ctx, Call{Op: "x", Method: http.MethodGet, Path: "/"}); !IsTemporary(err) || !strings.Contains(err.Error(), "rate limit") || time.Since(start) != 0 {
			t.Errorf("err %v after %v", err, time.Since(start))
		}
	})
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
