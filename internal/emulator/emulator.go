// Package emulator is a stateful, in-memory emulator of the subset of the
// Jira Cloud REST v3 and Confluence Cloud REST v2 APIs that the rollback
// incident function uses, plus a read-only HTML view for people. The same
// state is also served through Jira Data Center REST v2 (wiki markup,
// Bearer PATs), the Confluence v1 content API (Cloud /wiki/rest/api and
// Data Center /rest/api), and a Backstage notifications backend.
//
// The same client code talks to the emulator and to Atlassian Cloud, so the
// emulator reproduces the real services' status codes, bodies and
// validation rules rather than being a permissive fake. README.md lists
// the routes and the deliberate deviations from the real services.
package emulator

import (
	"bytes"
	"crypto/subtle"
	"html/template"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an Emulator. The zero value is usable.
type Options struct {
	// BaseURL is the public base URL used in "self" links, Confluence
	// _links.base and web UI links, e.g. "http://127.0.0.1:8081". When
	// empty, it is derived from each request's Host header.
	BaseURL string
	// Email and APIToken are the only accepted Basic auth credentials.
	// Defaults: "bot@example.com" and "emulator-token".
	Email    string
	APIToken string
	// Projects maps Jira project keys to their issue type names.
	// Default: {"OPS": {"Incident", "Task", "Bug"}}.
	Projects map[string][]string
	// Spaces lists the Confluence space keys. Default: ["INCIDENTS"].
	Spaces []string
	// SearchLag emulates the eventual consistency of /search/jql: issues
	// created less than SearchLag ago are not returned unless their id is in
	// reconcileIssues.
	SearchLag time.Duration
	// RateLimit enforces Jira Cloud style rate limits; the zero value
	// enforces none. See SetRateLimit.
	RateLimit RateLimit
	// BearerToken is the Data Center Personal Access Token accepted as
	// "Authorization: Bearer <PAT>" on the Data Center routes (Jira
	// /rest/api/2, Confluence /rest/api/content and /rest/api/space).
	// Empty: Bearer is rejected there too. Cloud routes always reject
	// Bearer (JRACLOUD-72405).
	BearerToken string
	// BackstageToken is the static external-access token the Backstage
	// notifications backend accepts as "Authorization: Bearer <token>".
	// Default: "backstage-token".
	BackstageToken string
	// BackstageSubject is the static token's subject, which Backstage uses
	// verbatim as the notifications' origin. Default: "rollback-bot".
	BackstageSubject string
	// BackstageExtraTokens are further static external-access tokens,
	// mapped to their subjects, as Backstage's backend.auth.externalAccess
	// lists one entry per caller (e.g. Argo CD's notifications next to
	// the function): each sender is its own origin.
	BackstageExtraTokens map[string]string
	// BackstageGroups is the emulated Backstage catalog: group entity refs
	// (e.g. "group:default/payments-team") mapped to their members, user
	// refs ("user:default/jdoe") or child group refs. Group refs match
	// case-insensitively, with kind "group" and namespace "default"
	// implied. A group that is not listed has no members.
	BackstageGroups map[string][]string
	// BackstageOwners puts other entities in the emulated catalog: entity
	// refs (e.g. "component:default/checkout-api"; kind "component" and
	// namespace "default" implied) mapped to their owner's ref (kind
	// "group" implied), the ownedBy relation a notification to the entity
	// follows. Refs match case-insensitively.
	BackstageOwners map[string]string
	// Now is the clock, also for timed outages and rate limits.
	// Default: time.Now.
	Now func() time.Time
	// Logger receives one record per API request. Default: discard.
	Logger *slog.Logger
}

// Default credentials, used when Options leave them empty.
const (
	DefaultEmail    = "bot@example.com"
	DefaultAPIToken = "emulator-token"
	// DefaultBackstageToken and DefaultBackstageSubject are the Backstage
	// static token and its subject (the notifications' origin).
	DefaultBackstageToken   = "backstage-token"
	DefaultBackstageSubject = "rollback-bot"
)

// Emulator is an http.Handler serving the emulated APIs. All state lives in
// memory behind one mutex; it is safe for concurrent use.
type Emulator struct {
	// skipADFSchema leaves out the ADF schema check of rich text (see
	// SkipADFSchema).
	skipADFSchema atomic.Bool
	email         string
	token         string
	projects      []projectConfig
	spaces        []string
	now           func() time.Time
	logger        *slog.Logger
	mux           *http.ServeMux
	tmpl          *template.Template
	patterns      []string // API route patterns, in registration order
	bsGroups      map[string][]string
	bsOwners      map[string]string
	bsExtra       map[string]string // token -> subject

	mu        sync.Mutex
	bearer    string // Data Center PAT; "" rejects Bearer
	bsToken   string
	bsSubject string
	baseURL   string
	searchLag time.Duration
	st        *state
	calls     map[string]int
	faults    []*faultRule
	outage    *outage
	lim       limiter
	// inFlight and maxInFlight count API calls being served, for
	// MaxConcurrent.
	inFlight    int
	maxInFlight int
}

// New returns an Emulator with the given options. Project keys are
// upper-cased; spaces and homepages are created immediately.
func New(opts Options) *Emulator {
	e := &Emulator{
		email:     opts.Email,
		token:     opts.APIToken,
		bearer:    opts.BearerToken,
		bsToken:   opts.BackstageToken,
		bsSubject: opts.BackstageSubject,
		bsGroups:  normalizeGroups(opts.BackstageGroups),
		bsOwners:  normalizeOwners(opts.BackstageOwners),
		bsExtra:   maps.Clone(opts.BackstageExtraTokens),
		now:       opts.Now,
		logger:    opts.Logger,
		baseURL:   strings.TrimRight(opts.BaseURL, "/"),
		searchLag: opts.SearchLag,
		mux:       http.NewServeMux(),
		tmpl:      parseTemplates(),
	}
	if e.email == "" {
		e.email = DefaultEmail
	}
	if e.token == "" {
		e.token = DefaultAPIToken
	}
	if e.bsToken == "" {
		e.bsToken = DefaultBackstageToken
	}
	if e.bsSubject == "" {
		e.bsSubject = DefaultBackstageSubject
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	projects := opts.Projects
	if len(projects) == 0 {
		projects = map[string][]string{"OPS": {"Incident", "Task", "Bug"}}
	}
	e.projects = buildProjects(projects)
	e.spaces = dedupeFold(opts.Spaces)
	if len(e.spaces) == 0 {
		e.spaces = []string{"INCIDENTS"}
	}
	e.st = e.newState()
	e.calls = map[string]int{}
	e.lim.cfg = opts.RateLimit.normalized()
	e.routes()
	return e
}

// SetBaseURL changes the public base URL, e.g. once an httptest.Server has
// started.
func (e *Emulator) SetBaseURL(u string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.baseURL = strings.TrimRight(u, "/")
}

// SkipADFSchema turns the ADF schema check of issue descriptions and
// comments off (on: true) or back on. A rich-text value must still be a
// JSON object. The check costs tens of ms of CPU per document (several
// times that under the race detector), which load tests and benchmarks
// would otherwise spend on this side of the wire; Atlassian spends it on
// its own servers. Every other test keeps it.
func (e *Emulator) SkipADFSchema(on bool) { e.skipADFSchema.Store(on) }

// SetSearchLag changes the emulated search indexing lag.
func (e *Emulator) SetSearchLag(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.searchLag = d
}

// Reset drops all issues, pages, notifications, call counts, counters and faults, refills
// the rate-limit bucket and recreates the spaces' homepages.
// Configuration (base URL, search lag, rate limits) is kept.
func (e *Emulator) Reset() {
	st := e.newState()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st = st
	e.calls = map[string]int{}
	e.faults = nil
	e.outage = nil
	e.lim = limiter{cfg: e.lim.cfg}
	e.maxInFlight = e.inFlight
}

// ServeHTTP implements http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	e.mux.ServeHTTP(rw, r)
	e.logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", rw.status),
		slog.Duration("duration", time.Since(start)),
	)
}

