// Package atlassian is the HTTP layer the Jira and Confluence clients share:
// one resty client per service with authentication, timeouts and JSON, and
// one error type that tells a transient failure (retry later: 5xx to our
// caller) from a permanent one. Retries, rate limiting and deadlines belong
// here, not in each integration.
package atlassian

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
)

// Auth is how the function authenticates to an Atlassian service: Cloud
// basic auth with an e-mail and API token, or a Data Center personal access
// token sent as a bearer token.
type Auth struct {
	Email    string
	APIToken string
	Bearer   string
	// Origin is what a CredentialSource returned, handed back to its
	// Invalidate.
	Origin any
}

// CredentialSource supplies the credentials for each call, so that a
// rotated secret is used without a restart.
type CredentialSource interface {
	Auth(ctx context.Context) (Auth, error)
	// Invalidate is called with the credentials that Atlassian answered
	// 401 to: the source refetches them once.
	Invalidate(stale Auth)
}

// StaticAuth is a CredentialSource that always returns a.
func StaticAuth(a Auth) CredentialSource { return staticAuth{a} }

type staticAuth struct{ a Auth }

func (s staticAuth) Auth(context.Context) (Auth, error) { return s.a, nil }
func (staticAuth) Invalidate(Auth)                      {}

// Options configure a Client.
type Options struct {
	BaseURL    string // e.g. https://x.atlassian.net or https://x.atlassian.net/wiki
	Service    string // "jira" or "confluence", for errors and metrics
	Auth       CredentialSource
	Timeout    time.Duration // per call
	UserAgent  string
	HTTPClient *http.Client // optional, for tests

	// Limiter spaces calls to the host; share one between the clients of
	// one host. nil: no client-side limit.
	Limiter Waiter
	// IssueWrites spaces writes to one issue (Jira allows 20 per 2 s and
	// 100 per 30 s per issue). nil: no spacing.
	IssueWrites *IssueLimiter
	// Retry is the retry policy; the zero value means DefaultRetry().
	Retry Retry
	// Observer is told about every call, retry and rate-limit wait.
	Observer Observer
}

// Waiter is a rate limiter: Wait blocks until a call may go or ctx ends.
// *TokenBucket is one.
type Waiter interface {
	Wait(ctx context.Context) error
}

// Retry is how transient failures are retried within one request.
type Retry struct {
	MaxRetries int // retries after the first attempt; negative: none

	Base time.Duration // first backoff; doubles each retry
	Max  time.Duration // cap of one backoff
	// RateLimitFallback is the wait after a 429 that says neither
	// Retry-After nor X-RateLimit-Reset (seen during a 2026 gateway
	// incident); Atlassian's own guidance starts at 2 s.
	RateLimitFallback time.Duration
}

// DefaultRetry follows Atlassian's guidance: Retry-After as the minimum,
// exponential backoff with jitter, about four retries. A function, not a
// variable, so that no caller can change another's policy.
func DefaultRetry() Retry {
	return Retry{MaxRetries: 4, Base: 250 * time.Millisecond, Max: 8 * time.Second, RateLimitFallback: 2 * time.Second}
}

