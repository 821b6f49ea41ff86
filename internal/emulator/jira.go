package emulator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"function/internal/adfschema"
)

// Jira timestamps look like 2021-01-17T12:34:00.000+0000.
const jiraTimeLayout = "2006-01-02T15:04:05.000-0700"

func jiraTime(t time.Time) string { return t.Format(jiraTimeLayout) }

// Messages the real service uses, kept verbatim because clients match them.
const (
	msgNotADF           = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
	msgIssueNotFound    = "Issue does not exist or you do not have permission to see it."
	msgSearchRemoved    = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
	msgFieldCannotBeSet = "Field '%s' cannot be set. It is not on the appropriate screen, or unknown."
)

// Limits: entity properties from the entity property documentation, the
// others from Jira's field validators.
const (
	maxPropertyKeyLen   = 255
	maxPropertyValueLen = 32768
	maxSummaryLen       = 255
	maxLabelLen         = 255
	maxGlobalIDLen      = 255
)

// createdIssue is the 201 body of POST /issue.
type createdIssue struct {
	ID         string          `json:"id"`
	Key        string          `json:"key"`
	Self       string          `json:"self"`
	Transition *nestedResponse `json:"transition,omitempty"`
}

type nestedResponse struct {
	Status          int                 `json:"status"`
	ErrorCollection jiraErrorCollection `json:"errorCollection"`
}

// idOrName is the {"id"} / {"key"} / {"name"} reference form Jira accepts
// for projects, issue types, priorities and components.
type idOrName struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	Name string `json:"name"`
}

func decodeRef(raw json.RawMessage) (idOrName, bool) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return idOrName{}, false
	}
	str := func(k string) string {
		switch v := m[k].(type) {
		case string:
			return v
		case float64:
			// Jira also accepts numeric ids.
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return ""
	}
	return idOrName{ID: str("id"), Key: str("key"), Name: str("name")}, true
}

// validateADF checks a rich-text field value, returning the message Jira
// would put in errors[field], or "" when the value is valid ADF. Without
// schema only the shape is checked (a JSON object, not a string).
func validateADF(raw json.RawMessage, withoutSchema bool) (string, error) {
	if _, ok := rawString(raw); ok {
		return msgNotADF, nil
	}
	if withoutSchema {
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			return msgNotADF, nil
		}
		return "", nil
	}
	err := adfschema.ValidateJSON(raw)
	if err == nil {
		return "", nil
	}
	var ve *adfschema.ValidationError
	if errors.As(err, &ve) {
		// Real Jira's wording for schema-invalid ADF varies (often just
		// "INVALID_INPUT"); naming the failing path is more useful and
		// keeps the same prefix as the plain-string case.
		return msgNotADF + ": " + ve.Error(), nil
	}
	return "", fmt.Errorf("validate ADF: %w", err)
}

// issueInput is a validated create request.
type issueInput struct {
	project    *projectConfig
	issueType  issueTypeConfig
	summary    string
	desc       richText
	labels     []string
	priority   *priority
	components []string
	transition string
}

