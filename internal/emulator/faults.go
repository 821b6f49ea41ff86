package emulator

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AnyRoute matches every API route in FailNext and InjectFault.
const AnyRoute = "*"

// Fault describes an injected failure response.
//
// A client timeout is emulated with a Delay longer than the client's
// timeout: the client gives up and the call does not take effect. With
// DelayAfter instead, the call takes effect and only the answer is late.
//
// "Took effect, answer lost", the case a client that must not duplicate
// writes has to survive, is Applied: the call is served (its state change
// is made) and then, instead of the answer, the connection is reset
// (Applied with Reset) or nothing comes until the caller gives up
// (Applied alone).
type Fault struct {
	// Status is the HTTP status to answer with, e.g. 429 or 503.
	Status int
	// NoRetryAfter suppresses the Retry-After header that 429 and 503
	// responses otherwise carry, like the gateway-level 429s Atlassian
	// has been observed to send.
	NoRetryAfter bool
	// OnlyRateLimitReset answers a 429 whose only rate-limit header is
	// X-RateLimit-Reset: no Retry-After, X-RateLimit-Limit/-Remaining or
	// RateLimit-Reason. Atlassian's gateway sent exactly this during the
	// 2026-04-22/23 incident, so clients need a fallback that reads the
	// reset time. Status 0 means 429.
	OnlyRateLimitReset bool
	// RetryAfter is the Retry-After value in seconds for 429/503;
	// 0 means 1. X-RateLimit-Reset is now plus this many seconds.
	RetryAfter int
	// Reason is the RateLimit-Reason header of a 429; default
	// "jira-burst-based" for Jira Cloud routes and none for Confluence,
	// Data Center and Backstage routes.
	Reason string
	// Delay holds the answer back this long first. With Status 0 the call
	// is then served normally: a slow but successful answer.
	Delay time.Duration
	// DelayAfter serves the call at once (it takes effect) and holds the
	// answer back this long: a caller that dies meanwhile never learns the
	// outcome. Used with Status 0.
	DelayAfter time.Duration
	// Applied serves the call first, so it takes effect, and then loses
	// its answer: with Reset the connection is reset at once (after
	// DelayAfter, if set); without Reset the answer is held until the
	// caller gives up (or, with DelayAfter, for that long and then sent).
	// Used with Status 0. DelayAfter implies Applied.
	Applied bool
	// Reset drops the connection with a TCP RST instead of answering (after
	// Delay, if any); the client sees "connection reset by peer" and
	// Status is ignored. The call does not take effect, unless Applied or
	// DelayAfter is set too: then it takes effect and the reset replaces
	// the answer, the worst case for a client that must not duplicate
	// writes.
	//
	// Go's http.Transport retries an idempotent request (GET, or one with
	// an Idempotency-Key header) once by itself when a reused keep-alive
	// connection is reset, so one reset on a GET can go unnoticed.
	Reset bool
}

// applied reports whether the call is served before the fault acts, so
// that it takes effect whatever the caller sees.
func (f *Fault) applied() bool { return f.Applied || f.DelayAfter > 0 }

type faultRule struct {
	route     string
	fault     Fault
	n         int // the calls it was injected for
	remaining int
}

// Injection is a fault rule added by InjectFault, FailNext or AddFault,
// for a test to check that the fault it injected was met: a fault that
// never fires proves nothing about the code under test.
type Injection struct {
	e    *Emulator
	rule *faultRule
}

// Fired returns how many calls the fault has answered so far, at most the
// n it was injected for; a rule dropped by ClearFaults or Reset keeps its
// count.
func (in *Injection) Fired() int {
	in.e.mu.Lock()
	defer in.e.mu.Unlock()
	return in.rule.n - in.rule.remaining
}

// outage is an outage started by SetOutage or SetOutageFor.
type outage struct {
	status int
	until  time.Time // zero: until cleared
}

// FailNext makes the next n calls to routePattern (a pattern as listed in
// Routes, e.g. "POST /rest/api/3/issue", or "*" for any API route) answer
// status with a plausible error body; 429 and 503 also carry
// "Retry-After: 1". Rules queue up in the order they were added. An
// unknown route panics, as in InjectFault.
func (e *Emulator) FailNext(routePattern string, status, n int) *Injection {
	return e.InjectFault(routePattern, Fault{Status: status}, n)
}

// InjectFault is FailNext with full control over the response. A route
// that is neither AnyRoute nor one of Routes panics: it is a mistake in
// the calling test, which would otherwise inject a fault that never
// fires. Routes given by people go through AddFault.
func (e *Emulator) InjectFault(routePattern string, f Fault, n int) *Injection {
	in, err := e.AddFault(routePattern, f, n)
	if err != nil {
		panic(err)
	}
	return in
}