// base returns the public base URL: the configured one, or one derived
// from the request so that links work without configuration.
func (e *Emulator) base(r *http.Request) string {
	e.mu.Lock()
	b := e.baseURL
	e.mu.Unlock()
	if b != "" {
		return b
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// flavor selects the error dialect of an API family.
type flavor int

const (
	jiraAPI      flavor = iota // {"errorMessages":[],"errors":{}}, Cloud and DC
	wikiAPI                    // Confluence Cloud v2 {"errors":[...]}
	wikiV1API                  // Confluence v1 {"statusCode","data","message","reason"}
	backstageAPI               // Backstage {"error":{name,message},"request","response"}
)

// apiKind describes an API family: its error dialect, and whether it is a
// Data Center product, which accepts Bearer PATs and sends Data Center
// rate-limit headers.
type apiKind struct {
	fl flavor
	dc bool
}

var (
	jiraCloud   = apiKind{fl: jiraAPI}
	jiraDC      = apiKind{fl: jiraAPI, dc: true}
	wikiCloud   = apiKind{fl: wikiAPI}
	wikiV1Cloud = apiKind{fl: wikiV1API}
	wikiV1DC    = apiKind{fl: wikiV1API, dc: true}
	backstage   = apiKind{fl: backstageAPI}
)

// atlassian reports whether the routes sit behind the emulated Atlassian
// gateway: its rate limits and MaxConcurrent count only those.
func (k apiKind) atlassian() bool { return k.fl != backstageAPI }

// maxBody mirrors Confluence's 5 MB request limit (413 above it); Jira's
// limit is larger but no sane client comes close.
const maxBody = 5 << 20

// api registers an authenticated API route. The pattern doubles as the key
// for Calls and FailNext, so tests can refer to routes exactly as they are
// written here.
//
// A call passes, in order: the rate limits (a gateway in front of
// everything Atlassian), injected faults and outages (the edge),
// authentication, the content type, and finally the handler. Backstage
// routes skip the Atlassian rate limits, and authenticate and parse their
// body in the handler, as the Backstage plugin router does.
func (e *Emulator) api(pattern string, k apiKind, h http.HandlerFunc) {
	e.patterns = append(e.patterns, pattern)
	perIssueWrite := isPerIssueWrite(pattern)
	e.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		issue := ""
		if perIssueWrite {
			issue = r.PathValue("issueIdOrKey")
		}
		v, f, now := e.enter(pattern, issue, k.atlassian())
		defer e.leave(k.atlassian())
		v.write(w, k, now)
		if v.limited {
			return
		}
		if f != nil && f.Delay > 0 {
			// Read the body first: only then does net/http watch the
			// connection, so a caller that goes away ends the wait (and
			// the call does not take effect), as with a real server that
			// never got to process it.
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f != nil && f.Reset && !f.applied() {
			resetConn(w)
			return
		}
		if f != nil && f.Status != 0 && !f.Reset {
			writeFault(w, r, k, *f, e.now())
			return
		}
		if k.atlassian() {
			if !e.authorized(r, k) {
				unauthorized(w, k.fl)
				return
			}
			if (r.Method == http.MethodPost || r.Method == http.MethodPut) && !isJSON(r) {
				unsupportedMediaType(w, k.fl)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if f != nil && f.applied() {
			// The call takes effect now; its answer is held back, and is
			// lost if the caller goes away meanwhile.
			rec := httptest.NewRecorder()
			h(rec, r)
			// Said once the call has taken effect, so a person (or a
			// test) knows the state changed while the caller waits.
			e.logger.LogAttrs(r.Context(), slog.LevelInfo, "fault: call served, answer withheld",
				slog.String("route", pattern), slog.Int("status", rec.Code),
				slog.Bool("reset", f.Reset), slog.Duration("delayAfter", f.DelayAfter))
			var late <-chan time.Time // nil: no answer until the caller gives up
			if f.DelayAfter > 0 {
				late = time.After(f.DelayAfter)
			}
			if !f.Reset || f.DelayAfter > 0 {
				select {
				case <-late:
				case <-r.Context().Done():
					return
				}
			}
			if f.Reset {
				resetConn(w)
				return
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		h(w, r)
	})
}

// enter counts a call, applies the rate limits and returns the fault to
// answer with, if any. A call the limiter rejects does not consume a
// fault: it never got past the gateway. issue is the {issueIdOrKey} of a
// per-issue write, or "". gateway is false for non-Atlassian routes,
// which are neither rate limited nor counted as in flight. Every enter
// must be paired with a leave with the same gateway.
func (e *Emulator) enter(pattern, issue string, gateway bool) (verdict, *Fault, time.Time) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls[pattern]++
	if !gateway {
		return verdict{}, e.takeFaultLocked(pattern, now), now
	}
	e.inFlight++
	e.maxInFlight = max(e.maxInFlight, e.inFlight)
	if issue != "" {
		if is := e.st.lookupIssue(issue); is != nil {
			issue = is.id
		} else {
			issue = strings.ToUpper(issue)
		}
	}
	v := e.lim.admitLocked(now, issue)
	if v.limited {
		return v, nil, now
	}
	return v, e.takeFaultLocked(pattern, now), now
}

// leave ends a call started by enter.
func (e *Emulator) leave(gateway bool) {
	if !gateway {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inFlight--
}

// Routes returns the API route patterns, the keys of Calls and the routes
// FailNext and InjectFault accept besides AnyRoute.
func (e *Emulator) Routes() []string {
	return slices.Clone(e.patterns)
}

// authorized checks the credentials of an Atlassian route: Basic
// email:token everywhere, and on Data Center routes also a Bearer PAT.
func (e *Emulator) authorized(r *http.Request, k apiKind) bool {
	e.mu.Lock()
	email, token, pat := e.email, e.token, e.bearer
	e.mu.Unlock()
	if user, pass, ok := r.BasicAuth(); ok {
		userOK := strings.EqualFold(user, email)
		passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(token)) == 1
		return userOK && passOK
	}
	// Bearer tokens are for OAuth only on Cloud; an API token sent as
	// Bearer is rejected by Atlassian Cloud too (JRACLOUD-72405). Data
	// Center accepts its Personal Access Tokens this way (Jira 8.14+,
	// Confluence 7.9+), and only this way: a PAT is no Basic password.
	if k.dc && pat != "" {
		if t, ok := bearerToken(r); ok {
			return subtle.ConstantTimeCompare([]byte(t), []byte(pat)) == 1
		}
	}
	return false
}

// bearerToken extracts the token of "Authorization: Bearer <token>"; the
// scheme is case-insensitive and the token has no whitespace.
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", false
	}
	return tok, true
}

// SetCredentials replaces the accepted credentials, as rotating an API
// token does: calls with the old token get 401 from now on.
func (e *Emulator) SetCredentials(email, apiToken string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.email, e.token = email, apiToken
}

func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// routes wires every endpoint. Keep README.md in sync.
func (e *Emulator) routes() {
	// Jira Cloud platform REST v3 and Jira Data Center REST v2 share their
	// handlers, which tell the two apart by the path (jiraVerOf).
	for _, j := range []struct {
		p string
		k apiKind
	}{{"/rest/api/3", jiraCloud}, {"/rest/api/2", jiraDC}} {
		p, k := j.p, j.k
		e.api("POST "+p+"/issue", k, e.createIssue)
		e.api("GET "+p+"/issue/{issueIdOrKey}", k, e.getIssue)
		e.api("PUT "+p+"/issue/{issueIdOrKey}", k, e.editIssue)
		e.api("GET "+p+"/issue/{issueIdOrKey}/comment", k, e.listComments)
		e.api("POST "+p+"/issue/{issueIdOrKey}/comment", k, e.addComment)
		e.api("POST "+p+"/issue/{issueIdOrKey}/remotelink", k, e.upsertRemoteLink)
		e.api("GET "+p+"/issue/{issueIdOrKey}/transitions", k, e.getTransitions)
		e.api("POST "+p+"/issue/{issueIdOrKey}/transitions", k, e.doTransition)
		// Searches: POST only, as the clients search (see readSearch).
		if k.dc {
			// Data Center: offset-paged, read-after-write search; no /search/jql.
			e.api("POST "+p+"/search", k, e.searchDC)
		} else {
			e.api("POST "+p+"/search/jql", k, e.searchJQL)
			// The removed search answers as Atlassian's does, both ways.
			e.api("GET "+p+"/search", k, searchRemoved)
			e.api("POST "+p+"/search", k, searchRemoved)
		}
		e.api("GET "+p+"/myself", k, e.myself)
		e.mux.HandleFunc(p+"/", e.notFoundAPI(k.fl, p+"/"))
	}

	// Confluence Cloud REST v2.
	e.api("GET /wiki/api/v2/spaces", wikiCloud, e.listSpaces)
	e.api("GET /wiki/api/v2/pages", wikiCloud, e.listPages)
	e.api("POST /wiki/api/v2/pages", wikiCloud, e.createPage)
	e.api("GET /wiki/api/v2/pages/{id}", wikiCloud, e.getPage)
	e.api("PUT /wiki/api/v2/pages/{id}", wikiCloud, e.updatePage)
	e.mux.HandleFunc("/wiki/api/v2/", e.notFoundAPI(wikiAPI, "/wiki/api/v2/"))

	// Confluence REST v1 content API: the deprecated Cloud site path and
	// the Data Center path (no /wiki context path). See confluence_v1.go.
	for _, c := range []struct {
		p string
		k apiKind
	}{{"/wiki/rest/api", wikiV1Cloud}, {"/rest/api", wikiV1DC}} {
		p, k := c.p, c.k
		e.api("GET "+p+"/content", k, e.v1ListContent)
		e.api("POST "+p+"/content", k, e.v1CreateContent)
		e.api("GET "+p+"/content/{id}", k, e.v1GetContent)
		e.api("PUT "+p+"/content/{id}", k, e.v1UpdateContent)
		e.api("GET "+p+"/space/{spaceKey}", k, e.v1GetSpace)
		if k.dc {
			e.mux.HandleFunc(p+"/content/", e.notFoundAPI(wikiV1API, p+"/content/"))
			e.mux.HandleFunc(p+"/space/", e.notFoundAPI(wikiV1API, p+"/space/"))
		} else {
			e.mux.HandleFunc(p+"/", e.notFoundAPI(wikiV1API, p+"/"))
		}
	}

	// Backstage notifications backend (plugin mounted at /api/notifications).
	e.api("POST /api/notifications/notifications", backstage, e.createNotifications)

	// Read-only HTML views for people; no authentication, like a public
	// site would not have, but this is a local tool.
	e.mux.HandleFunc("GET /{$}", e.htmlIndex)
	e.mux.Handle("GET /wiki/{$}", http.RedirectHandler("/", http.StatusFound))
	e.mux.HandleFunc("GET /browse/{key}", e.htmlIssue)
	e.mux.HandleFunc("GET /wiki/spaces/{key}", e.htmlSpace)
	e.mux.HandleFunc("GET /wiki/spaces/{key}/pages/{id}", e.htmlPage)
	e.mux.HandleFunc("GET /wiki/spaces/{key}/pages/{id}/{title...}", e.htmlPage)
	// Confluence Data Center web UI links (v1 _links.webui on the /rest/api
	// path, whose base has no /wiki), which the function hands out.
	e.mux.HandleFunc("GET /pages/viewpage.action", e.htmlPageByQuery)
	e.mux.HandleFunc("GET /display/{space}", e.htmlDisplaySpace)
	e.mux.HandleFunc("GET /display/{space}/{title...}", e.htmlDisplayPage)

	// Test and admin API; no authentication. See admin.go.
	e.adminRoutes()
}

// notFoundAPI answers paths under an API prefix that match no route: 405
// when another method exists for the path, 404 otherwise, both in the
// API's error dialect rather than net/http's plain text.
func (e *Emulator) notFoundAPI(fl flavor, prefix string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := e.mux.Handler(probe); p != prefix && p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			apiError(w, fl, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		switch fl {
		case jiraAPI:
			writeJiraError(w, http.StatusNotFound, []string{"null for uri: " + r.URL.Path}, nil)
		case wikiV1API:
			writeV1Error(w, http.StatusNotFound, "No API route matches "+r.URL.Path)
		default:
			writeWikiError(w, http.StatusNotFound, "NOT_FOUND", "No API route matches "+r.URL.Path)
		}
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func dedupeFold(in []string) []string {
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		dup := false
		for _, o := range out {
			if strings.EqualFold(o, s) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}