func (e *Emulator) createIssue(w http.ResponseWriter, r *http.Request) {
	v := jiraVerOf(r)
	// Issue entity properties are not emulated: "properties" is refused.
	obj, err := decodeMembers(r, "IssueUpdateDetails", "fields", "update", "transition", "historyMetadata")
	if err != nil {
		bodyError(w, jiraAPI, err)
		return
	}
	if u := obj["update"]; !isNull(u) && string(compactJSON(u)) != "{}" {
		// Deliberate deviation: the update verb form is not emulated.
		writeJiraError(w, http.StatusBadRequest, []string{"The emulator does not support 'update' operations on create; set values through 'fields'."}, nil)
		return
	}
	var fields map[string]json.RawMessage
	if f := obj["fields"]; !isNull(f) {
		if err := json.Unmarshal(f, &fields); err != nil {
			writeJiraError(w, http.StatusBadRequest, []string{"'fields' must be an object"}, nil)
			return
		}
	}
	in, fieldErrs, err := e.validateIssueFields(fields, v)
	if err != nil {
		writeJiraError(w, http.StatusInternalServerError, []string{err.Error()}, nil)
		return
	}
	if t := obj["transition"]; !isNull(t) {
		ref, ok := decodeRef(t)
		if !ok || ref.ID == "" {
			writeJiraError(w, http.StatusBadRequest, []string{"Missing 'transition' identifier"}, nil)
			return
		}
		in.transition = ref.ID
		if _, ok := statusByTransition(ref.ID); !ok {
			fieldErrs["transition"] = fmt.Sprintf("Transition id '%s' is not valid for this issue.", ref.ID)
		}
	}
	if len(fieldErrs) > 0 {
		writeJiraError(w, http.StatusBadRequest, nil, fieldErrs)
		return
	}

	base := e.base(r)
	e.mu.Lock()
	is := e.insertIssueLocked(in)
	e.mu.Unlock()

	resp := createdIssue{ID: is.id, Key: is.key, Self: base + v.prefix + "/issue/" + is.id}
	if in.transition != "" {
		resp.Transition = &nestedResponse{Status: http.StatusOK,
			ErrorCollection: jiraErrorCollection{ErrorMessages: []string{}, Errors: map[string]string{}}}
	}
	writeJSON(w, http.StatusCreated, resp)
}

// validateIssueFields validates the "fields" member of a create request,
// collecting one message per field like Jira does; the description must
// be ADF on v3 and a wiki-markup string on v2. The error is for internal
// failures only.
func (e *Emulator) validateIssueFields(fields map[string]json.RawMessage, v jiraVer) (issueInput, map[string]string, error) {
	var in issueInput
	errs := map[string]string{}

	if raw, ok := fields["project"]; !ok || isNull(raw) {
		errs["project"] = "Specify a valid project ID or key"
	} else if ref, ok := decodeRef(raw); !ok {
		errs["project"] = "valid project is required"
	} else {
		key := ref.Key
		if key == "" {
			key = ref.ID
		}
		if in.project = e.project(key); in.project == nil || key == "" {
			errs["project"] = "valid project is required"
		}
	}

	if raw, ok := fields["issuetype"]; !ok || isNull(raw) {
		errs["issuetype"] = "Specify an issue type"
	} else if ref, ok := decodeRef(raw); !ok {
		errs["issuetype"] = "The issue type selected is invalid."
	} else if in.project != nil {
		found := false
		for _, it := range in.project.issueTypes {
			if (ref.ID != "" && it.id == ref.ID) || (ref.ID == "" && ref.Name != "" && strings.EqualFold(it.name, ref.Name)) {
				in.issueType, found = it, true
				break
			}
		}
		if !found {
			errs["issuetype"] = "The issue type selected is invalid."
		}
	}

	if raw, ok := fields["summary"]; !ok || isNull(raw) {
		errs["summary"] = "You must specify a summary of the issue."
	} else if s, ok := rawString(raw); !ok {
		errs["summary"] = "Operation value must be a string"
	} else if strings.TrimSpace(s) == "" {
		errs["summary"] = "You must specify a summary of the issue."
	} else if strings.ContainsAny(s, "\r\n") {
		errs["summary"] = "The summary is invalid because it contains newline characters."
	} else if utf8.RuneCountInString(s) > maxSummaryLen {
		errs["summary"] = fmt.Sprintf("Summary must be less than %d characters.", maxSummaryLen)
	} else {
		in.summary = s
	}

	if raw, ok := fields["description"]; ok && !isNull(raw) {
		rt, msg, err := e.validateRichText(raw, v)
		if err != nil {
			return in, nil, err
		}
		switch {
		case msg != "":
			errs["description"] = msg
		case rt.isWiki && rt.wiki == "":
			// Data Center stores an empty description as none.
		default:
			in.desc = rt
		}
	}

	if raw, ok := fields["labels"]; ok && !isNull(raw) {
		labels, msg := validateLabels(raw)
		if msg != "" {
			errs["labels"] = msg
		}
		in.labels = labels
	}

	in.priority = defaultPriority()
	if raw, ok := fields["priority"]; ok && !isNull(raw) {
		ref, ok := decodeRef(raw)
		p, found := priorityByRef(ref.ID, ref.Name)
		if !ok || !found {
			errs["priority"] = "The priority selected is invalid."
		} else {
			in.priority = p
		}
	}

	if raw, ok := fields["components"]; ok && !isNull(raw) {
		var refs []idOrName
		if err := json.Unmarshal(raw, &refs); err != nil {
			errs["components"] = "Operation value must be an array of {\"id\"} or {\"name\"} objects"
		}
		for _, c := range refs {
			switch {
			case c.Name != "":
				in.components = append(in.components, c.Name)
			case c.ID != "":
				in.components = append(in.components, "component-"+c.ID)
			default:
				errs["components"] = "Component id or name is required"
			}
		}
	}

	for k := range fields {
		switch k {
		case "project", "issuetype", "summary", "description", "labels", "priority", "components":
		default:
			// Anything else, customfield_* included, is "not on the create
			// screen": the emulated projects have only the fields above.
			errs[k] = fmt.Sprintf(msgFieldCannotBeSet, k)
		}
	}
	return in, errs, nil
}

