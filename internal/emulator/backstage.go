package emulator

// Backstage notifications backend, as @backstage/plugin-notifications-backend
// 0.6.11 (with @backstage/backend-defaults 0.19.0 and
// @backstage/backend-openapi-utils 0.7.4) answers
// POST /api/notifications/notifications (the plugin's deprecated alias
// POST /api/notifications, and the trailing-slash forms Express also
// matches, are not emulated: the client does not use them):
//
//  1. The credentials barrier: "Authorization: Bearer <token>" must be the
//     configured static external-access token (401 AuthenticationError
//     "Missing credentials" or "Illegal token" otherwise). Its subject
//     becomes the notifications' origin.
//  2. The OpenAPI router (backstage_validate.go): express.json() (at most
//     100 kB, strict, UTF charsets), then the request validation against
//     the plugin's spec: application/json only, no query parameters, and
//     NotificationSendOptions (recipients entity with entityRef, or
//     broadcast; payload with a string title, string optional members, a
//     severity of critical, high, normal or low, an object metadata). Every
//     error of this stage is a 400 InputError with the stage's message.
//  3. The handler: an empty title → 400, non-http(s) link → 400, an entity
//     ref that does not parse (an empty one) → 400; recipients broadcast or
//     entity (user refs verbatim, groups expanded and other entities routed
//     to their owner through the emulated catalog, unknown refs dropped),
//     and a payload.scope that updates the origin's earlier notification
//     for the same user (or broadcast) instead of inserting another one.
//
// Error bodies are Backstage's {"error":{name,message[,cause]},"request":
// {method,url},"response":{statusCode}}; url is relative to the plugin
// mount, as Express reports it.

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// backstageMount is where the notifications plugin's router is mounted.
const backstageMount = "/api/notifications"

// maxBackstageBody is express.json()'s default limit.
const maxBackstageBody = 100 << 10

// notificationSeverities are Backstage's severities, most severe first.
var notificationSeverities = []string{"critical", "high", "normal", "low"}

// notification is a stored notification: a row of the "notification" or
// "broadcast" table.
type notification struct {
	id        string
	user      string // "" for a broadcast
	broadcast bool
	created   time.Time
	updated   time.Time // zero: never restored
	read      time.Time // zero: unread
	saved     time.Time // zero: not saved
	origin    string
	title     string
	// nil means SQL NULL (the member was absent or null).
	description, link, topic, scope, icon *string
	severity                              string
	metadata                              map[string]any // nil: NULL
}

// Notification is a snapshot of a stored Backstage notification.
type Notification struct {
	ID        string              `json:"id"`
	User      string              `json:"user,omitempty"` // "" for a broadcast
	Broadcast bool                `json:"broadcast"`
	Created   time.Time           `json:"created"`
	Updated   time.Time           `json:"updated,omitzero"` // set when a scope re-send restored it
	Read      bool                `json:"read"`
	Origin    string              `json:"origin"`
	Payload   NotificationPayload `json:"payload"`
}

