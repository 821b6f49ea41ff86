package emulator

// The request validation in front of the notifications handler. Since 0.6.9
// the plugin's router is createOpenApiRouter() of
// @backstage/backend-openapi-utils: express.json(), then
// express-openapi-validator (coerceTypes false, allowUnknownQueryParameters
// false) against the plugin's OpenAPI spec, then every error, the body
// parser's included, turned into a 400 InputError with the error's message.
// The checks and their messages below follow what that stack answers for
// POST /notifications: the media type, then unknown query parameters, then
// the body against NotificationSendOptions, as ajv (allErrors false) words
// it. testdata/backstage/validation.json holds the answers of the real
// stack the tests compare with.

import (
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// contentTypeParam is how express-openapi-validator's ContentType reads
// the parameters of a Content-Type header.
var contentTypeParam = regexp.MustCompile(`;\s*([^=]+)=([^;]+)`)

// openAPIContentType is express-openapi-validator's ContentType.normalize()
// of a Content-Type header (media type lower-cased, parameters sorted,
// charset lower-cased, boundary dropped) and its media type; ok is false
// when the header is absent.
func openAPIContentType(header string, present bool) (normalized, mediaType, charset string, ok bool) {
	if !present || header == "" {
		return "", "", "", false
	}
	params := map[string]string{}
	for _, m := range contentTypeParam.FindAllStringSubmatch(header, -1) {
		k, v := strings.ToLower(m[1]), m[2]
		if k == "charset" {
			v = strings.ToLower(v)
		}
		params[k] = v
	}
	mediaType, _, _ = strings.Cut(header, ";")
	mediaType = strings.TrimSpace(strings.ToLower(mediaType))
	normalized = mediaType
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if k != "boundary" {
			normalized += "; " + k + "=" + params[k]
		}
	}
	return normalized, mediaType, params["charset"], true
}

// validateMediaType is the validator's request body media type check: the
// spec's only body type is application/json, with any parameters.
func validateMediaType(header string, present bool) string {
	normalized, mediaType, _, ok := openAPIContentType(header, present)
	switch {
	case !ok:
		return "unsupported media type undefined"
	case mediaType != "application/json":
		return "unsupported media type " + normalized
	}
	return ""
}

// validateQuery rejects query parameters: the create operation declares
// none, and the validator allows no unknown ones. The first is named.
func validateQuery(rawQuery string) string {
	for _, part := range strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' }) {
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		return "Unknown query parameter '" + name + "'"
	}
	return ""
}

// validationErrors collects ajv's error texts ("request/body/… message").
type validationErrors []string

func (v *validationErrors) add(path, msg string) { *v = append(*v, "request"+path+" "+msg) }

// isJSONObject is JSON Schema's "object": not an array, not null.
func isJSONObject(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	return m, ok
}

// validateSendOptions checks a parsed body against NotificationSendOptions
// and returns the validator's message, or "" when it is valid. Outside a
// oneOf, ajv stops at the first error; inside one it collects each
// branch's errors and adds its own.
func validateSendOptions(body any) string {
	var errs validationErrors
	const root = "/body"
	obj, ok := isJSONObject(body)
	if !ok {
		errs.add(root, "must be object")
		return strings.Join(errs, ", ")
	}
	for _, req := range []string{"recipients", "payload"} {
		if _, ok := obj[req]; !ok {
			errs.add(root, "must have required property '"+req+"'")
			return strings.Join(errs, ", ")
		}
	}
	if !validateRecipients(&errs, root+"/recipients", obj["recipients"]) {
		return strings.Join(errs, ", ")
	}
	validatePayload(&errs, root+"/payload", obj["payload"])
	return strings.Join(errs, ", ")
}

// validatePayload is NotificationPayload outside any oneOf: the first
// error only, properties in the spec's order.
func validatePayload(errs *validationErrors, path string, v any) {
	p, ok := isJSONObject(v)
	if !ok {
		errs.add(path, "must be object")
		return
	}
	if _, ok := p["title"]; !ok {
		errs.add(path, "must have required property 'title'")
		return
	}
	for _, k := range []string{"title", "description", "link", "severity", "topic", "scope", "icon", "metadata"} {
		x, present := p[k]
		if !present {
			continue
		}
		switch k {
		case "metadata":
			if _, ok := isJSONObject(x); !ok {
				errs.add(path+"/"+k, "must be object")
				return
			}
		case "severity":
			s, ok := x.(string)
			if !ok {
				errs.add(path+"/"+k, "must be string")
				return
			}
			if !slices.Contains(notificationSeverities, s) {
				errs.add(path+"/"+k, "must be equal to one of the allowed values: "+strings.Join(notificationSeverities, ", "))
				return
			}
		default:
			if _, ok := x.(string); !ok {
				errs.add(path+"/"+k, "must be string")
				return
			}
		}
	}
}

// validateRecipients is NotificationRecipients, a oneOf of
// {type: entity, entityRef (required), excludeEntityRef} and
// {type: broadcast}. It reports whether exactly one branch matched; if
// not, errs has every branch's errors and the oneOf's.
func validateRecipients(errs *validationErrors, path string, v any) bool {
	var branch validationErrors
	entity := recipientsBranch(&branch, path, v, "entity", []string{"type", "entityRef"})
	broadcast := recipientsBranch(&branch, path, v, "broadcast", []string{"type"})
	if entity != broadcast { // the two can never both match: type differs
		return true
	}
	*errs = append(*errs, branch...)
	errs.add(path, "must match exactly one schema in oneOf")
	return false
}

// recipientsBranch checks one oneOf branch inside the composite rule:
// errors are collected, a failed required check skips the properties, a
// failed property skips the later ones, and a type error on `type` is
// followed by its enum error (ajv checks the untyped keywords anyway).
func recipientsBranch(errs *validationErrors, path string, v any, kind string, required []string) bool {
	r, ok := isJSONObject(v)
	if !ok {
		errs.add(path, "must be object")
		return false
	}
	for _, req := range required {
		if _, ok := r[req]; !ok {
			errs.add(path, "must have required property '"+req+"'")
			return false
		}
	}
	t := r["type"]
	s, isString := t.(string)
	if !isString {
		errs.add(path+"/type", "must be string")
	}
	if !isString || s != kind {
		errs.add(path+"/type", "must be equal to one of the allowed values: "+kind)
		return false
	}
	if kind != "entity" {
		return true
	}
	for _, k := range []string{"entityRef", "excludeEntityRef"} {
		if x, present := r[k]; present && !validateEntityRefs(errs, path+"/"+k, x) {
			return false
		}
	}
	return true
}

// validateEntityRefs is the EntityRef schema, a oneOf of a string and an
// array of strings (the first bad item is named).
func validateEntityRefs(errs *validationErrors, path string, v any) bool {
	if _, ok := v.(string); ok {
		return true
	}
	var sub validationErrors
	sub.add(path, "must be string")
	if a, ok := v.([]any); !ok {
		sub.add(path, "must be array")
	} else {
		bad := slices.IndexFunc(a, func(x any) bool { _, ok := x.(string); return !ok })
		if bad < 0 {
			return true
		}
		sub.add(path+"/"+strconv.Itoa(bad), "must be string")
	}
	*errs = append(*errs, sub...)
	errs.add(path, "must match exactly one schema in oneOf")
	return false
}
