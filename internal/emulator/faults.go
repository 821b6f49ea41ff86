package emulator

import (
	"net/http"
	"strconv"
	"time"
)

// AnyRoute matches every API route in FailNext and InjectFault.
const AnyRoute = "*"

// Fault describes an injected failure response.
type Fault struct {
	// Status is the HTTP status to answer with, e.g. 429 or 503.
	Status int
	// NoRetryAfter suppresses the Retry-After header that 429 and 503
	// responses otherwise carry, like the gateway-level 429s Atlassian
	// has been observed to send.
	NoRetryAfter bool
	// RetryAfter is the Retry-After value in seconds for 429/503;
	// 0 means 1.
	RetryAfter int
	// Reason is the RateLimit-Reason header of a 429; default
	// "jira-burst-based" for Jira routes and none for Confluence.
	Reason string
	// Delay holds the answer back this long first. With Status 0 the call
	// is then served normally: a slow but successful answer.
	Delay time.Duration
	// DelayAfter serves the call at once (it takes effect) and holds the
	// answer back this long: a caller that dies meanwhile never learns the
	// outcome. Used with Status 0.
	DelayAfter time.Duration
}

type faultRule struct {
	route     string
	fault     Fault
	remaining int
}

// FailNext makes the next n calls to routePattern (a pattern as listed in
// Calls, e.g. "POST /rest/api/3/issue", or "*" for any API route) answer
// status with a plausible error body; 429 and 503 also carry
// "Retry-After: 1". Rules queue up in the order they were added.
func (e *Emulator) FailNext(routePattern string, status, n int) {
	e.InjectFault(routePattern, Fault{Status: status}, n)
}

// InjectFault is FailNext with full control over the response.
func (e *Emulator) InjectFault(routePattern string, f Fault, n int) {
	if n <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, &faultRule{route: routePattern, fault: f, remaining: n})
}

// SetOutage makes every API route answer status until ClearOutage.
func (e *Emulator) SetOutage(status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outage = &Fault{Status: status}
}

// ClearOutage ends an outage started by SetOutage.
func (e *Emulator) ClearOutage() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outage = nil
}

// ClearFaults drops pending FailNext/InjectFault rules and any outage.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = nil
	e.outage = nil
}

func (e *Emulator) takeFaultLocked(route string) *Fault {
	if e.outage != nil {
		f := *e.outage
		return &f
	}
	for i, rule := range e.faults {
		if rule.route != AnyRoute && rule.route != route {
			continue
		}
		f := rule.fault
		rule.remaining--
		if rule.remaining <= 0 {
			e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
		}
		return &f
	}
	return nil
}

// writeFault answers with f in the dialect of fl, including the rate-limit
// headers Atlassian sends with 429s.
func writeFault(w http.ResponseWriter, fl flavor, f Fault, now time.Time) {
	h := w.Header()
	retry := f.RetryAfter
	if retry <= 0 {
		retry = 1
	}
	if (f.Status == http.StatusTooManyRequests || f.Status == http.StatusServiceUnavailable) && !f.NoRetryAfter {
		h.Set("Retry-After", strconv.Itoa(retry))
	}
	msg := http.StatusText(f.Status)
	if f.Status == http.StatusTooManyRequests {
		h.Set("X-RateLimit-Limit", "100")
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", now.UTC().Add(time.Duration(retry)*time.Second).Format("2006-01-02T15:04:05Z"))
		reason := f.Reason
		if reason == "" && fl == jiraAPI {
			reason = "jira-burst-based"
		}
		if reason != "" {
			h.Set("RateLimit-Reason", reason)
		}
		msg = "Rate limit exceeded."
	}
	if msg == "" {
		msg = "Injected fault " + strconv.Itoa(f.Status)
	}
	apiError(w, fl, f.Status, msg)
}
