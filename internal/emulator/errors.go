package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// jiraErrorCollection is Jira's ErrorCollection wire type.
type jiraErrorCollection struct {
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
}

// wikiErrorBody is the Confluence REST v2 error wire type.
type wikiErrorBody struct {
	Errors []wikiError `json:"errors"`
}

type wikiError struct {
	Status int     `json:"status"`
	Code   string  `json:"code"`
	Title  string  `json:"title"`
	Detail *string `json:"detail"`
}

// reply is a response computed while holding the state lock and written
// after releasing it, so that a slow client never blocks other requests.
type reply struct {
	status int
	body   []byte // JSON; nil for an empty body
}

func jsonReply(status int, v any) reply {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only reachable with a programming error in a wire type.
		msg, _ := json.Marshal(fmt.Sprintf("emulator: encode response: %v", err))
		return reply{status: http.StatusInternalServerError, body: []byte(`{"errorMessages":[` + string(msg) + `],"errors":{}}`)}
	}
	return reply{status: status, body: buf.Bytes()}
}

// emptyReply is a response without a body, e.g. 204.
func emptyReply(status int) reply { return reply{status: status} }

func (rp reply) write(w http.ResponseWriter) {
	if rp.body != nil {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	}
	w.WriteHeader(rp.status)
	_, _ = w.Write(rp.body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	jsonReply(status, v).write(w)
}

func jiraErrorReply(status int, messages []string, fieldErrs map[string]string) reply {
	if messages == nil {
		messages = []string{}
	}
	if fieldErrs == nil {
		fieldErrs = map[string]string{}
	}
	return jsonReply(status, jiraErrorCollection{ErrorMessages: messages, Errors: fieldErrs})
}

func writeJiraError(w http.ResponseWriter, status int, messages []string, fieldErrs map[string]string) {
	jiraErrorReply(status, messages, fieldErrs).write(w)
}

func wikiErrorReply(status int, code, title string) reply {
	return jsonReply(status, wikiErrorBody{Errors: []wikiError{{Status: status, Code: code, Title: title}}})
}

func writeWikiError(w http.ResponseWriter, status int, code, title string) {
	wikiErrorReply(status, code, title).write(w)
}

// locked runs fn with the state lock held and writes its reply after
// releasing the lock.
func (e *Emulator) locked(w http.ResponseWriter, fn func() reply) {
	e.mu.Lock()
	rp := fn()
	e.mu.Unlock()
	rp.write(w)
}

// v1ErrorBody is the Confluence REST v1 error wire type (Cloud and Data
// Center).
type v1ErrorBody struct {
	StatusCode int         `json:"statusCode"`
	Data       v1ErrorData `json:"data"`
	Message    string      `json:"message"`
	Reason     string      `json:"reason"`
}

type v1ErrorData struct {
	Authorized bool  `json:"authorized"`
	Valid      bool  `json:"valid"`
	Errors     []any `json:"errors"`
	Successful bool  `json:"successful"`
}

func v1ErrorReply(status int, msg string) reply {
	authorized := status != http.StatusUnauthorized && status != http.StatusForbidden && status != http.StatusNotFound
	return jsonReply(status, v1ErrorBody{
		StatusCode: status,
		Data:       v1ErrorData{Authorized: authorized, Valid: true, Errors: []any{}},
		Message:    msg,
		Reason:     http.StatusText(status),
	})
}

// v1ValidationReply is a v1 error for a request that failed validation:
// data.valid is false and each message is one of data.errors, as
// {"message":{"key":msg,"args":[]}}.
func v1ValidationReply(status int, msg string, errs ...string) reply {
	list := make([]any, 0, len(errs))
	for _, e := range errs {
		list = append(list, map[string]any{"message": map[string]any{"key": e, "args": []any{}}})
	}
	return jsonReply(status, v1ErrorBody{
		StatusCode: status,
		Data:       v1ErrorData{Authorized: true, Valid: false, Errors: list},
		Message:    msg,
		Reason:     http.StatusText(status),
	})
}

func writeV1Error(w http.ResponseWriter, status int, msg string) {
	v1ErrorReply(status, msg).write(w)
}

// apiError writes a generic error in the dialect of fl. Backstage errors
// name the request, so they go through backstageError instead; this is
// only a fallback for them.
func apiError(w http.ResponseWriter, fl flavor, status int, msg string) {
	switch fl {
	case jiraAPI:
		writeJiraError(w, status, []string{msg}, nil)
	case wikiV1API:
		writeV1Error(w, status, msg)
	case backstageAPI:
		writeBackstageError(w, "", "", status, backstageErrorName(status), msg, nil)
	default:
		writeWikiError(w, status, wikiCode(status), msg)
	}
}

func wikiCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_REQUEST_PARAMETER"
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "FORBIDDEN"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusMethodNotAllowed:
		return "METHOD_NOT_ALLOWED"
	case http.StatusConflict:
		return "CONFLICT"
	case http.StatusRequestEntityTooLarge:
		return "REQUEST_ENTITY_TOO_LARGE"
	case http.StatusUnsupportedMediaType:
		return "UNSUPPORTED_MEDIA_TYPE"
	case http.StatusTooManyRequests:
		return "TOO_MANY_REQUESTS"
	case http.StatusServiceUnavailable:
		return "SERVICE_UNAVAILABLE"
	default:
		if status >= 500 {
			return "INTERNAL_SERVER_ERROR"
		}
		return "BAD_REQUEST"
	}
}

