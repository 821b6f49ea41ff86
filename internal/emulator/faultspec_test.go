package emulator

import (
	"testing"
	"time"
)

func TestParseFault(t *testing.T) {
	tests := []struct {
		in        string
		wantRoute string
		want      Fault
		wantN     int
		wantErr   bool
	}{
		{in: "POST /rest/api/3/issue=503x2", wantRoute: "POST /rest/api/3/issue", want: Fault{Status: 503}, wantN: 2},
		{in: "*=429", wantRoute: "*", want: Fault{Status: 429}, wantN: 1},
		{in: " GET /wiki/api/v2/pages = 500 ", wantRoute: "GET /wiki/api/v2/pages", want: Fault{Status: 500}, wantN: 1},
		{in: "*=503x3,delay=2s", wantRoute: "*", want: Fault{Status: 503, Delay: 2 * time.Second}, wantN: 3},
		{in: "POST /wiki/api/v2/pages=0,delay=30s", wantRoute: "POST /wiki/api/v2/pages", want: Fault{Delay: 30 * time.Second}, wantN: 1},
		{in: "*=0x2,reset", wantRoute: "*", want: Fault{Reset: true}, wantN: 2},
		{in: "POST /rest/api/3/issue=0,delay-after=1s,reset", wantRoute: "POST /rest/api/3/issue", want: Fault{DelayAfter: time.Second, Reset: true}, wantN: 1},
		{in: "POST /rest/api/3/issue/{issueIdOrKey}/comment=0,applied,reset", wantRoute: "POST /rest/api/3/issue/{issueIdOrKey}/comment", want: Fault{Applied: true, Reset: true}, wantN: 1},
		{in: "PUT /rest/api/content/{id}=0x2,applied", wantRoute: "PUT /rest/api/content/{id}", want: Fault{Applied: true}, wantN: 2},
		{in: "*=429,no-retry-after", wantRoute: "*", want: Fault{Status: 429, NoRetryAfter: true}, wantN: 1},
		{in: "*=429,only-reset-header", wantRoute: "*", want: Fault{Status: 429, OnlyRateLimitReset: true}, wantN: 1},
		{in: "*=0,only-reset-header", wantRoute: "*", want: Fault{Status: 429, OnlyRateLimitReset: true}, wantN: 1},
		{in: "*=429,retry-after=5,reason=jira-per-issue-on-write", wantRoute: "*", want: Fault{Status: 429, RetryAfter: 5, Reason: "jira-per-issue-on-write"}, wantN: 1},

		{in: "", wantErr: true},
		{in: "*", wantErr: true},
		{in: "=503", wantErr: true},
		{in: "/rest/api/3/issue=503", wantErr: true},
		{in: "PATCH /rest/api/3/issue=503", wantErr: true},
		{in: "*=abc", wantErr: true},
		{in: "*=503x", wantErr: true},
		{in: "*=503x0", wantErr: true},
		{in: "*=200", wantErr: true},
		{in: "*=0", wantErr: true},
		{in: "*=503,delay", wantErr: true},
		{in: "*=503,delay=fast", wantErr: true},
		{in: "*=503,delay=-1s", wantErr: true},
		{in: "*=503,reset", wantErr: true},
		{in: "*=503,reset=yes", wantErr: true},
		{in: "*=503,only-reset-header", wantErr: true},
		{in: "*=503,retry-after=x", wantErr: true},
		{in: "*=503,verbose", wantErr: true},
		{in: "*=503,applied", wantErr: true},
		{in: "*=0,applied=yes", wantErr: true},
	}
	for _, tt := range tests {
		route, f, n, err := ParseFault(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseFault(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if tt.wantErr {
			continue
		}
		if route != tt.wantRoute || f != tt.want || n != tt.wantN {
			t.Errorf("ParseFault(%q) = %q, %+v, %d; want %q, %+v, %d", tt.in, route, f, n, tt.wantRoute, tt.want, tt.wantN)
		}
	}
}

func TestParseOutage(t *testing.T) {
	tests := []struct {
		in         string
		wantStatus int
		wantD      time.Duration
		wantErr    bool
	}{
		{"503:30s", 503, 30 * time.Second, false},
		{"502", 502, 0, false},
		{" 500:1m30s ", 500, 90 * time.Second, false},
		{"", 0, 0, true},
		{"503:", 0, 0, true},
		{"503:0s", 0, 0, true},
		{"503:-1s", 0, 0, true},
		{"503:soon", 0, 0, true},
		{"200:30s", 0, 0, true},
		{"down", 0, 0, true},
	}
	for _, tt := range tests {
		status, d, err := ParseOutage(tt.in)
		if (err != nil) != tt.wantErr || status != tt.wantStatus || d != tt.wantD {
			t.Errorf("ParseOutage(%q) = %d, %v, %v; want %d, %v, error %v", tt.in, status, d, err, tt.wantStatus, tt.wantD, tt.wantErr)
		}
	}
}
