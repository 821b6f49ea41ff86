package render

import (
	"strings"
	"time"
)

// Jira Data Center and Server take descriptions and comments in wiki
// markup. Event text is escaped so that it cannot open a macro, a link, a
// table cell or a format: every character with a meaning in wiki markup is
// preceded by a backslash, and line starts that would become headings,
// lists or quotes are defused.

// wikiSpecial are the characters with a meaning inside a line of wiki markup.
const wikiSpecial = `\*_-+^~|[]{}!#?@:()`

// WikiText escapes s for use as plain text in wiki markup.
func WikiText(s string) string {
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			// A line break inside a paragraph or cell; a bare newline in a
			// table cell would end the row.
			b.WriteString(`\\ `)
		}
		for _, r := range line {
			if strings.ContainsRune(wikiSpecial, r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// wikiCode puts s in a {noformat} block, where nothing is interpreted but
// the closing {noformat} itself, which is broken up.
func wikiCode(s string) string {
	return "{noformat}\n" + strings.ReplaceAll(s, "{noformat}", "{noformat\u200b}") + "\n{noformat}"
}

// wikiLink is a link whose URL was checked to be http(s) and whose text is
// escaped. A "|" or "]" in the URL would end the link, so they are
// percent-encoded.
func wikiLink(text, url string) string {
	url = strings.NewReplacer("|", "%7C", "]", "%5D", "[", "%5B", " ", "%20").Replace(url)
	return "[" + WikiText(text) + "|" + url + "]"
}

// WikiComment is Comment in wiki markup.
func WikiComment(at time.Time, text string) string {
	return "*Update " + WikiText(formatTime(at)) + ":* " + WikiText(text)
}