// NotificationPayload is the stored part of a notification payload.
type NotificationPayload struct {
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	Link        string         `json:"link,omitempty"`
	Severity    string         `json:"severity"`
	Topic       string         `json:"topic,omitempty"`
	Scope       string         `json:"scope,omitempty"`
	Icon        string         `json:"icon,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (n *notification) snapshot() Notification {
	return Notification{
		ID: n.id, User: n.user, Broadcast: n.broadcast, Created: n.created, Updated: n.updated,
		Read: !n.read.IsZero(), Origin: n.origin,
		Payload: NotificationPayload{
			Title: n.title, Description: deref(n.description), Link: deref(n.link), Severity: n.severity,
			Topic: deref(n.topic), Scope: deref(n.scope), Icon: deref(n.icon), Metadata: n.metadata,
		},
	}
}

// Notifications returns snapshots of all stored notifications in creation
// order.
func (e *Emulator) Notifications() []Notification {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Notification, 0, len(e.st.notifications))
	for _, n := range e.st.notifications {
		out = append(out, n.snapshot())
	}
	return out
}

// SetNotificationRead marks a notification read or unread, as its user
// would in the Backstage UI, e.g. to show that a scope re-send moves it
// back to unread.
func (e *Emulator) SetNotificationRead(id string, read bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.st.notifications {
		if n.id == id {
			n.read = time.Time{}
			if read {
				n.read = e.now().UTC()
			}
			return nil
		}
	}
	return fmt.Errorf("emulator: no notification with id %q", id)
}

// jsError is a JavaScript error: its constructor name and message.
type jsError struct {
	name, msg string
}

func (j *jsError) String() string { return j.name + ": " + j.msg }

// backstageErrorName is the @backstage/errors class Backstage's error
// handler maps to status.
func backstageErrorName(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "InputError"
	case http.StatusUnauthorized:
		return "AuthenticationError"
	case http.StatusForbidden:
		return "NotAllowedError"
	case http.StatusNotFound:
		return "NotFoundError"
	case http.StatusConflict:
		return "ConflictError"
	case http.StatusNotImplemented:
		return "NotImplementedError"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailableError"
	}
	return "Error"
}

// pluginURL is req.url inside the plugin router: the request URI without
// the mount path.
func pluginURL(r *http.Request) string {
	return strings.TrimPrefix(r.URL.RequestURI(), backstageMount)
}

// backstageRouteError answers an error for request r; extra holds further
// serialized error members, such as cause.
func backstageRouteError(w http.ResponseWriter, r *http.Request, status int, name, msg string, extra map[string]any) {
	writeBackstageError(w, r.Method, pluginURL(r), status, name, msg, extra)
}

func writeBackstageError(w http.ResponseWriter, method, url string, status int, name, msg string, extra map[string]any) {
	writeBackstageJSON(w, status, struct {
		Error    serializedError   `json:"error"`
		Request  map[string]string `json:"request"`
		Response map[string]int    `json:"response"`
	}{
		serializedError{name, msg, extra},
		map[string]string{"method": method, "url": url},
		map[string]int{"statusCode": status},
	})
}

// serializedError is serializeError's output: name and message first,
// then the error's other own properties.
type serializedError struct {
	name, message string
	extra         map[string]any
}

func (s serializedError) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteString(`{"name":`)
	_ = enc.Encode(s.name)
	buf.WriteString(`,"message":`)
	_ = enc.Encode(s.message)
	for _, k := range slices.Sorted(maps.Keys(s.extra)) {
		buf.WriteString(",")
		_ = enc.Encode(k)
		buf.WriteString(":")
		if err := enc.Encode(s.extra[k]); err != nil {
			return nil, err
		}
	}
	buf.WriteString("}")
	// Encode appends newlines; JSON ignores them, but keep the body compact.
	return bytes.ReplaceAll(buf.Bytes(), []byte("\n"), nil), nil
}

// inputError answers InputError(msg, cause) as @backstage/errors words it.
func inputError(w http.ResponseWriter, r *http.Request, msg string, cause *jsError) {
	var extra map[string]any
	if cause != nil {
		msg += "; caused by " + cause.String()
		extra = map[string]any{"cause": map[string]string{"name": cause.name, "message": cause.msg}}
	}
	backstageRouteError(w, r, http.StatusBadRequest, "InputError", msg, extra)
}

// writeBackstageJSON writes JSON as Express's res.json does.
func writeBackstageJSON(w http.ResponseWriter, status int, v any) {
	rp := jsonReply(status, v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(rp.status)
	_, _ = w.Write(rp.body)
}

// backstageBearer is getTokenFromRequest of backend-defaults.
var backstageBearer = regexp.MustCompile(`(?i)^Bearer +(\S+)$`)

// readBackstageBody does what express.json() does before the validator:
// it returns the parsed body ({} for no JSON body), or the body parser's
// error message, which the router answers as a 400 InputError.
func readBackstageBody(r *http.Request) (any, string) {
	if !isJSON(r) {
		return map[string]any{}, ""
	}
	_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if cs := strings.ToLower(cmp.Or(params["charset"], "utf-8")); !strings.HasPrefix(cs, "utf-") {
		return nil, fmt.Sprintf("unsupported charset %q", strings.ToUpper(cs))
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBackstageBody+1))
	if err != nil {
		return nil, "request aborted"
	}
	if len(b) > maxBackstageBody {
		return nil, "request entity too large"
	}
	trimmed := bytes.TrimLeft(b, " \t\n\r")
	if len(trimmed) == 0 {
		return map[string]any{}, ""
	}
	if trimmed[0] != '{' && trimmed[0] != '[' {
		// body-parser's strict mode accepts only objects and arrays, and
		// words the error as V8's JSON.parse does.
		return nil, fmt.Sprintf("Unexpected token '%c', \"%s\" is not valid JSON", trimmed[0], b)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err.Error()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, "Unexpected non-whitespace character after JSON"
	}
	return v, ""
}

// truthy is JavaScript truthiness of a decoded JSON value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case json.Number:
		f, err := x.Float64()
		return err != nil || f != 0
	}
	return true
}

// jsonText renders a decoded JSON value as JSON.stringify would.
func jsonText(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(buf.String(), "\n")
}

// columnValue is how a payload member lands in a text column: strings as
// they are, other values as JSON, absent or null as NULL.
func columnValue(v any, ok bool) *string {
	if !ok || v == nil {
		return nil
	}
	s, isStr := v.(string)
	if !isStr {
		s = jsonText(v)
	}
	return &s
}

func normalizeSeverity(v any) string {
	s, _ := v.(string)
	s = strings.ToLower(s)
	for _, sev := range notificationSeverities {
		if s == sev {
			return s
		}
	}
	return "normal"
}

var urlScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)

// validateNotificationLink is the handler's validateLink: the link is
// resolved against app.baseUrl, so relative links are fine, and must end
// up http: or https:.
func validateNotificationLink(v any) *jsError {
	s, ok := v.(string)
	if !ok {
		return &jsError{"TypeError", "s.replace is not a function"}
	}
	// WHATWG URL parsing drops surrounding whitespace and control
	// characters, and tabs and newlines anywhere.
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, strings.TrimFunc(s, func(r rune) bool { return r <= ' ' }))
	m := urlScheme.FindStringSubmatch(s)
	if m == nil {
		return nil // relative to app.baseUrl
	}
	switch strings.ToLower(m[1]) {
	case "http", "https":
		if strings.TrimLeft(s[len(m[0]):], `/\`) == "" {
			return &jsError{"TypeError", "Invalid URL"}
		}
		return nil
	}
	return &jsError{"Error", "Only HTTP/HTTPS links are allowed"}
}

// entityRef is a parsed Backstage entity reference.
type entityRef struct {
	kind, namespace, name string
}

func (r entityRef) String() string {
	return strings.ToLower(r.kind + ":" + r.namespace + "/" + r.name)
}

// parseEntityRef is @backstage/catalog-model's parseEntityRef on a decoded
// JSON value, with an optional default kind.
func parseEntityRef(v any, defaultKind string) (entityRef, *jsError) {
	if !truthy(v) {
		return entityRef{}, &jsError{"Error", "Entity reference must not be empty"}
	}
	ref := entityRef{kind: defaultKind, namespace: "default"}
	switch x := v.(type) {
	case string:
		colon := strings.IndexByte(x, ':')
		slash := strings.IndexByte(x, '/')
		if slash != -1 && slash < colon {
			colon = -1
		}
		hasKind, hasNS := colon != -1, slash != -1
		kind, ns := "", ""
		if hasKind {
			kind = x[:colon]
		}
		if hasNS {
			ns = x[colon+1 : slash]
		}
		name := x[max(colon+1, slash+1):]
		if (hasKind && kind == "") || (hasNS && ns == "") || name == "" {
			return entityRef{}, &jsError{"TypeError", fmt.Sprintf("Entity reference %q was not on the form [<kind>:][<namespace>/]<name>", x)}
		}
		if hasKind {
			ref.kind = kind
		}
		if hasNS {
			ref.namespace = ns
		}
		ref.name = name
	case map[string]any:
		if k, ok := x["kind"].(string); ok {
			ref.kind = k
		}
		if ns, ok := x["namespace"].(string); ok {
			ref.namespace = ns
		}
		ref.name, _ = x["name"].(string)
	}
	switch {
	case ref.kind == "":
		return entityRef{}, &jsError{"Error", fmt.Sprintf(`Entity reference %s had missing or empty kind (e.g. did not start with "component:" or similar)`, jsonText(v))}
	case ref.namespace == "":
		return entityRef{}, &jsError{"Error", fmt.Sprintf("Entity reference %s had missing or empty namespace", jsonText(v))}
	case ref.name == "":
		return entityRef{}, &jsError{"Error", fmt.Sprintf("Entity reference %s had missing or empty name", jsonText(v))}
	}
	return ref, nil
}

// normalizeGroups builds the emulated catalog: group refs (kind "group"
// implied) to member refs (kind "user" implied), all in canonical form.
func normalizeGroups(in map[string][]string) map[string][]string {
	out := map[string][]string{}
	for g, members := range in {
		ref, err := parseEntityRef(g, "group")
		if err != nil {
			continue
		}
		key := ref.String()
		for _, m := range members {
			if mref, err := parseEntityRef(m, "user"); err == nil {
				out[key] = append(out[key], mref.String())
			}
		}
		if _, ok := out[key]; !ok {
			out[key] = nil
		}
	}
	return out
}

// normalizeOwners builds the emulated catalog's ownedBy relations, all in
// canonical form.
func normalizeOwners(in map[string]string) map[string]string {
	out := map[string]string{}
	for ent, owner := range in {
		ref, err := parseEntityRef(ent, "component")
		if err != nil {
			continue
		}
		if oref, err := parseEntityRef(owner, "group"); err == nil {
			out[ref.String()] = oref.String()
		}
	}
	return out
}

// flat1 is JavaScript's [v].flat(): an array is spread one level.
func flat1(v any) []any {
	if a, ok := v.([]any); ok {
		return a
	}
	return []any{v}
}

// resolveRecipients is DefaultNotificationRecipientResolver over the
// emulated catalog: user refs are kept verbatim, groups (and their child
// groups) expand to their members, other entities (components, systems…)
// to their owner, and refs the catalog does not know are dropped.
func (e *Emulator) resolveRecipients(refs, excluded []any) ([]string, *jsError) {
	isExcluded := func(s string) bool {
		for _, x := range excluded {
			if xs, ok := x.(string); ok && xs == s {
				return true
			}
		}
		return false
	}
	var users []string
	addUser := func(u string) {
		for _, x := range users {
			if x == u {
				return
			}
		}
		users = append(users, u)
	}
	seen := map[string]bool{}
	var todo []any
	for _, r := range refs {
		if s, ok := r.(string); ok {
			if seen[s] {
				continue
			}
			seen[s] = true
		}
		todo = append(todo, r)
	}
	for len(todo) > 0 {
		batch := todo
		todo = nil
		var others []string
		for _, r := range batch {
			ref, err := parseEntityRef(r, "")
			if err != nil {
				return nil, err
			}
			s, _ := r.(string)
			if strings.EqualFold(ref.kind, "user") {
				addUser(s)
			} else if !isExcluded(s) {
				others = append(others, ref.String())
			}
		}
		for _, o := range others {
			if owner, ok := e.bsOwners[o]; ok {
				// A component, system, API…: its owner (ownedBy) is
				// looked up and expanded in the next round.
				if !seen[owner] && !isExcluded(o) {
					seen[owner] = true
					todo = append(todo, owner)
				}
				continue
			}
			members, ok := e.bsGroups[o]
			if !ok || !strings.HasPrefix(o, "group:") || isExcluded(o) {
				continue // not in the catalog: nobody to notify
			}
			for _, m := range members {
				if strings.HasPrefix(m, "user:") {
					addUser(m)
				} else if strings.HasPrefix(m, "group:") && !seen[m] {
					// A child group (parentOf relation).
					seen[m] = true
					todo = append(todo, m)
				}
			}
		}
	}
	out := users[:0]
	for _, u := range users {
		if u != "" && !isExcluded(u) {
			out = append(out, u)
		}
	}
	return out, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// restoredWire is a notification as the store returns it: every column,
// NULLs included, and no metadata.
func (n *notification) restoredWire() map[string]any {
	var user any
	if !n.broadcast {
		user = n.user
	}
	timeOrNull := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return wikiTime(t)
	}
	payload := map[string]any{"title": n.title, "description": n.description, "link": n.link,
		"topic": n.topic, "severity": n.severity, "scope": n.scope, "icon": n.icon}
	if n.metadata != nil {
		payload["metadata"] = n.metadata
	}
	return map[string]any{
		"id": n.id, "user": user, "created": wikiTime(n.created),
		"saved": timeOrNull(n.saved), "read": timeOrNull(n.read), "updated": timeOrNull(n.updated),
		"origin":  n.origin,
		"payload": payload,
	}
}

func (e *Emulator) createNotifications(w http.ResponseWriter, r *http.Request) {
	// The credentials barrier, before the plugin router parses the body.
	e.mu.Lock()
	want, origin := e.bsToken, e.bsSubject
	e.mu.Unlock()
	m := backstageBearer.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		backstageRouteError(w, r, http.StatusUnauthorized, "AuthenticationError", "Missing credentials", nil)
		return
	}
	if subtle.ConstantTimeCompare([]byte(m[1]), []byte(want)) != 1 {
		origin = ""
		for tok, subject := range e.bsExtra {
			if subtle.ConstantTimeCompare([]byte(m[1]), []byte(tok)) == 1 {
				origin = subject
			}
		}
		if origin == "" {
			backstageRouteError(w, r, http.StatusUnauthorized, "AuthenticationError", "Illegal token", nil)
			return
		}
	}
	// The router: express.json(), then the OpenAPI request validation.
	body, msg := readBackstageBody(r)
	if msg == "" {
		ct, present := r.Header["Content-Type"]
		msg = cmp.Or(validateMediaType(strings.Join(ct, ", "), present), validateQuery(r.URL.RawQuery), validateSendOptions(body))
	}
	if msg != "" {
		inputError(w, r, msg, nil)
		return
	}

	// The handler, on a valid NotificationSendOptions.
	obj := body.(map[string]any)
	payload := obj["payload"].(map[string]any)
	recipients := obj["recipients"].(map[string]any)
	titleV := payload["title"]
	if !truthy(titleV) {
		inputError(w, r, "Invalid notification request received: missing title", nil)
		return
	}
	if link, ok := payload["link"]; ok && truthy(link) {
		if err := validateNotificationLink(link); err != nil {
			inputError(w, r, "Invalid link provided", err)
			return
		}
	}
	rtype := recipients["type"].(string) // "entity" or "broadcast": validated
	var users []string
	if rtype == "entity" {
		var excluded []any
		if x := recipients["excludeEntityRef"]; truthy(x) {
			excluded = flat1(x)
		}
		var err *jsError
		if users, err = e.resolveRecipients(flat1(recipients["entityRef"]), excluded); err != nil {
			inputError(w, r, "Failed to send user notifications", err)
			return
		}
	}

	// The notification as the handler builds it: the payload spread, with
	// severity defaulting to normal.
	spread := map[string]any{}
	for k, v := range payload {
		spread[k] = v
	}
	if spread["severity"] == nil {
		spread["severity"] = "normal"
	}
	// 0.6.11 keeps metadata as JSON text: an object, validated.
	metadata, _ := payload["metadata"].(map[string]any)
	stored := func(user string, broadcast bool, id string, created time.Time) *notification {
		desc, hasDesc := payload["description"]
		link, hasLink := payload["link"]
		topic, hasTopic := payload["topic"]
		scope, hasScope := payload["scope"]
		icon, hasIcon := payload["icon"]
		return &notification{
			id: id, user: user, broadcast: broadcast, created: created, origin: origin,
			title: deref(columnValue(titleV, true)), description: columnValue(desc, hasDesc),
			link: columnValue(link, hasLink), topic: columnValue(topic, hasTopic),
			scope: columnValue(scope, hasScope), icon: columnValue(icon, hasIcon),
			severity: normalizeSeverity(spread["severity"]), metadata: metadata,
		}
	}
	scope := ""
	if s := payload["scope"]; truthy(s) {
		scope = deref(columnValue(s, true))
	}
	inMemory := func(n *notification) map[string]any {
		var user any
		if !n.broadcast {
			user = n.user
		}
		return map[string]any{"payload": spread, "origin": origin, "created": wikiTime(n.created), "id": n.id, "user": user}
	}

	e.mu.Lock()
	now := e.now().UTC()
	out := []map[string]any{}
	findScoped := func(user string, broadcast bool) *notification {
		if scope == "" {
			return nil
		}
		for _, n := range e.st.notifications {
			if n.broadcast == broadcast && n.user == user && n.origin == origin && deref(n.scope) == scope {
				return n
			}
		}
		return nil
	}
	restore := func(old, fresh *notification) {
		// restoreExistingNotification: title, severity and metadata are
		// replaced, and description, link and topic when the re-send has
		// them (knex leaves out undefined columns); updated is set and the
		// notification is unread again; created, scope and icon stay.
		old.title, old.severity, old.metadata, old.updated = fresh.title, fresh.severity, fresh.metadata, now
		if fresh.description != nil {
			old.description = fresh.description
		}
		if fresh.link != nil {
			old.link = fresh.link
		}
		if fresh.topic != nil {
			old.topic = fresh.topic
		}
	}
	if rtype == "broadcast" {
		fresh := stored("", true, newUUID(), now)
		if old := findScoped("", true); old != nil {
			// The broadcast read state lives per user in another table,
			// which the restore leaves alone.
			restore(old, fresh)
		} else {
			e.st.notifications = append(e.st.notifications, fresh)
		}
		// 0.6.11 answers with the notification it built, also when it
		// restored an existing broadcast instead: the id in the answer
		// is then not the stored one.
		out = append(out, inMemory(fresh))
	} else {
		for _, u := range users {
			fresh := stored(u, false, newUUID(), now)
			if old := findScoped(u, false); old != nil {
				restore(old, fresh)
				old.read = time.Time{}
				out = append(out, old.restoredWire())
				continue
			}
			e.st.notifications = append(e.st.notifications, fresh)
			out = append(out, inMemory(fresh))
		}
	}
	e.mu.Unlock()
	writeBackstageJSON(w, http.StatusOK, out)
}

// errBackstageToken reports an invalid static token configuration.
var errBackstageToken = errors.New("a Backstage static token must be at least 8 characters without whitespace")

// ValidateBackstageToken checks a static external-access token and its
// subject as Backstage does at start-up: the token at least 8 characters
// and both without whitespace.
func ValidateBackstageToken(token, subject string) error {
	if len(token) < 8 || strings.IndexFunc(token, isSpace) >= 0 {
		return errBackstageToken
	}
	if subject == "" || strings.IndexFunc(subject, isSpace) >= 0 {
		return errors.New("a Backstage static token subject must be non-empty without whitespace")
	}
	return nil
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v'
}
