package atlassian

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 1, 1, 0, 0, time.UTC)
	tests := []struct {
		header map[string]string
		want   time.Duration
	}{
		{map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{map[string]string{"Retry-After": "Thu, 01 Jan 2026 01:01:30 GMT"}, 30 * time.Second},
		{map[string]string{"X-RateLimit-Reset": "2026-01-01T01:01:05Z"}, 5 * time.Second},
		{map[string]string{"X-RateLimit-Reset": "2026-01-01T01:02Z"}, time.Minute},
		{map[string]string{"Retry-After": "soon"}, 0},
		{nil, 0},
	}
	for _, tc := range tests {
		h := http.Header{}
		for k, v := range tc.header {
			h.Set(k, v)
		}
		if got := retryAfter(h, now); got != tc.want {
			t.Errorf("retryAfter(%v) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	var status int
	var body string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The credentials travel as basic auth and nowhere else.
		if got := r.Header.Get("Authorization"); got != "Basic "+base64.StdEncoding.EncodeToString([]byte("bot@example.com:tok-SECRET")) {
			t.Errorf("Authorization = %q", got)
		}
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer ts.Close()
	c := New(Options{BaseURL: ts.URL, Service: "jira", Auth: StaticAuth(Auth{Email: "bot@example.com", APIToken: "tok-SECRET"}), Timeout: 2 * time.Second, Retry: Retry{MaxRetries: -1}})
	tests := []struct {
		status    int
		body      string
		temporary bool
		detail    string
	}{
		{429, `{"errorMessages":["Rate limit exceeded."],"errors":{}}`, true, "Rate limit exceeded."},
		{503, `upstream down`, true, ""},
		{500, `{"errorMessages":["Internal server error"]}`, true, "Internal server error"},
		{501, ``, false, ""},
		{400, `{"errorMessages":[],"errors":{"project":"valid project is required"}}`, false, "project: valid project is required"},
		{400, `{"errors":[{"status":400,"code":"INVALID_REQUEST_PARAMETER","title":"A page with this title already exists: A page already exists with the same TITLE in this space","detail":null}]}`, false, "A page with this title already exists"},
		{401, `{"errorMessages":["Client must be authenticated to access this resource."],"errors":{}}`, false, "Client must be authenticated"},
	}
	for _, tc := range tests {
		status, body = tc.status, tc.body
		_, err := c.Do(context.Background(), Call{Op: "create issue", Method: http.MethodPost, Path: "/rest/api/3/issue", Body: map[string]string{"a": "b"}})
		ae, ok := AsError(err)
		if !ok {
			t.Fatalf("%d: err %v is no *Error", tc.status, err)
		}
		if ae.Temporary != tc.temporary || ae.Status != tc.status || !strings.Contains(ae.Detail, tc.detail) {
			t.Errorf("%d: %+v", tc.status, ae)
		}
		if ae.RetryAfter != 3*time.Second {
			t.Errorf("%d: RetryAfter %v", tc.status, ae.RetryAfter)
		}
		if strings.Contains(err.Error(), "SECRET") || !strings.HasPrefix(err.Error(), "jira: create issue: ") {
			t.Errorf("%d: error text %q", tc.status, err)
		}
	}
	ts.Close()
	_, err := c.Do(context.Background(), Call{Op: "search issues", Method: http.MethodGet, Path: "/x"})
	if !IsTemporary(err) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("connection refused: %v temporary=%v", err, IsTemporary(err))
	}
}