// validateLabels returns the de-duplicated labels, or Jira's message for
// the first invalid one.
func validateLabels(raw json.RawMessage) ([]string, string) {
	var labels []string
	if err := json.Unmarshal(raw, &labels); err != nil {
		return nil, "Operation value must be an array of strings"
	}
	var out []string
	for _, l := range labels {
		switch {
		case l == "":
			return nil, "The label '' is invalid: labels cannot be empty."
		case strings.IndexFunc(l, unicode.IsSpace) >= 0:
			return nil, fmt.Sprintf("The label '%s' contains spaces which is invalid.", l)
		case utf8.RuneCountInString(l) > maxLabelLen:
			return nil, fmt.Sprintf("The label '%s' exceeds the maximum length for a single label of %d characters.", l, maxLabelLen)
		}
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out, ""
}

func (e *Emulator) insertIssueLocked(in issueInput) *issue {
	st := e.st
	now := e.now()
	st.issueNum[in.project.key]++
	is := &issue{
		id:         strconv.FormatInt(st.nextIssueID, 10),
		key:        fmt.Sprintf("%s-%d", in.project.key, st.issueNum[in.project.key]),
		project:    in.project,
		issueType:  in.issueType,
		summary:    in.summary,
		desc:       in.desc,
		labels:     in.labels,
		priority:   in.priority,
		components: in.components,
		status:     statusToDo,
		created:    now,
		updated:    now,
	}
	st.nextIssueID++
	if in.transition != "" {
		to, _ := statusByTransition(in.transition)
		is.setStatus(to, "", now)
	}
	st.issues = append(st.issues, is)
	st.issueByID[is.id] = is
	st.issueByKey[is.key] = is
	return is
}

func (is *issue) setStatus(to statusID, resolution string, now time.Time) {
	is.status = to
	is.updated = now
	if to == statusDone {
		if resolution == "" {
			resolution = "Done"
		}
		is.resolution = resolution
		is.resolved = now
	} else {
		is.resolution = ""
		is.resolved = time.Time{}
	}
}

// withIssue runs fn under the state lock with the issue named by the
// path, or answers 404, and writes the reply after unlocking.
func (e *Emulator) withIssue(w http.ResponseWriter, r *http.Request, fn func(is *issue) reply) {
	e.locked(w, func() reply {
		is := e.st.lookupIssue(r.PathValue("issueIdOrKey"))
		if is == nil {
			return jiraErrorReply(http.StatusNotFound, []string{msgIssueNotFound}, nil)
		}
		return fn(is)
	})
}

// issueWire is an issue in GET /issue and search results.
type issueWire struct {
	Expand string `json:"expand,omitempty"`
	ID     string `json:"id"`
	Self   string `json:"self,omitempty"`
	Key    string `json:"key,omitempty"`
	Fields any    `json:"fields,omitempty"`
}

const issueExpand = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"

// fieldSelection is the parsed "fields" parameter: names, "*all",
// "*navigable" and "-name" exclusions, comma-separated or repeated.
type fieldSelection struct {
	all   bool
	names map[string]bool
	excl  map[string]bool
}

func parseFieldSelection(list []string, defaultAll bool) fieldSelection {
	fs := fieldSelection{names: map[string]bool{}, excl: map[string]bool{}}
	for _, item := range list {
		for _, f := range strings.Split(item, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
			case f == "*all" || f == "*navigable":
				fs.all = true
			case strings.HasPrefix(f, "-"):
				fs.excl[f[1:]] = true
			default:
				fs.names[f] = true
			}
		}
	}
	if len(fs.names) == 0 && !fs.all {
		fs.all = defaultAll || len(fs.excl) > 0
	}
	return fs
}