// AddFault is InjectFault for a route that comes from outside the program
// (the -fault flag of cmd/atlassian-emulator, POST /_emulator/faults): an
// unknown route is an error. n <= 0 injects nothing.
func (e *Emulator) AddFault(routePattern string, f Fault, n int) (*Injection, error) {
	if routePattern != AnyRoute && !slices.Contains(e.patterns, routePattern) {
		return nil, fmt.Errorf("emulator: unknown route %q: want %q or one of the routes: %s",
			routePattern, AnyRoute, strings.Join(e.patterns, ", "))
	}
	rule := &faultRule{route: routePattern, fault: normalizeFault(f), n: max(n, 0), remaining: max(n, 0)}
	in := &Injection{e: e, rule: rule}
	if n <= 0 {
		return in, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, rule)
	return in, nil
}

// SetOutage makes every API route answer status until ClearOutage.
func (e *Emulator) SetOutage(status int) {
	e.SetOutageFor(status, 0)
}

// SetOutageFor makes every API route answer status for d, after which the
// outage ends by itself; d <= 0 means until ClearOutage. The end is
// measured on Options.Now (real time by default), so a test with a fake
// clock ends the outage by advancing the clock. It is checked on each
// call rather than by a timer, so a stale timer can never end a newer
// outage.
func (e *Emulator) SetOutageFor(status int, d time.Duration) {
	o := &outage{status: status}
	if d > 0 {
		o.until = e.now().Add(d)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.outage = o
}

// ClearOutage ends an outage started by SetOutage or SetOutageFor.
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

// activeOutageLocked returns the outage in force at now, dropping one that
// has run its course.
func (e *Emulator) activeOutageLocked(now time.Time) *outage {
	if e.outage != nil && !e.outage.until.IsZero() && !now.Before(e.outage.until) {
		e.outage = nil
	}
	return e.outage
}

func (e *Emulator) takeFaultLocked(route string, now time.Time) *Fault {
	if o := e.activeOutageLocked(now); o != nil {
		// Retry-After stays 1 like any other 503: a real outage does not
		// know when it will end.
		return &Fault{Status: o.status}
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

// writeFault answers with f in the dialect of k, including the rate-limit
// headers the service sends with 429s: Jira and Confluence Cloud's
// X-RateLimit-* (plus RateLimit-Reason on Jira), Data Center's
// X-RateLimit-Interval-Seconds/-FillRate, and for Backstage only
// Retry-After.
func writeFault(w http.ResponseWriter, r *http.Request, k apiKind, f Fault, now time.Time) {
	h := w.Header()
	retry := f.RetryAfter
	if retry <= 0 {
		retry = 1
	}
	reset := now.Add(time.Duration(retry) * time.Second)
	answer := func(msg string) {
		if k.fl == backstageAPI {
			backstageRouteError(w, r, f.Status, backstageErrorName(f.Status), msg, nil)
			return
		}
		apiError(w, k.fl, f.Status, msg)
	}
	if f.OnlyRateLimitReset {
		h.Set("X-RateLimit-Reset", formatReset(reset))
		answer("Rate limit exceeded.")
		return
	}
	if (f.Status == http.StatusTooManyRequests || f.Status == http.StatusServiceUnavailable) && !f.NoRetryAfter {
		h.Set("Retry-After", strconv.Itoa(retry))
	}
	msg := http.StatusText(f.Status)
	if f.Status == http.StatusTooManyRequests {
		msg = "Rate limit exceeded."
		switch {
		case k.fl == backstageAPI:
		case k.dc:
			h.Set("X-RateLimit-Limit", "100")
			h.Set("X-RateLimit-Remaining", "0")
			h.Set("X-RateLimit-Interval-Seconds", "1")
			h.Set("X-RateLimit-FillRate", "100")
		default:
			h.Set("X-RateLimit-Limit", "100")
			h.Set("X-RateLimit-Remaining", "0")
			h.Set("X-RateLimit-Reset", formatReset(reset))
		}
		reason := f.Reason
		if reason == "" && k == jiraCloud {
			reason = reasonBurst
		}
		if reason != "" {
			h.Set("RateLimit-Reason", reason)
		}
	}
	if msg == "" {
		msg = "Injected fault " + strconv.Itoa(f.Status)
	}
	answer(msg)
}

// resetConn drops the request's connection with a TCP RST and no answer.
// SO_LINGER 0 makes close send RST instead of FIN, which is what a client
// sees when a load balancer or a crashing server kills the connection.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot be hijacked; aborting the handler resets the
		// stream, the nearest equivalent.
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		// Under TLS, close the socket itself so no close_notify alert
		// announces an orderly end.
		raw = nc.NetConn()
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = raw.Close()
}

// formatReset formats X-RateLimit-Reset as ISO-8601 in UTC, as Jira does.
func formatReset(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// ceilSeconds rounds d up to whole seconds, at least 1, for Retry-After.
func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
