package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// adminRoutes wires the test and admin API under /_emulator/. It has no
// authentication and is never subject to faults or rate limits, so a test
// or a person can always reconfigure a "broken" emulator. adminGuard keeps
// web pages out of it.
func (e *Emulator) adminRoutes() {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /_emulator/state":     e.adminState,
		"POST /_emulator/reset":    e.adminReset,
		"POST /_emulator/faults":   e.adminAddFault,
		"DELETE /_emulator/faults": e.adminClearFaults,
		"POST /_emulator/outage":   e.adminSetOutage,
		"DELETE /_emulator/outage": e.adminClearOutage,
		"PUT /_emulator/ratelimit": e.adminSetRateLimit,
	} {
		e.mux.HandleFunc(pattern, e.adminGuard(h))
	}
}

// adminGuard refuses what a web page in the developer's browser could
// send: a request from another origin (403), and a state-changing request
// that is not application/json (415). Without a CORS preflight, which the
// emulator never grants, a page can send another origin only "simple"
// requests: a GET, or a POST whose body is a form or text/plain. The own
// origin is the base URL, which cmd/atlassian-emulator always sets, so a
// page whose host name was rebound to the emulator's address still names
// a foreign origin. Scripts and tests send no Origin.
func (e *Emulator) adminGuard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, e.base(r)) {
			writeJSON(w, http.StatusForbidden, map[string]string{
				"error": fmt.Sprintf("cross-origin request from %q refused: the admin API serves only its own origin", o)})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !isJSON(r) {
			writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{
				"error": "the admin API takes only Content-Type: application/json"})
			return
		}
		h(w, r)
	}
}

// sameOrigin reports whether the Origin header o names the origin of
// base (scheme, host and port; default ports may be left out, as browsers
// do). "null", sent by sandboxed and file: pages, is no origin.
func sameOrigin(o, base string) bool {
	ou, err1 := url.Parse(o)
	bu, err2 := url.Parse(base)
	if err1 != nil || err2 != nil || ou.Host == "" {
		return false
	}
	return strings.EqualFold(ou.Scheme, bu.Scheme) && strings.EqualFold(hostPort(ou), hostPort(bu))
}

// hostPort is u's host with its port made explicit.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if strings.EqualFold(u.Scheme, "https") {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// stateView is the wire type of GET /_emulator/state.
type stateView struct {
	Issues        []Issue        `json:"issues"`
	Pages         []Page         `json:"pages"`
	Notifications []Notification `json:"notifications"`
	Calls         map[string]int `json:"calls"`
	RateLimited   int            `json:"rateLimited"`
	MaxConcurrent int            `json:"maxConcurrent"`
	RateLimit     RateLimit      `json:"rateLimit"`
	Faults        []faultSpec    `json:"faults"`
	Outage        *outageSpec    `json:"outage"`
	Routes        []string       `json:"routes"`
}

// faultSpec is a fault rule on the wire: the body of POST
// /_emulator/faults, and an entry of "faults" in GET /_emulator/state,
// where count is the number of calls it still applies to.
type faultSpec struct {
	Route              string `json:"route"`
	Status             int    `json:"status"`
	Count              int    `json:"count"`
	RetryAfter         int    `json:"retryAfter,omitempty"`
	NoRetryAfter       bool   `json:"noRetryAfter,omitempty"`
	OnlyRateLimitReset bool   `json:"onlyRateLimitReset,omitempty"`
	Reason             string `json:"reason,omitempty"`
	Delay              string `json:"delay,omitempty"`
	DelayAfter         string `json:"delayAfter,omitempty"`
	Applied            bool   `json:"applied,omitempty"`
	Reset              bool   `json:"reset,omitempty"`
}