// idOnly reports whether only the issue id was asked for, the search
// default.
func (fs fieldSelection) idOnly() bool {
	if fs.all {
		return false
	}
	for n := range fs.names {
		if n != "id" {
			return false
		}
	}
	return true
}

func (fs fieldSelection) has(name string) bool {
	return (fs.all || fs.names[name]) && !fs.excl[name]
}

// issueFieldNames lists the fields the emulator knows, in output order.
func issueFieldNames() []string {
	return []string{
		"summary", "description", "labels", "issuetype", "project", "status", "statusCategory",
		"created", "updated", "priority", "components", "resolution", "resolutiondate", "comment",
	}
}

func (e *Emulator) issueWireLocked(is *issue, fs fieldSelection, base string, v jiraVer) issueWire {
	w := issueWire{ID: is.id}
	if !fs.idOnly() {
		w.Expand = issueExpand
		w.Self = base + v.prefix + "/issue/" + is.id
		w.Key = is.key
		fields := map[string]any{}
		for _, name := range issueFieldNames() {
			if fs.has(name) {
				fields[name] = e.fieldValue(is, name, base, v)
			}
		}
		w.Fields = fields
	}
	return w
}

type statusCategoryWire struct {
	Self      string `json:"self"`
	ID        int    `json:"id"`
	Key       string `json:"key"`
	ColorName string `json:"colorName"`
	Name      string `json:"name"`
}

type statusWire struct {
	Self           string             `json:"self"`
	Description    string             `json:"description"`
	Name           string             `json:"name"`
	ID             string             `json:"id"`
	StatusCategory statusCategoryWire `json:"statusCategory"`
}

func statusWireOf(s statusID, base string, v jiraVer) statusWire {
	i := s.info()
	return statusWire{
		Self: base + v.prefix + "/status/" + i.id,
		Name: i.name,
		ID:   i.id,
		StatusCategory: statusCategoryWire{
			Self: base + v.prefix + "/statuscategory/" + strconv.Itoa(i.catID),
			ID:   i.catID, Key: i.catKey, ColorName: i.catColor, Name: i.catName,
		},
	}
}

func (e *Emulator) fieldValue(is *issue, name, base string, v jiraVer) any {
	p := base + v.prefix
	switch name {
	case "summary":
		return is.summary
	case "description":
		return is.desc.value(v)
	case "labels":
		if is.labels == nil {
			return []string{}
		}
		return is.labels
	case "issuetype":
		return map[string]any{"self": p + "/issuetype/" + is.issueType.id,
			"id": is.issueType.id, "name": is.issueType.name, "subtask": false, "hierarchyLevel": 0}
	case "project":
		proj := map[string]any{"self": p + "/project/" + is.project.id,
			"id": is.project.id, "key": is.project.key, "name": is.project.name,
			"projectTypeKey": "software"}
		if !v.dc {
			proj["simplified"] = true
		}
		return proj
	case "status":
		return statusWireOf(is.status, base, v)
	case "statusCategory":
		return statusWireOf(is.status, base, v).StatusCategory
	case "created":
		return jiraTime(is.created)
	case "updated":
		return jiraTime(is.updated)
	case "priority":
		if is.priority == nil {
			return nil
		}
		return map[string]any{"self": p + "/priority/" + is.priority.id,
			"id": is.priority.id, "name": is.priority.name}
	case "components":
		out := []map[string]string{}
		for _, c := range is.components {
			out = append(out, map[string]string{"name": c})
		}
		return out
	case "resolution":
		if is.resolution == "" {
			return nil
		}
		return map[string]any{"self": p + "/resolution/10000", "id": "10000", "name": is.resolution}
	case "resolutiondate":
		if is.resolved.IsZero() {
			return nil
		}
		return jiraTime(is.resolved)
	case "comment":
		comments := make([]commentWire, 0, len(is.comments))
		for _, c := range is.comments {
			comments = append(comments, e.commentWire(is, c, base, v, false))
		}
		return map[string]any{"comments": comments, "self": p + "/issue/" + is.id + "/comment",
			"maxResults": len(comments), "total": len(comments), "startAt": 0}
	}
	return nil
}

