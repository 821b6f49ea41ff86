package emulator

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit configures the Jira Cloud style rate limits the emulator
// enforces. The zero value enforces none.
type RateLimit struct {
	// PerSecond is the refill rate of the tenant's token bucket. Jira
	// Cloud's burst limit is a token bucket per tenant shared by every app
	// and API token; 0 disables it.
	PerSecond float64 `json:"perSecond"`
	// Burst is the bucket size; 0 means PerSecond rounded up.
	Burst int `json:"burst"`
	// PerIssueWrites is how many writes (POST, PUT and DELETE under
	// /rest/api/3/issue/{issueIdOrKey}) one issue accepts in any 2 s
	// window, Jira's "20 writes per 2 s"; 0 disables it.
	PerIssueWrites int `json:"perIssueWrites"`
}

// perIssueWindow is the window of Jira's per-issue write limit.
const perIssueWindow = 2 * time.Second

// RateLimit-Reason values Jira sends with a 429. Confluence sends none
// for burst limits.
const (
	reasonBurst    = "jira-burst-based"
	reasonPerIssue = "jira-per-issue-on-write"
)

// normalized replaces invalid values (negative, NaN, infinite) by 0 and
// fills in the default burst.
func (rl RateLimit) normalized() RateLimit {
	if rl.PerSecond <= 0 || math.IsNaN(rl.PerSecond) || math.IsInf(rl.PerSecond, 0) {
		rl.PerSecond = 0
	}
	rl.Burst = max(rl.Burst, 0)
	rl.PerIssueWrites = max(rl.PerIssueWrites, 0)
	if rl.PerSecond > 0 && rl.Burst == 0 {
		rl.Burst = int(math.Ceil(rl.PerSecond))
	}
	if rl.PerSecond == 0 {
		rl.Burst = 0
	}
	return rl
}

// limiter is the rate-limit state. Guarded by Emulator.mu; times come from
// Options.Now so tests can drive it with a fake clock.
type limiter struct {
	cfg    RateLimit
	tokens float64
	last   time.Time // of the last refill; zero: bucket not used yet
	// writes holds the times of the accepted writes of each issue within
	// the last perIssueWindow, oldest first, keyed by issue id (or the
	// upper-cased key when the issue does not exist), so OPS-1 and its id
	// share one budget as in Jira.
	writes map[string][]time.Time
	// rejected counts the 429s the limiter gave.
	rejected int
}

// verdict is the limiter's answer for one call.
type verdict struct {
	limited    bool
	limit      int // X-RateLimit-Limit; 0 when no limit applies
	remaining  int // X-RateLimit-Remaining
	retryAfter int // seconds, when limited
	reason     string
	fillRate   float64 // tokens per second, for Data Center's headers
}

// SetRateLimit replaces the rate limits and refills the bucket. Invalid
// values count as 0 (off).
func (e *Emulator) SetRateLimit(rl RateLimit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lim = limiter{cfg: rl.normalized(), rejected: e.lim.rejected}
}

// RateLimits returns the rate limits in force, with defaults filled in.
func (e *Emulator) RateLimits() RateLimit {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lim.cfg
}

// RateLimited returns how many calls the rate limiter answered with 429.
// Injected 429 faults are not included.
func (e *Emulator) RateLimited() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lim.rejected
}

// MaxConcurrent returns the peak number of API calls in flight at once
// since New or Reset, to show that a client's own concurrency limit holds.
func (e *Emulator) MaxConcurrent() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.maxInFlight
}

// admitLocked applies the rate limits to one call. issue is the
// {issueIdOrKey} of a per-issue write, or "".
func (l *limiter) admitLocked(now time.Time, issue string) verdict {
	var v verdict
	if l.cfg.PerSecond > 0 {
		l.refill(now)
		v.limit = l.cfg.Burst
		v.fillRate = l.cfg.PerSecond
		if l.tokens < 1 {
			l.rejected++
			wait := time.Duration((1 - l.tokens) / l.cfg.PerSecond * float64(time.Second))
			return verdict{limited: true, limit: l.cfg.Burst, retryAfter: ceilSeconds(wait), reason: reasonBurst, fillRate: l.cfg.PerSecond}
		}
		// The token is spent even if the per-issue limit rejects the call
		// below: the burst limit sits in front and saw the request.
		l.tokens--
		v.remaining = int(l.tokens)
	}
	if issue != "" && l.cfg.PerIssueWrites > 0 {
		times := l.writes[issue]
		cut := 0
		for cut < len(times) && !now.Before(times[cut].Add(perIssueWindow)) {
			cut++
		}
		times = times[cut:]
		if len(times) >= l.cfg.PerIssueWrites {
			l.writes[issue] = times
			l.rejected++
			return verdict{limited: true, limit: l.cfg.PerIssueWrites,
				retryAfter: ceilSeconds(times[0].Add(perIssueWindow).Sub(now)), reason: reasonPerIssue}
		}
		if l.writes == nil {
			l.writes = map[string][]time.Time{}
		}
		l.writes[issue] = append(times, now)
	}
	return v
}

// refill adds the tokens earned since the last call. A clock that goes
// backwards earns nothing rather than draining the bucket.
func (l *limiter) refill(now time.Time) {
	if l.last.IsZero() {
		l.tokens = float64(l.cfg.Burst)
		l.last = now
		return
	}
	if el := now.Sub(l.last); el > 0 {
		l.tokens = math.Min(float64(l.cfg.Burst), l.tokens+el.Seconds()*l.cfg.PerSecond)
		l.last = now
	}
}

// write sets the rate-limit headers of an admitted call, or answers the
// 429 of a rejected one in the dialect of k. Data Center routes get Data
// Center's headers: X-RateLimit-Limit/-Remaining/-Interval-Seconds/
// -FillRate and Retry-After, without -Reset, -NearLimit or a reason.
func (v verdict) write(w http.ResponseWriter, k apiKind, now time.Time) {
	if v.limit == 0 {
		return
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(v.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(v.remaining))
	if k.dc {
		h.Set("X-RateLimit-Interval-Seconds", "1")
		h.Set("X-RateLimit-FillRate", strconv.FormatFloat(v.fillRate, 'f', -1, 64))
		if v.limited {
			h.Set("Retry-After", strconv.Itoa(v.retryAfter))
			apiError(w, k.fl, http.StatusTooManyRequests, "Rate limit exceeded.")
		}
		return
	}
	if !v.limited {
		// Jira flags the last 20% of the budget so clients can slow down
		// before they are rejected.
		if float64(v.remaining) < 0.2*float64(v.limit) {
			h.Set("X-RateLimit-NearLimit", "true")
		}
		return
	}
	h.Set("Retry-After", strconv.Itoa(v.retryAfter))
	h.Set("X-RateLimit-Reset", formatReset(now.Add(time.Duration(v.retryAfter)*time.Second)))
	if k.fl == jiraAPI {
		h.Set("RateLimit-Reason", v.reason)
	}
	apiError(w, k.fl, http.StatusTooManyRequests, "Rate limit exceeded.")
}

// isPerIssueWrite reports whether calls to pattern count against Jira's
// per-issue write limit.
func isPerIssueWrite(pattern string) bool {
	method, path, _ := strings.Cut(pattern, " ")
	if method == http.MethodGet {
		return false
	}
	const issue = "/rest/api/3/issue/{issueIdOrKey}"
	return path == issue || strings.HasPrefix(path, issue+"/")
}
