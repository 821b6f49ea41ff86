package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"function/incident"
	"function/render/adf"
)

// descriptionBlocks is the Jira description: what happened, every fact of
// every event merged into the incident, the failed analysis, the next
// steps and the related records. Rendered again from the merged incident,
// it replaces the previous one whole.
func descriptionBlocks(in *incident.Incident, c Context) []block {
	v := newView(in, c)
	panel := "error"
	if v.isRecovered() {
		panel = "success"
	}
	blocks := []block{
		{kind: bPanel, panel: panel, title: headline(in), spans: []span{bold(Title(in)), plain(" · " + v.statusText())}},
		heading("What happened"),
		para(plain(v.what())),
	}
	if in.Message != "" {
		blocks = append(blocks, para(bold("Message:"), plain(" "+in.Message)))
	}
	blocks = append(blocks, para(plain(v.recoverySentence())))

	facts := append(v.ownerFacts(), Facts(in)...)
	facts = append(facts, v.timeFacts()...)
	facts = append(facts, v.durationFacts()...)
	facts = append(facts, Fact{"Fingerprint", in.Fingerprint()})
	blocks = append(blocks, heading("Facts"), factsTable(facts))

	if rows := AnalysisRows(in); len(rows) > 0 {
		t := block{kind: bTable, header: analysisHeader}
		for _, r := range rows {
			t.rows = append(t.rows, [][]span{{plain(r.Metric)}, {plain(r.Provider)}, {plain(r.Result)}, {mono(r.Values)}, {plain(r.Limit)}})
		}
		blocks = append(blocks, heading("Failed analysis"), t)
	}
	if len(in.Resources) > 0 {
		var items [][]span
		for _, r := range in.Resources {
			items = append(items, []span{plain(resourceText(r, in.Message))})
		}
		blocks = append(blocks, heading("Degraded resources"), list(items...))
	}

	cmds, links := NextSteps(in), v.links()
	if len(cmds) > 0 || len(links) > 0 {
		blocks = append(blocks, heading("Next steps"), codeBlock(commandsText(cmds)))
		var items [][]span
		for _, l := range links {
			items = append(items, []span{linked(l.Title, l.URL)})
		}
		blocks = append(blocks, list(items...))
	}

	var related [][]span
	if c.PageURL != "" {
		related = append(related, []span{plain("Postmortem: "), linked("postmortem draft", c.PageURL)})
	}
	if c.PreviousKey != "" {
		related = append(related, []span{plain("Previous incident of " + in.Kind + " " + in.Subject() + ": "), linked(c.PreviousKey, c.PreviousURL)})
	}
	for _, l := range c.Related {
		related = append(related, []span{linked(l.Title, l.URL)})
	}
	if len(related) > 0 {
		blocks = append(blocks, heading("Related"), list(related...))
	}
	blocks = append(blocks, para(plain("Opened automatically by rollback-incident, which keeps this description up to date as events arrive until someone edits it.")))
	return blocks
}

var analysisHeader = []string{"Metric", "Provider", "Result", "Last measured values", "Failure limit"}

// Description is the Jira description as ADF (Jira Cloud).
func Description(in *incident.Incident, c Context) adf.Doc {
	return toADF(descriptionBlocks(in, c))
}

// WikiDescription is the same description in wiki markup (Jira Data
// Center).
func WikiDescription(in *incident.Incident, c Context) string {
	return toWiki(descriptionBlocks(in, c))
}

// Comment is the Jira comment for news about an open incident.
func Comment(at time.Time, text string) adf.Doc {
	return adf.NewDoc(
		adf.Paragraph(adf.Text("Update "+formatTime(at)+": ", adf.Strong()), adf.Text(text)),
	)
}

// ---- hashes -----------------------------------------------------------------

// The opener rewrites the description only while nobody has edited it: it
// keeps the hash of what it wrote and compares it with the hash of what
// Jira returns. Jira Cloud may give the ADF back reformatted (keys in
// another order, attributes added such as table localIds, marks
// reordered), so the hash is of the document's text alone: every text
// node, and the text-bearing attributes of the inline nodes a person
// inserts (mentions, emoji, status, dates, cards), each block on its own
// line, white space collapsed. A person's edit changes the text; Jira's
// reformatting does not. Wiki markup comes back as it was stored, up to
// line endings, so the same white-space collapse makes its hash.

