// Package clip shortens text for places with a size limit (a Jira
// summary, a log line, a reply's reason) without cutting a character in
// two.
package clip

import "unicode/utf8"

// Text returns s if it has at most max runes (max ≥ 1), else its first
// max-1 runes and "…": max runes either way, so a limit that counts
// characters holds.
func Text(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}
