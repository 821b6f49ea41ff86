package render

import (
	"fmt"
	"strings"
	"time"

	"function/incident"
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

// WikiDescription is Description for Jira Data Center: the same content in
// wiki markup.
func WikiDescription(in *incident.Incident, rel Related) string {
	var b strings.Builder
	headline := fmt.Sprintf("%s %s is %s", in.Kind, in.Subject(), firstNonEmpty(in.Phase, "failed"))
	if in.Reason != "" {
		headline += " (" + in.Reason + ")"
	}
	fmt.Fprintf(&b, "{panel:title=Rollback detected|bgColor=#FFEBE6}\n*%s*\n{panel}\n", WikiText(headline))
	if in.Message != "" {
		fmt.Fprintf(&b, "h3. What happened\n%s\n", wikiCode(in.Message))
	}
	b.WriteString("h3. Facts\n")
	for _, f := range Facts(in) {
		fmt.Fprintf(&b, "||%s|%s|\n", WikiText(f.Name), WikiText(f.Value))
	}
	fmt.Fprintf(&b, "||Fingerprint|{{%s}}|\n", WikiText(in.Fingerprint()))
	if len(in.Analysis) > 0 {
		b.WriteString("h3. Failed analysis\n")
		for _, a := range in.Analysis {
			fmt.Fprintf(&b, "* *%s* %s", WikiText(analysisName(a)), WikiText(AnalysisResult(a)))
			if len(a.Values) > 0 {
				fmt.Fprintf(&b, "; measurements: %s", WikiText(strings.Join(a.Values, ", ")))
			}
			if a.Message != "" && a.Message != in.Message {
				fmt.Fprintf(&b, "; %s", WikiText(a.Message))
			}
			b.WriteString("\n")
		}
	}
	if len(in.Resources) > 0 {
		b.WriteString("h3. Degraded resources\n")
		for _, r := range in.Resources {
			fmt.Fprintf(&b, "* %s\n", WikiText(resourceText(r)))
		}
	}
	if len(in.Links) > 0 {
		b.WriteString("h3. Links\n")
		for _, l := range in.Links {
			fmt.Fprintf(&b, "* %s\n", wikiLink(firstNonEmpty(l.Title, l.URL), l.URL))
		}
	}
	if rel.PreviousKey != "" {
		fmt.Fprintf(&b, "Previous incident for this %s: %s\n", strings.ToLower(in.Kind), wikiLink(rel.PreviousKey, rel.PreviousURL))
	}
	b.WriteString("The postmortem draft is linked to this issue. Opened automatically by rollback\\-incident.\n")
	return b.String()
}

// WikiComment is Comment in wiki markup.
func WikiComment(at time.Time, text string) string {
	return "*Update " + WikiText(formatTime(at)) + ":* " + WikiText(text)
}