// DescriptionHash is the hash of an ADF description the function writes.
func DescriptionHash(doc adf.Doc) string {
	b, err := json.Marshal(doc)
	if err != nil {
		// adf.Doc holds only strings, numbers, booleans and maps of them.
		panic(fmt.Sprintf("render: marshal ADF: %v", err))
	}
	h, err := ADFHash(b)
	if err != nil {
		panic(fmt.Sprintf("render: hash ADF: %v", err))
	}
	return h
}

// ADFHash is the hash of an ADF document as Jira returns it (the
// description field of GET /rest/api/3/issue/{key}); it equals
// DescriptionHash of the document written when nobody has edited it. A
// JSON null (no description) hashes as an empty document.
func ADFHash(raw []byte) (string, error) {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return "", fmt.Errorf("description is not JSON: %w", err)
	}
	var b strings.Builder
	adfText(&b, doc)
	return textHash(b.String()), nil
}

// WikiHash is the hash of a wiki-markup description, written or as Jira
// Data Center returns it.
func WikiHash(wiki string) string { return textHash(wiki) }

func textHash(s string) string {
	sum := sha256.Sum256([]byte(strings.Join(strings.Fields(s), " ")))
	return hex.EncodeToString(sum[:])
}

// adfText writes the text of an ADF node and its children.
func adfText(b *strings.Builder, n any) {
	node, ok := n.(map[string]any)
	if !ok {
		return
	}
	typ, _ := node["type"].(string)
	if t, ok := node["text"].(string); ok {
		b.WriteString(t)
	}
	if marks, ok := node["marks"].([]any); ok {
		for _, m := range marks {
			if mm, ok := m.(map[string]any); ok && mm["type"] == "link" {
				if attrs, ok := mm["attrs"].(map[string]any); ok {
					if href, ok := attrs["href"].(string); ok {
						// A changed link target is an edit too.
						b.WriteString(" <" + href + ">")
					}
				}
			}
		}
	}
	if attrs, ok := node["attrs"].(map[string]any); ok {
		switch typ {
		case "mention", "status", "emoji", "date", "inlineCard", "blockCard", "embedCard":
			for _, k := range []string{"text", "shortName", "timestamp", "url"} {
				if s, ok := attrs[k].(string); ok {
					b.WriteString(" " + s + " ")
				}
			}
		}
	}
	if content, ok := node["content"].([]any); ok {
		for _, c := range content {
			adfText(b, c)
		}
	}
	switch typ {
	case "text", "mention", "emoji", "date", "status", "inlineCard":
	default:
		// Blocks, and a hardBreak, end a line.
		b.WriteString("\n")
	}
}

// FactsComment is the comment that carries what a later event added to an
// incident whose description a person has edited (which the function then
// leaves alone): the facts that are new or changed from before to after,
// the failed metrics that are new or changed, and the recovery with its
// durations when after has recovered and before had not. changed is false
// when after says nothing before did not (post no comment then).
func FactsComment(before, after *incident.Incident, c Context) (doc adf.Doc, wiki string, changed bool) {
	old := map[string]string{}
	for _, f := range Facts(before) {
		old[f.Name] = f.Value
	}
	var facts []Fact
	for _, f := range Facts(after) {
		if old[f.Name] != f.Value {
			facts = append(facts, f)
		}
	}
	v := newView(after, c)
	recovered := v.isRecovered() && before.Recovery == nil
	if recovered {
		facts = append(facts, v.timeFacts()...)
		facts = append(facts, v.durationFacts()...)
	}
	var rows [][][]span
	oldRows := AnalysisRows(before)
	for _, r := range AnalysisRows(after) {
		if !slices.Contains(oldRows, r) {
			rows = append(rows, [][]span{{plain(r.Metric)}, {plain(r.Provider)}, {plain(r.Result)}, {mono(r.Values)}, {plain(r.Limit)}})
		}
	}
	if len(facts) == 0 && len(rows) == 0 && !recovered {
		return adf.Doc{}, "", false
	}
	blocks := []block{para(bold("New facts."), plain(" The description was edited, so rollback-incident adds what later events told here."))}
	if recovered {
		blocks = append(blocks, para(plain(v.recoverySentence())))
	}
	blocks = append(blocks, factsTable(facts))
	if len(rows) > 0 {
		blocks = append(blocks, heading("Failed analysis"), block{kind: bTable, header: analysisHeader, rows: rows})
	}
	return toADF(blocks), toWiki(blocks), true
}