// Observer receives what the client does, for metrics. Implementations
// must be safe for concurrent use.
type Observer interface {
	Request(service, op string, status int, d time.Duration)
	Retried(service, op string)
	RateLimitWait(service string, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) Request(string, string, int, time.Duration) {}
func (nopObserver) Retried(string, string)                     {}
func (nopObserver) RateLimitWait(string, time.Duration)        {}

// Client performs JSON calls against one Atlassian service.
type Client struct {
	r        *resty.Client
	creds    CredentialSource
	service  string
	limiter  Waiter
	issues   *IssueLimiter
	retry    Retry
	observer Observer
}

// New returns a client for one service.
func New(o Options) *Client {
	var r *resty.Client
	if o.HTTPClient != nil {
		r = resty.NewWithClient(o.HTTPClient)
	} else {
		r = resty.New()
	}
	r.SetBaseURL(strings.TrimRight(o.BaseURL, "/")).
		SetHeader("Accept", "application/json").
		SetHeader("User-Agent", cmp.Or(o.UserAgent, "rollback-incident")).
		SetTimeout(o.Timeout).
		SetDisableWarn(true).
		// Never log request or response dumps: they carry the
		// Authorization header.
		SetDebug(false)
	c := &Client{r: r, creds: o.Auth, service: o.Service, limiter: o.Limiter, issues: o.IssueWrites, retry: o.Retry, observer: o.Observer}
	if c.retry == (Retry{}) {
		c.retry = DefaultRetry()
	}
	if c.observer == nil {
		c.observer = nopObserver{}
	}
	if c.creds == nil {
		c.creds = StaticAuth(Auth{})
	}
	return c
}

// Call is one request.
type Call struct {
	Op     string // what the caller was doing, e.g. "create issue"
	Method string
	Path   string // relative to the base URL, may contain a query
	Query  map[string][]string
	Body   any // marshalled as JSON when non-nil
	// Result is decoded from a 2xx JSON answer when non-nil.
	Result any
	// Idempotent calls may be repeated after an answer was lost (502, 504,
	// a broken connection). Others (create issue, add comment) are
	// repeated only when the request surely did not take effect: 429, 503,
	// or a connection that was never made.
	Idempotent bool
	// Issue is the key of the issue a write goes to, for per-issue
	// spacing; empty for other calls.
	Issue string
}

// Do performs c, retrying transient failures within ctx's deadline, and
// returns the HTTP status of a 2xx answer, or an *Error. When the next
// retry would not fit before the deadline it returns the last error at
// once, so the caller can answer 503 while there is still time.
func (c *Client) Do(ctx context.Context, call Call) (int, error) {
	refreshed := false
	for attempt := 0; ; attempt++ {
		if err := c.wait(ctx, call); err != nil {
			return 0, err
		}
		auth, err := c.creds.Auth(ctx)
		if err != nil {
			// The source classifies its own failures (unavailable or
			// misconfigured); retrying here would only hammer it.
			return 0, fmt.Errorf("%s: %s: credentials: %w", c.service, call.Op, err)
		}
		status, err := c.once(ctx, call, auth)
		if err == nil {
			return status, nil
		}
		ae, ok := AsError(err)
		if ok && ae.Status == http.StatusUnauthorized && !refreshed {
			// Perhaps the token was rotated: fetch it again, once.
			refreshed = true
			c.creds.Invalidate(auth)
			attempt--
			continue
		}
		if !ok || attempt >= max(c.retry.MaxRetries, 0) || !retryable(ae, call) {
			return status, err
		}
		delay := c.backoff(attempt, ae)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
			return status, err
		}
		c.observer.Retried(c.service, call.Op)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return status, err
		}
	}
}

// wait takes a token from the host's limiter and, for a write to an issue,
// from the issue's. A wait that cannot end before the deadline fails at
// once as a temporary error.
func (c *Client) wait(ctx context.Context, call Call) error {
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > time.Millisecond {
			c.observer.RateLimitWait(c.service, d)
		}
	}()
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return &Error{Service: c.service, Op: call.Op, Temporary: true, RetryAfter: time.Second, cause: fmt.Errorf("client-side rate limit: %w", err)}
		}
	}
	if c.issues != nil && call.Issue != "" && call.Method != http.MethodGet {
		if err := c.issues.Wait(ctx, call.Issue); err != nil {
			return &Error{Service: c.service, Op: call.Op, Temporary: true, RetryAfter: 2 * time.Second, cause: fmt.Errorf("per-issue write limit: %w", err)}
		}
	}
	return nil
}

// retryable: 429, 502, 503, 504 and connection errors, and for
// non-idempotent calls only what surely did not take effect.
func retryable(e *Error, call Call) bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return call.Idempotent
	case 0:
		return e.Temporary && (call.Idempotent || neverSent(e.cause))
	}
	return false
}

// neverSent reports a failure to connect: the request did not leave.
func neverSent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// backoff is exponential with full jitter, at least what the server asked
// for in Retry-After or X-RateLimit-Reset.
func (c *Client) backoff(attempt int, e *Error) time.Duration {
	d := c.retry.Base << attempt
	if d > c.retry.Max || d <= 0 {
		d = c.retry.Max
	}
	d = d/2 + rand.N(d/2+1)
	if e.RetryAfter > d {
		d = e.RetryAfter
	}
	if e.Status == http.StatusTooManyRequests && e.RetryAfter == 0 && d < c.retry.RateLimitFallback {
		d = c.retry.RateLimitFallback
	}
	return d
}