// outageSpec is an outage on the wire: the body of POST /_emulator/outage
// (duration empty: until cleared), and "outage" in GET /_emulator/state
// (until set when the outage ends by itself).
type outageSpec struct {
	Status   int        `json:"status"`
	Duration string     `json:"duration,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
}

func (e *Emulator) adminState(w http.ResponseWriter, r *http.Request) {
	v := stateView{Issues: e.Issues(), Pages: e.Pages(), Notifications: e.Notifications(),
		Calls: e.Calls(), Routes: e.Routes(), Faults: []faultSpec{}}
	now := e.now()
	e.mu.Lock()
	v.RateLimited = e.lim.rejected
	v.MaxConcurrent = e.maxInFlight
	v.RateLimit = e.lim.cfg
	for _, rule := range e.faults {
		v.Faults = append(v.Faults, specOf(rule))
	}
	if o := e.activeOutageLocked(now); o != nil {
		v.Outage = &outageSpec{Status: o.status}
		if !o.until.IsZero() {
			until := o.until.UTC()
			v.Outage.Until = &until
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func specOf(rule *faultRule) faultSpec {
	f := rule.fault
	s := faultSpec{
		Route: rule.route, Status: f.Status, Count: rule.remaining,
		RetryAfter: f.RetryAfter, NoRetryAfter: f.NoRetryAfter, OnlyRateLimitReset: f.OnlyRateLimitReset,
		Reason: f.Reason, Applied: f.Applied, Reset: f.Reset,
	}
	if f.Delay > 0 {
		s.Delay = f.Delay.String()
	}
	if f.DelayAfter > 0 {
		s.DelayAfter = f.DelayAfter.String()
	}
	return s
}

func (e *Emulator) adminReset(w http.ResponseWriter, r *http.Request) {
	e.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) adminAddFault(w http.ResponseWriter, r *http.Request) {
	var s faultSpec
	if err := decodeAdmin(w, r, &s); err != nil {
		adminError(w, err)
		return
	}
	if s.Count < 0 {
		adminError(w, errors.New("count must not be negative"))
		return
	}
	n := max(s.Count, 1)
	f := Fault{
		Status: s.Status, RetryAfter: s.RetryAfter, NoRetryAfter: s.NoRetryAfter,
		OnlyRateLimitReset: s.OnlyRateLimitReset, Reason: s.Reason, Applied: s.Applied, Reset: s.Reset,
	}
	var err error
	if f.Delay, err = parseAdminDuration("delay", s.Delay); err != nil {
		adminError(w, err)
		return
	}
	if f.DelayAfter, err = parseAdminDuration("delayAfter", s.DelayAfter); err != nil {
		adminError(w, err)
		return
	}
	f = normalizeFault(f)
	if err := checkFault(f); err != nil {
		adminError(w, err)
		return
	}
	// AddFault checks the route and, if it knows it, injects the fault.
	if _, err := e.AddFault(s.Route, f, n); err != nil {
		adminError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) adminClearFaults(w http.ResponseWriter, r *http.Request) {
	e.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) adminSetOutage(w http.ResponseWriter, r *http.Request) {
	var s outageSpec
	if err := decodeAdmin(w, r, &s); err != nil {
		adminError(w, err)
		return
	}
	if s.Until != nil {
		adminError(w, errors.New(`"until" is reported, not set; use "duration"`))
		return
	}
	if err := checkErrorStatus(s.Status); err != nil {
		adminError(w, err)
		return
	}
	d, err := parseAdminDuration("duration", s.Duration)
	if err != nil {
		adminError(w, err)
		return
	}
	e.SetOutageFor(s.Status, d)
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) adminClearOutage(w http.ResponseWriter, r *http.Request) {
	e.ClearOutage()
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) adminSetRateLimit(w http.ResponseWriter, r *http.Request) {
	var rl RateLimit
	if err := decodeAdmin(w, r, &rl); err != nil {
		adminError(w, err)
		return
	}
	if rl.PerSecond < 0 || rl.Burst < 0 || rl.PerIssueWrites < 0 {
		adminError(w, errors.New("rate limits must not be negative; 0 turns a limit off"))
		return
	}
	e.SetRateLimit(rl)
	w.WriteHeader(http.StatusNoContent)
}

// maxAdminBody bounds admin request bodies, which are a few fields.
const maxAdminBody = 64 << 10

// decodeAdmin decodes exactly one JSON object into v, rejecting unknown
// fields so that a misspelt option is an error rather than ignored.
func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("invalid JSON body: empty")
		}
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON body: unexpected data after the object")
	}
	return nil
}

// parseAdminDuration parses a Go duration such as "2s"; empty means 0.
func parseAdminDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a non-negative Go duration such as 2s", field, s)
	}
	return d, nil
}

// adminError answers 400 with the message as {"error": "..."}.
func adminError(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
}
