package emulator

import (
	"encoding/json"
	"testing"

	"function/internal/adfschema"
)

func TestWikiADFConversions(t *testing.T) {
	for _, in := range []string{"", "plain", "h1. Title\n\npara one\npara two\n\nh3.\n* item", "  \n\n  "} {
		adf := wikiToADF(in)
		if err := adfschema.ValidateJSON(adf); err != nil {
			t.Errorf("wikiToADF(%q) is not valid ADF: %v\n%s", in, err, adf)
		}
	}
	doc, _ := json.Marshal(map[string]any{"type": "doc", "version": 1, "content": []any{
		map[string]any{"type": "heading", "attrs": map[string]any{"level": 2}, "content": []any{map[string]any{"type": "text", "text": "Impact"}}},
		map[string]any{"type": "paragraph", "content": []any{
			map[string]any{"type": "text", "text": "see "},
			map[string]any{"type": "text", "text": "Argo", "marks": []any{map[string]any{"type": "link", "attrs": map[string]any{"href": "https://argo.example"}}}},
			map[string]any{"type": "text", "text": " now", "marks": []any{map[string]any{"type": "strong"}}},
		}},
		map[string]any{"type": "bulletList", "content": []any{
			map[string]any{"type": "listItem", "content": []any{map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": "a"}}}}},
		}},
	}})
	want := "h2. Impact\nsee [Argo|https://argo.example] *now*\n* a"
	if got := adfToWiki(doc); got != want {
		t.Errorf("adfToWiki = %q, want %q", got, want)
	}
}
