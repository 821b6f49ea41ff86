package inbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
)

// checkJSON validates syntax and the limits in one streaming pass, before any
// typed decoding allocates for it.
func checkJSON(data []byte, lim Limits) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return inputErrorf("body is not valid JSON: %s", jsonErrText(err))
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				depth++
				if depth > lim.MaxDepth {
					return inputErrorf("JSON nested deeper than %d levels", lim.MaxDepth)
				}
			} else {
				depth--
			}
		case string:
			if len(t) > lim.MaxStringLength {
				return inputErrorf("JSON string longer than %d bytes", lim.MaxStringLength)
			}
		}
	}
	return nil
}

// jsonErrText keeps decoder errors short and free of input echoes beyond
// what encoding/json itself quotes (one character).
func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of JSON input"
	}
	return "malformed JSON"
}

func object(data []byte) (map[string]json.RawMessage, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		what := "empty"
		if len(data) > 0 {
			what = jsonKind(data[0])
		}
		return nil, inputErrorf("expected a JSON object, got %s", what)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, inputErrorf("body is not valid JSON: %s", jsonErrText(err))
	}
	return obj, nil
}

func jsonKind(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

func has(obj map[string]json.RawMessage, key string) bool {
	v, ok := obj[key]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// str reads a string field. Form-encoded bodies forwarded by the webhook
// EventSource carry every value as a one-element array, so ["x"] reads as "x".
func str(obj map[string]json.RawMessage, key string) (string, bool) {
	raw, ok := obj[key]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var arr []string
	if err := json.Unmarshal(raw, &arr); err == nil && len(arr) == 1 {
		return arr[0], true
	}
	return "", false
}

func keyList(obj map[string]json.RawMessage) string {
	keys := slices.Sorted(maps.Keys(obj))
	if len(keys) > 8 {
		keys = append(keys[:8], "…")
	}
	for i, k := range keys {
		keys[i] = quoteShort(k, 40)
	}
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

// quoteShort quotes a piece of input for an error message, cut to max runes,
// so that replies never echo much of what a caller sent.
func quoteShort(s string, max int) string {
	r := []rune(cleanString(s))
	if len(r) > max {
		return `"` + string(r[:max]) + `…"`
	}
	return `"` + string(r) + `"`
}