func unauthorized(w http.ResponseWriter, fl flavor) {
	switch fl {
	case jiraAPI:
		writeJiraError(w, http.StatusUnauthorized,
			[]string{"Client must be authenticated to access this resource."}, nil)
	case wikiV1API:
		writeV1Error(w, http.StatusUnauthorized, "This request requires authentication.")
	default:
		writeWikiError(w, http.StatusUnauthorized, "UNAUTHORIZED", "Unauthorized; scope does not match")
	}
}

func unsupportedMediaType(w http.ResponseWriter, fl flavor) {
	apiError(w, fl, http.StatusUnsupportedMediaType,
		"Unsupported Media Type: the request body must be sent with Content-Type: application/json")
}

// errTooLarge marks request bodies over maxBody.
var errTooLarge = errors.New("request entity too large")

// readBody reads the (size-limited) request body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return b, nil
}

// decodeObject reads the body as one JSON object, keeping member values raw
// so handlers can validate members the way the real services do (unknown
// keys, wrong types) before interpreting them.
func decodeObject(r *http.Request) (map[string]json.RawMessage, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON body: unexpected data after the top-level value")
	}
	if obj == nil {
		return nil, errors.New("invalid JSON body: expected an object")
	}
	return obj, nil
}

// decodeMembers reads a JSON object body whose members must be among
// members: Jira's request beans refuse unknown properties, naming the bean.
func decodeMembers(r *http.Request, bean string, members ...string) (map[string]json.RawMessage, error) {
	obj, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	for k := range obj {
		if !slices.Contains(members, k) {
			return nil, fmt.Errorf("Unrecognized field %q: not a member of %s", k, bean)
		}
	}
	return obj, nil
}

// decodeBean decodes a body with decodeMembers into dst, answering a value
// of the wrong type as Jira's JSON binding does.
func decodeBean(r *http.Request, dst any, bean string, members ...string) error {
	obj, err := decodeMembers(r, bean, members...)
	if err != nil {
		return err
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("re-encode %s: %w", bean, err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("Invalid value for field %q: expected %s", te.Field, te.Type)
		}
		return fmt.Errorf("invalid %s: %w", bean, err)
	}
	return nil
}

// bodyError answers a decodeObject/readBody failure.
func bodyError(w http.ResponseWriter, fl flavor, err error) {
	if errors.Is(err, errTooLarge) {
		apiError(w, fl, http.StatusRequestEntityTooLarge, "Request entity too large")
		return
	}
	apiError(w, fl, http.StatusBadRequest, err.Error())
}

// isNull reports whether a raw member is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// rawString decodes a raw member that must be a JSON string.
func rawString(raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// compactJSON returns a compact copy of raw, which must be valid JSON.
func compactJSON(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return buf.Bytes()
}