// queryList returns a query parameter's values, accepting both repeated
// and comma-separated forms.
func queryList(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func (e *Emulator) getIssue(w http.ResponseWriter, r *http.Request) {
	base := e.base(r)
	v := jiraVerOf(r)
	q := r.URL.Query()
	fs := parseFieldSelection(q["fields"], true)
	e.withIssue(w, r, func(is *issue) reply {
		return jsonReply(http.StatusOK, e.issueWireLocked(is, fs, base, v))
	})
}

// userWire is the emulated API user.
type userWire struct {
	Self         string `json:"self"`
	AccountID    string `json:"accountId"`
	AccountType  string `json:"accountType"`
	EmailAddress string `json:"emailAddress"`
	DisplayName  string `json:"displayName"`
	Active       bool   `json:"active"`
	TimeZone     string `json:"timeZone"`
	Locale       string `json:"locale"`
}

// accountID derives a stable 24-hex-digit id like Atlassian's from the
// configured email.
func (e *Emulator) accountID() string {
	sum := sha256.Sum256([]byte(strings.ToLower(e.email)))
	return hex.EncodeToString(sum[:12])
}

func (e *Emulator) user(base string) userWire {
	name, _, _ := strings.Cut(e.email, "@")
	id := e.accountID()
	return userWire{
		Self:         base + "/rest/api/3/user?accountId=" + id,
		AccountID:    id,
		AccountType:  "atlassian",
		EmailAddress: e.email,
		DisplayName:  name,
		Active:       true,
		TimeZone:     "Etc/UTC",
		Locale:       "en_US",
	}
}

// dcUserWire is a Jira Data Center user: identified by name and key, not
// by accountId.
type dcUserWire struct {
	Self         string `json:"self"`
	Key          string `json:"key"`
	Name         string `json:"name"`
	EmailAddress string `json:"emailAddress"`
	DisplayName  string `json:"displayName"`
	Active       bool   `json:"active"`
	Deleted      bool   `json:"deleted"`
	TimeZone     string `json:"timeZone"`
	Locale       string `json:"locale"`
}

// dcUser is the emulated API user as Jira Data Center shows it.
func (e *Emulator) dcUser(base string) dcUserWire {
	name, _, _ := strings.Cut(e.email, "@")
	return dcUserWire{
		Self:         base + jiraV2.prefix + "/user?username=" + url.QueryEscape(name),
		Key:          "JIRAUSER10000",
		Name:         name,
		EmailAddress: e.email,
		DisplayName:  name,
		Active:       true,
		TimeZone:     "Etc/UTC",
		Locale:       "en_US",
	}
}

// userFor returns the API user in the shape of API version v.
func (e *Emulator) userFor(base string, v jiraVer) any {
	if v.dc {
		return e.dcUser(base)
	}
	return e.user(base)
}

func (e *Emulator) myself(w http.ResponseWriter, r *http.Request) {
	base := e.base(r)
	e.mu.Lock()
	var me any = e.user(base)
	if jiraVerOf(r).dc {
		me = struct {
			dcUserWire
			Groups           map[string]any `json:"groups"`
			ApplicationRoles map[string]any `json:"applicationRoles"`
			Expand           string         `json:"expand"`
		}{e.dcUser(base), map[string]any{"size": 1, "items": []any{}},
			map[string]any{"size": 1, "items": []any{}}, "groups,applicationRoles"}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, me)
}

func searchRemoved(w http.ResponseWriter, r *http.Request) {
	// The real body has errorMessages only, no "errors" member.
	writeJSON(w, http.StatusGone, struct {
		ErrorMessages []string `json:"errorMessages"`
	}{[]string{msgSearchRemoved}})
}
