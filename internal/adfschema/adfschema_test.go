package adfschema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const validDoc = `{
  "type": "doc", "version": 1,
  "content": [
    {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Impact"}]},
    {"type": "paragraph", "content": [
      {"type": "text", "text": "Rolled back by "},
      {"type": "text", "text": "Argo Rollouts", "marks": [{"type": "link", "attrs": {"href": "https://argo.example/rollouts/payments"}}]},
      {"type": "hardBreak"},
      {"type": "status", "attrs": {"text": "ROLLED BACK", "color": "red"}}
    ]},
    {"type": "panel", "attrs": {"panelType": "info"}, "content": [
      {"type": "paragraph", "content": [{"type": "text", "text": "Automated incident", "marks": [{"type": "strong"}]}]}
    ]},
    {"type": "table", "content": [
      {"type": "tableRow", "content": [
        {"type": "tableHeader", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Service"}]}]},
        {"type": "tableHeader", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Version"}]}]}
      ]},
      {"type": "tableRow", "content": [
        {"type": "tableCell", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "payments-api"}]}]},
        {"type": "tableCell", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "1.42.0", "marks": [{"type": "code"}]}]}]}
      ]}
    ]},
    {"type": "codeBlock", "attrs": {"language": "bash"}, "content": [{"type": "text", "text": "kubectl argo rollouts undo payments"}]},
    {"type": "bulletList", "content": [
      {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "inlineCard", "attrs": {"url": "https://x.atlassian.net/wiki/spaces/ENG/pages/123"}}]}]}
    ]},
    {"type": "rule"}
  ]
}`

func TestValidateValid(t *testing.T) {
	var doc any
	if err := json.Unmarshal([]byte(validDoc), &doc); err != nil {
		t.Fatal(err)
	}
	if err := Validate(doc); err != nil {
		t.Fatalf("Validate(valid doc) = %v", err)
	}
	if err := ValidateJSON([]byte(validDoc)); err != nil {
		t.Fatalf("ValidateJSON(valid doc) = %v", err)
	}
	if err := Validate(json.RawMessage(validDoc)); err != nil {
		t.Fatalf("Validate(RawMessage) = %v", err)
	}
}

func TestValidateStruct(t *testing.T) {
	type node struct {
		Type    string `json:"type"`
		Version int    `json:"version,omitempty"`
		Text    string `json:"text,omitempty"`
		Content []node `json:"content,omitempty"`
	}
	doc := node{Type: "doc", Version: 1, Content: []node{{Type: "paragraph", Content: []node{{Type: "text", Text: "hi"}}}}}
	if err := Validate(doc); err != nil {
		t.Fatalf("Validate(struct) = %v", err)
	}
}

func TestValidateInvalid(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantPath string
		wantMsg  string
	}{
		{
			name:     "empty text node",
			doc:      `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":""}]}]}`,
			wantPath: "/content/0/content/0/text",
			wantMsg:  "minLength",
		},
		{
			name:     "missing version",
			doc:      `{"type":"doc","content":[]}`,
			wantPath: "/",
			wantMsg:  "version",
		},
		{
			name:     "unknown node type",
			doc:      `{"type":"doc","version":1,"content":[{"type":"bogus","content":[]}]}`,
			wantPath: "/content/0/type",
			wantMsg:  `"bogus"`,
		},
		{
			name:     "unknown inline node type",
			doc:      `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"blink","text":"x"}]}]}`,
			wantPath: "/content/0/content/0/type",
			wantMsg:  `"blink"`,
		},
		{
			name:     "bad panel type",
			doc:      `{"type":"doc","version":1,"content":[{"type":"panel","attrs":{"panelType":"shout"},"content":[{"type":"paragraph"}]}]}`,
			wantPath: "/content/0/attrs/panelType",
			wantMsg:  "",
		},
		{
			name:     "link mark without href",
			doc:      `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"x","marks":[{"type":"link","attrs":{}}]}]}]}`,
			wantPath: "/content/0/content/0/marks/0/attrs",
			wantMsg:  "href",
		},
		{
			name:     "not a doc",
			doc:      `"just a string"`,
			wantPath: "/",
			wantMsg:  "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateJSON([]byte(tt.doc))
			if err == nil {
				t.Fatal("ValidateJSON() = nil, want error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T %v is not a *ValidationError", err, err)
			}
			if !strings.Contains(err.Error(), tt.wantPath+":") {
				t.Errorf("error %q does not name path %q", err, tt.wantPath)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error message too long (%d bytes): %q", len(err.Error()), err)
			}
		})
	}
}

func TestValidateMalformedJSON(t *testing.T) {
	err := ValidateJSON([]byte(`{"type":`))
	if err == nil {
		t.Fatal("want error for malformed JSON")
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		t.Errorf("malformed JSON should not be a *ValidationError: %v", err)
	}
}

func TestNewIndependentValidator(t *testing.T) {
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ValidateJSON([]byte(validDoc)); err != nil {
		t.Fatal(err)
	}
	d1, _ := Default()
	d2, _ := Default()
	if d1 != d2 {
		t.Error("Default() should memoise the validator")
	}
	if len(SchemaJSON()) == 0 {
		t.Error("SchemaJSON() is empty")
	}
}
