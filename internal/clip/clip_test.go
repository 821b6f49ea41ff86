package clip

import (
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "ab…"},
		{"äöüß", 4, "äöüß"},
		{"äöüßx", 4, "äöü…"},
		{"日本語テキスト", 5, "日本語テ…"},
		{"ab", 1, "…"},
		{"a", 1, "a"},
	} {
		got := Text(c.in, c.max)
		if got != c.want {
			t.Errorf("Text(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
		if n := utf8.RuneCountInString(got); n > c.max || !utf8.ValidString(got) {
			t.Errorf("Text(%q, %d) = %q: %d runes, valid %v", c.in, c.max, got, n, utf8.ValidString(got))
		}
	}
}
