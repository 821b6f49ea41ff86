// Package adfschema validates Atlassian Document Format (ADF) documents
// against the official ADF JSON schema published by Atlassian in
// @atlaskit/adf-schema (dist/json-schema/v1/full.json, see NOTICE).
//
// Jira Cloud REST v3 rejects rich-text fields that are not valid ADF, so
// both the emulator and the unit tests of ADF builders use this package to
// catch such documents before the real service would.
package adfschema

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// schemaURL is the identifier the embedded schema is registered under; it
// never leaves the process.
const schemaURL = "https://go.atlassian.com/adf-json-schema/v1/full.json"

//go:embed adf-full.v1.json
var schemaJSON []byte

// SchemaJSON returns a copy of the embedded ADF JSON schema (draft-04).
func SchemaJSON() []byte {
	return bytes.Clone(schemaJSON)
}

// Validator validates ADF documents. It is immutable after New and safe for
// concurrent use.
type Validator struct {
	schema *jsonschema.Schema
}

// New compiles the embedded ADF schema. Compilation takes a few
// milliseconds; prefer Default unless a private instance is needed.
func New() (*Validator, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, fmt.Errorf("adfschema: decode embedded schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("adfschema: add embedded schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("adfschema: compile embedded schema: %w", err)
	}
	return &Validator{schema: s}, nil
}

// defaultValidator memoises the compiled schema. The memoised value is
// immutable, so sharing it between goroutines and tests is safe.
var defaultValidator = sync.OnceValues(New)

// Default returns a process-wide Validator, compiling the schema on first
// use.
func Default() (*Validator, error) {
	return defaultValidator()
}

// Validate validates doc with the Default validator. See
// (*Validator).Validate.
func Validate(doc any) error {
	v, err := Default()
	if err != nil {
		return err
	}
	return v.Validate(doc)
}

// ValidateJSON validates a JSON-encoded document with the Default
// validator.
func ValidateJSON(data []byte) error {
	v, err := Default()
	if err != nil {
		return err
	}
	return v.ValidateJSON(data)
}

// Validate validates doc, which may be a decoded JSON value (for example
// the result of json.Unmarshal into an any), a json.RawMessage / []byte, or
// any value that marshals to JSON (for example an ADF builder's structs).
// The returned error is a *ValidationError when the document is not valid
// ADF.
func (v *Validator) Validate(doc any) error {
	switch d := doc.(type) {
	case json.RawMessage:
		return v.ValidateJSON(d)
	case []byte:
		return v.ValidateJSON(d)
	}
	// Round-trip through encoding/json: the schema validator understands
	// only JSON-shaped values (maps, slices, json.Number), not structs.
	data, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("adfschema: encode document: %w", err)
	}
	return v.ValidateJSON(data)
}

// ValidateJSON validates a JSON-encoded document.
func (v *Validator) ValidateJSON(data []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("adfschema: decode document: %w", err)
	}
	err = v.schema.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("adfschema: validate: %w", err)
	}
	return &ValidationError{Problems: summarise(ve, inst)}
}

// Problem is one reason a document is invalid.
type Problem struct {
	// Path is a JSON pointer into the document, e.g. "/content/0/content/1/text".
	Path string
	// Message describes the failed constraint.
	Message string
}

func (p Problem) String() string {
	path := p.Path
	if path == "" {
		path = "/"
	}
	return path + ": " + p.Message
}

// ValidationError reports why a document is not valid ADF. The raw
// validator output for ADF is hundreds of lines (every node type is an
// anyOf branch), so Problems holds only the most specific failures.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 0 {
		return "invalid ADF document"
	}
	msg := "invalid ADF document at " + e.Problems[0].String()
	if n := len(e.Problems) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return msg
}

// maxProblems bounds the size of error messages sent back to clients.
const maxProblems = 3

// summarise reduces the validator's error tree to the deepest failures,
// pruning anyOf/oneOf branches that were written for a different node type
// (those fail on "/type" and say nothing useful about the document).
func summarise(root *jsonschema.ValidationError, inst any) []Problem {
	var leaves []leaf
	collect(root, inst, &leaves)
	maxDepth := -1
	for _, l := range leaves {
		maxDepth = max(maxDepth, len(l.loc))
	}
	seen := map[Problem]bool{}
	var out []Problem
	for _, l := range leaves {
		if len(l.loc) != maxDepth {
			continue
		}
		p := Problem{Path: pointer(l.loc), Message: l.msg}
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
		if len(out) == maxProblems {
			break
		}
	}
	return out
}

type leaf struct {
	loc []string
	msg string
}

func collect(e *jsonschema.ValidationError, inst any, out *[]leaf) {
	if len(e.Causes) == 0 {
		*out = append(*out, leaf{loc: e.InstanceLocation, msg: kindMessage(e)})
		return
	}
	causes := e.Causes
	switch e.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
		var matching []*jsonschema.ValidationError
		for _, c := range causes {
			if !typeMismatch(c, e.InstanceLocation) {
				matching = append(matching, c)
			}
		}
		if len(matching) == 0 {
			typeLoc := append(append([]string(nil), e.InstanceLocation...), "type")
			*out = append(*out, leaf{
				loc: typeLoc,
				msg: fmt.Sprintf("node type %s is unknown or not allowed here", describe(lookup(inst, typeLoc))),
			})
			return
		}
		causes = matching
	}
	for _, c := range causes {
		collect(c, inst, out)
	}
}

// typeMismatch reports whether the branch e failed because the node at loc
// has a different "type" than the branch describes.
func typeMismatch(e *jsonschema.ValidationError, loc []string) bool {
	switch e.ErrorKind.(type) {
	case *kind.Enum, *kind.Const:
		if len(e.InstanceLocation) == len(loc)+1 &&
			e.InstanceLocation[len(loc)] == "type" &&
			slices.Equal(e.InstanceLocation[:len(loc)], loc) {
			return true
		}
	}
	for _, c := range e.Causes {
		if typeMismatch(c, loc) {
			return true
		}
	}
	return false
}

// kindMessage renders only the failed constraint of e, without location.
func kindMessage(e *jsonschema.ValidationError) string {
	single := &jsonschema.ValidationError{SchemaURL: e.SchemaURL, ErrorKind: e.ErrorKind}
	return strings.TrimPrefix(single.Error(), "at '': ")
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return sb.String()
}

func lookup(v any, tokens []string) any {
	for _, t := range tokens {
		switch c := v.(type) {
		case map[string]any:
			v = c[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func describe(v any) string {
	if v == nil {
		return "(missing)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