func (c *Client) once(ctx context.Context, call Call, auth Auth) (int, error) {
	req := c.r.R().SetContext(ctx)
	if auth.Bearer != "" {
		req.SetAuthToken(auth.Bearer)
	} else {
		req.SetBasicAuth(auth.Email, auth.APIToken)
	}
	if tp := outgoingTraceparent(ctx); tp != "" {
		req.SetHeader("traceparent", tp)
	}
	if call.Body != nil {
		req.SetHeader("Content-Type", "application/json").SetBody(call.Body)
	}
	for k, vs := range call.Query {
		for _, v := range vs {
			req.QueryParam.Add(k, v)
		}
	}
	start := time.Now()
	resp, err := req.Execute(call.Method, call.Path)
	if err != nil {
		c.observer.Request(c.service, call.Op, 0, time.Since(start))
		return 0, &Error{Service: c.service, Op: call.Op, Temporary: transportTemporary(ctx, err), cause: err}
	}
	status := resp.StatusCode()
	c.observer.Request(c.service, call.Op, status, time.Since(start))
	if status < 200 || status > 299 {
		return status, newStatusError(c.service, call.Op, resp)
	}
	if call.Result != nil && status != http.StatusNoContent && len(bytes.TrimSpace(resp.Body())) > 0 {
		if err := json.Unmarshal(resp.Body(), call.Result); err != nil {
			return status, &Error{Service: c.service, Op: call.Op, Status: status, Detail: "unreadable JSON answer", cause: err}
		}
	}
	return status, nil
}

// Error is a failed Atlassian call. Its text names the service, the
// operation and the status, and quotes at most a short, credential-free
// part of the answer.
type Error struct {
	Service    string
	Op         string
	Status     int    // 0 when no answer arrived
	Detail     string // short text from the answer
	Temporary  bool   // retrying later may succeed
	RetryAfter time.Duration
	cause      error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.Service, e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	if e.Status == 0 && e.cause != nil {
		fmt.Fprintf(&b, ": %s", transportText(e.cause))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.cause }

// AsError returns the *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var ae *Error
	ok := errors.As(err, &ae)
	return ae, ok
}

// IsTemporary reports whether err is worth retrying later.
func IsTemporary(err error) bool {
	ae, ok := AsError(err)
	return ok && ae.Temporary
}

// HasStatus reports whether err is an Atlassian answer with that status.
func HasStatus(err error, status int) bool {
	ae, ok := AsError(err)
	return ok && ae.Status == status
}

func newStatusError(service, op string, resp *resty.Response) *Error {
	status := resp.StatusCode()
	e := &Error{Service: service, Op: op, Status: status, Detail: errorDetail(resp.Body())}
	switch {
	case status == http.StatusTooManyRequests, status >= 500 && status != http.StatusNotImplemented:
		e.Temporary = true
	case status == http.StatusRequestTimeout, status == http.StatusConflict:
		e.Temporary = true
	}
	e.RetryAfter = retryAfter(resp.Header(), time.Now())
	return e
}

// retryAfter reads Retry-After (seconds or HTTP date) and Jira's
// X-RateLimit-Reset (ISO-8601).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
			return time.Duration(s) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
	}
	if v := h.Get("X-RateLimit-Reset"); v != "" {
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z"} {
			if t, err := time.Parse(layout, v); err == nil {
				return max(t.Sub(now), 0)
			}
		}
	}
	return 0
}

// errorDetail extracts the human text of a Jira ({errorMessages, errors}) or
// Confluence ({errors:[{title}]}, {message}) error body, cut short.
func errorDetail(body []byte) string {
	var j struct {
		ErrorMessages []string        `json:"errorMessages"`
		Errors        json.RawMessage `json:"errors"`
		Message       string          `json:"message"`
	}
	if json.Unmarshal(body, &j) != nil {
		return ""
	}
	var parts []string
	parts = append(parts, j.ErrorMessages...)
	var fields map[string]string
	if json.Unmarshal(j.Errors, &fields) == nil {
		for k, v := range fields {
			parts = append(parts, k+": "+v)
		}
	}
	var list []struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(j.Errors, &list) == nil {
		for _, e := range list {
			parts = append(parts, cmp.Or(e.Title, e.Detail))
		}
	}
	if j.Message != "" {
		parts = append(parts, j.Message)
	}
	s := strings.Join(parts, "; ")
	if r := []rune(s); len(r) > 300 {
		s = string(r[:299]) + "…"
	}
	return s
}

// transportTemporary: connection problems and timeouts are transient, but
// not the caller's own cancellation.
func transportTemporary(ctx context.Context, err error) bool {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return false
	}
	return true
}

// transportText describes a transport error without the URL resty and
// net/http put in front (it is the configured base URL, harmless, but the
// message reads better without it).
func transportText(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return "connection failed"
	}
	return err.Error()
}
