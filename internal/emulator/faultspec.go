package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseFault parses the -fault flag of cmd/atlassian-emulator:
//
//	ROUTE=STATUS[xCOUNT][,delay=D][,delay-after=D][,applied][,retry-after=N][,reason=R][,reset][,no-retry-after][,only-reset-header]
//
// for example "POST /rest/api/3/issue=503x2", "*=429x3,no-retry-after",
// "POST /wiki/api/v2/pages=0,delay=30s" (a slow answer), or the two ways
// a write takes effect and its answer is lost: "…=0,applied,reset" (reset
// after the write) and "…=0,applied" (no answer until the caller times
// out). ROUTE is "*" or a route pattern; only its form is checked here,
// Emulator.Routes lists the valid ones. STATUS 0 means no error status: a
// slow answer, a reset connection, or a served call whose answer is lost.
// COUNT defaults to 1. The result is for AddFault, which checks the route.
func ParseFault(s string) (route string, f Fault, n int, err error) {
	route, spec, ok := strings.Cut(s, "=")
	route = strings.TrimSpace(route)
	if !ok {
		return "", Fault{}, 0, fmt.Errorf("fault %q: want ROUTE=STATUS[xCOUNT][,option...]", s)
	}
	if err := checkRouteForm(route); err != nil {
		return "", Fault{}, 0, fmt.Errorf("fault %q: %w", s, err)
	}
	parts := strings.Split(spec, ",")
	status, count, hasCount := strings.Cut(strings.TrimSpace(parts[0]), "x")
	if f.Status, err = strconv.Atoi(status); err != nil {
		return "", Fault{}, 0, fmt.Errorf("fault %q: status %q is not a number", s, status)
	}
	n = 1
	if hasCount {
		if n, err = strconv.Atoi(count); err != nil || n < 1 {
			return "", Fault{}, 0, fmt.Errorf("fault %q: count %q: want a positive number", s, count)
		}
	}
	for _, opt := range parts[1:] {
		name, val, hasVal := strings.Cut(strings.TrimSpace(opt), "=")
		var optErr error
		switch {
		case name == "delay" && hasVal:
			f.Delay, optErr = time.ParseDuration(val)
		case name == "delay-after" && hasVal:
			f.DelayAfter, optErr = time.ParseDuration(val)
		case name == "retry-after" && hasVal:
			f.RetryAfter, optErr = strconv.Atoi(val)
		case name == "reason" && hasVal:
			f.Reason = val
		case name == "reset" && !hasVal:
			f.Reset = true
		case name == "applied" && !hasVal:
			f.Applied = true
		case name == "no-retry-after" && !hasVal:
			f.NoRetryAfter = true
		case name == "only-reset-header" && !hasVal:
			f.OnlyRateLimitReset = true
		default:
			optErr = errors.New("unknown option; want delay=D, delay-after=D, applied, retry-after=N, reason=R, reset, no-retry-after or only-reset-header")
		}
		if optErr != nil {
			return "", Fault{}, 0, fmt.Errorf("fault %q: option %q: %w", s, opt, optErr)
		}
	}
	f = normalizeFault(f)
	if err := checkFault(f); err != nil {
		return "", Fault{}, 0, fmt.Errorf("fault %q: %w", s, err)
	}
	return route, f, n, nil
}

// ParseOutage parses the -outage flag of cmd/atlassian-emulator,
// "STATUS[:DURATION]", e.g. "503:30s"; without a duration the outage lasts
// until cleared. The result is for SetOutageFor.
func ParseOutage(s string) (status int, d time.Duration, err error) {
	st, dur, hasDur := strings.Cut(strings.TrimSpace(s), ":")
	if status, err = strconv.Atoi(st); err != nil {
		return 0, 0, fmt.Errorf("outage %q: status %q is not a number", s, st)
	}
	if err := checkErrorStatus(status); err != nil {
		return 0, 0, fmt.Errorf("outage %q: %w", s, err)
	}
	if hasDur {
		if d, err = time.ParseDuration(dur); err != nil || d <= 0 {
			return 0, 0, fmt.Errorf("outage %q: duration %q: want a positive Go duration such as 30s", s, dur)
		}
	}
	return status, d, nil
}

// normalizeFault fills in the status an option implies.
func normalizeFault(f Fault) Fault {
	if f.OnlyRateLimitReset && f.Status == 0 {
		f.Status = http.StatusTooManyRequests
	}
	return f
}

// checkFault rejects faults that are contradictory or do nothing. The Go
// API stays permissive; this guards the flag and the admin API, where a
// typo should not silently become a no-op fault.
func checkFault(f Fault) error {
	switch {
	case f.Status != 0 && checkErrorStatus(f.Status) != nil:
		return fmt.Errorf("status %d: want 400-599, or 0 for a slow answer or a reset", f.Status)
	case f.RetryAfter < 0:
		return errors.New("retry-after must not be negative")
	case f.Delay < 0 || f.DelayAfter < 0:
		return errors.New("delays must not be negative")
	case f.Reset && f.Status != 0:
		return errors.New("a reset connection has no status; use status 0")
	case f.OnlyRateLimitReset && f.Status != http.StatusTooManyRequests:
		return errors.New("only-reset-header applies to 429 only")
	case f.applied() && f.Status != 0:
		return errors.New("applied and delay-after serve the call, so they need status 0")
	case f.Status == 0 && !f.Reset && !f.applied() && f.Delay == 0:
		return errors.New("status 0 needs a delay, delay-after, applied or reset, or the fault does nothing")
	}
	return nil
}

func checkErrorStatus(status int) error {
	if status < 400 || status > 599 {
		return fmt.Errorf("status %d: want an error status, 400-599", status)
	}
	return nil
}

// checkRouteForm checks that route is "*" or looks like "METHOD /path".
func checkRouteForm(route string) error {
	if route == AnyRoute {
		return nil
	}
	method, path, _ := strings.Cut(route, " ")
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
		if strings.HasPrefix(path, "/") {
			return nil
		}
	}
	return fmt.Errorf("route %q: want \"*\" or a pattern such as \"POST /rest/api/3/issue\"", route)
}
