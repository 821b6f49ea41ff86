package opener

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"function/atlassian"
	"function/backstage"
	"function/confluence"
	"function/incident"
	"function/internal/clip"
	"function/jira"
	"function/render"
	"function/render/adf"
	"function/store"
)

func comment(at time.Time, text string) jira.Comment {
	return jira.Comment{ADF: render.Comment(at, text), Wiki: render.WikiComment(at, text)}
}

// notify sends, or updates, the one Backstage notification of the rollback
// (its scope is the fingerprint).
func (o *Opener) notify(ctx context.Context, in *incident.Incident, rec store.Record) error {
	// The owner annotation may name a team in words (it is shown in the
	// incident); Backstage takes only an entity reference, and refuses the
	// whole notification otherwise.
	owner := ""
	for _, ref := range []string{in.Owner, o.cfg.BackstageOwner(in.Namespace, in.Name)} {
		if isEntityRef(ref) {
			owner = ref
			break
		}
	}
	n := backstage.Notification{
		Title:       fmt.Sprintf("Rollback: %s %s", in.Kind, in.Subject()),
		Description: fmt.Sprintf("%s opened: %s. Postmortem draft: %s", rec.JiraKey, rec.Timeline[len(rec.Timeline)-1].Text, rec.PageURL),
		Link:        o.jira.BrowseURL(rec.JiraKey),
		Severity:    "high",
		Topic:       "deployment-rollback",
		Scope:       "rollback:" + rec.Fingerprint,
	}
	switch {
	case owner != "":
		n.EntityRefs = []string{owner}
	case o.cfg.BackstageBroadcast:
		n.Broadcast = true
	default:
		loggerFrom(ctx, o.log).Info("no Backstage owner for this object and BACKSTAGE_BROADCAST is off: not notified")
		return nil
	}
	if len(n.Description) > 2000 {
		n.Description = clip.Text(n.Description, 2000)
	}
	if err := o.notifier.Send(ctx, n); err != nil {
		return fmt.Errorf("notify %s: %w", cmp.Or(owner, "broadcast"), err)
	}
	return nil
}

// ensureIssue finds the rollback's issue by its fingerprint label, reopens
// it, or creates one. It reports whether it created one.
func (o *Opener) ensureIssue(ctx context.Context, in *incident.Incident, rec *store.Record) (bool, error) {
	var reconcile []string
	if rec.JiraID != "" {
		reconcile = append(reconcile, rec.JiraID)
	} else if rec.Prior != nil && rec.Prior.JiraID != "" {
		// The issue the record held before its window passed: read by id,
		// its status is current even while the search index lags.
		reconcile = append(reconcile, rec.Prior.JiraID)
	}
	found, err := o.jira.FindByLabels(ctx, o.cfg.JiraAllowedProjects, []string{in.Label(), in.ObjectLabel()}, reconcile)
	if err != nil {
		return false, fmt.Errorf("find jira issue: %w", err)
	}
	var same, previous *jira.Found // newest first
	for i := range found {
		switch {
		case same == nil && found[i].HasLabel(in.Label()):
			same = &found[i]
		case previous == nil && !found[i].HasLabel(in.Label()):
			previous = &found[i]
		}
	}
	if same != nil {
		switch reuse, reopen := o.decide(in, *same); {
		case reopen:
			if err := o.reopen(ctx, rec.Fingerprint, *same); err != nil {
				return false, err
			}
			fallthrough
		case reuse:
			return false, o.adopt(ctx, in, rec, *same)
		default:
			// Over and done: a new incident, linked to this one.
			previous = same
		}
	} else if !rec.CreatingSince.IsZero() && time.Now().Sub(rec.CreatingSince) < o.cfg.JiraIndexGrace {
		return false, errIndexing
	}

	rec.CreatingSince = time.Now()
	if err := o.save(ctx, rec, "intent to create jira issue"); err != nil {
		return false, err
	}
	summary, err := o.renderer.Summary(in)
	if err != nil {
		return false, err
	}
	if previous != nil {
		rec.PreviousKey = previous.Key
	}
	rc := o.context(*rec, in)
	extra, extraLabels, err := o.renderer.Fields(in)
	if err != nil {
		// A template that fails on this event must not cost the incident.
		loggerFrom(ctx, o.log).Error("extra Jira fields left out", "error", err.Error())
		extra, extraLabels = nil, nil
	}
	if _, set := extra["priority"]; !set && rc.Priority != "" {
		if extra == nil {
			extra = map[string]json.RawMessage{}
		}
		extra["priority"], _ = json.Marshal(map[string]string{"name": rc.Priority})
	}
	doc, wiki := render.Description(in, rc), render.WikiDescription(in, rc)
	issue, err := o.jira.CreateIssue(ctx, jira.NewIssue{
		Project:     o.cfg.AllowedProject(in.RequestedProject),
		IssueType:   o.cfg.AllowedIssueType(in.RequestedIssueType),
		Summary:     summary,
		Description: doc,
		// Data Center takes wiki markup; the client sends what its Jira takes.
		WikiDescription: wiki,
		Labels:          append([]string{"rollback", in.Label(), in.ObjectLabel()}, extraLabels...),
		Extra:           extra,
	})
	if err != nil {
		// An answer that says the issue was not created (a 4xx, 429, 503)
		// leaves nothing to wait for; a lost answer (timeout, broken
		// connection, 500, 502, 504) might have, so the intent stays.
		if ae, ok := atlassian.AsError(err); ok && (ae.Status >= 400 && ae.Status < 500 || ae.Status == http.StatusServiceUnavailable) {
			rec.CreatingSince = time.Time{}
			if serr := o.save(context.WithoutCancel(ctx), rec, "create intent cleared"); serr != nil {
				// Safe, only slower: the kept intent makes the next
				// attempt search through the index grace before creating.
				loggerFrom(ctx, o.log).Warn("create intent not cleared", "error", serr.Error())
			}
		}
		return false, fmt.Errorf("create jira issue: %w", err)
	}
	rec.JiraID, rec.JiraKey, rec.CreatingSince, rec.OpenedAt = issue.ID, issue.Key, time.Time{}, time.Now()
	rec.DescriptionHash, rec.Described = o.descriptionHash(doc, wiki), rec.Incident
	if err := o.save(ctx, rec, "jira issue"); err != nil {
		return true, err
	}
	if previous != nil {
		if err := o.jira.UpsertRemoteLink(ctx, issue.Key, jira.RemoteLink{
			GlobalID: previousLinkPrefix + in.Fingerprint(), URL: o.jira.BrowseURL(previous.Key),
			Title: previous.Key + " (previous rollback of " + in.Subject() + ")", Relationship: "follows",
		}); err != nil {
			// The description names it too; a missing link is not worth a retry.
			loggerFrom(ctx, o.log).Warn("link to previous incident failed", "jira_key", issue.Key, "previous", previous.Key, "error", err.Error())
		}
	}
	return true, nil
}

// decide applies the reopen rule to an issue that carries the rollback's
// fingerprint: an open issue is reused; one resolved within REOPEN_WINDOW
// is reopened; one resolved longer ago, or opened longer than DEDUP_WINDOW
// ago for an event without a revision, is left alone and a new incident
// opens (Alertmanager's reopen_duration rule).
func (o *Opener) decide(in *incident.Incident, f jira.Found) (reuse, reopen bool) {
	if in.Revision == "" && !f.Created.IsZero() && time.Now().Sub(f.Created) >= o.cfg.DedupWindow {
		return false, false
	}
	if !f.Done() {
		return true, false
	}
	resolved := f.Resolved
	if resolved.IsZero() {
		resolved = f.Created
	}
	if time.Now().Sub(resolved) < o.cfg.ReopenWindow {
		return false, true
	}
	return false, false
}

// reopen moves a resolved issue back to an open status and says why; what
// failed follows as timeline comments. The comment carries an identity (the
// resolution it ends), so an attempt whose answer was lost does not post it
// twice.
func (o *Opener) reopen(ctx context.Context, fp string, f jira.Found) error {
	ts, err := o.jira.Transitions(ctx, f.Key)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", f.Key, err)
	}
	var pick *jira.Transition
	for i := range ts {
		if ts[i].ToCategoryDone {
			continue
		}
		// Prefer a transition meant for this, else the first way out of done.
		if pick == nil || ts[i].Name == "Reopen" || ts[i].Name == "Reopen Issue" {
			pick = &ts[i]
		}
	}
	if pick == nil {
		return fmt.Errorf("reopen %s: the workflow offers no transition out of a done status", f.Key)
	}
	if err := o.jira.DoTransition(ctx, f.Key, pick.ID); err != nil {
		return fmt.Errorf("reopen %s: %w", f.Key, err)
	}
	resolved := cmp.Or(f.Resolved, f.Created)
	id := fp + ":reopen:" + strconv.FormatInt(resolved.Unix(), 10)
	ids, err := o.jira.CommentIDs(ctx, f.Key)
	if err != nil {
		return fmt.Errorf("read comments of %s: %w", f.Key, err)
	}
	if !ids[id] {
		c := comment(time.Now(), "Reopened: the same rollback failed again after this incident was resolved on "+resolved.UTC().Format(time.RFC3339)+".")
		c.ID = id
		if err := o.jira.AddComment(ctx, f.Key, c); err != nil {
			return fmt.Errorf("comment on reopened %s: %w", f.Key, err)
		}
	}
	loggerFrom(ctx, o.log).Info("incident reopened", "jira_key", f.Key, "transition", pick.Name)
	return nil
}

// adopt makes the issue found by the rollback's label the record's, in
// one write that keeps news accepted meanwhile. It is the issue an earlier
// attempt created (its answer lost); or the one this record held before
// its window passed, and the record resumes from Prior with what came
// since as news; or one the record never knew (the record expired or was
// lost): what happened after the issue was created is news to it, perhaps
// posted before (so looked for first), and its description is taken for a
// person's.
func (o *Opener) adopt(ctx context.Context, in *incident.Incident, rec *store.Record, f jira.Found) error {
	saved, err := store.Update(ctx, o.store, rec.Fingerprint, func(r *store.Record) error {
		o.merge(r, rec)
		switch {
		case r.Prior != nil && r.Prior.JiraKey == f.Key:
			if err := resume(r); err != nil {
				return err
			}
		case r.CreatingSince.IsZero():
			for i := range r.Timeline {
				// An event from before the issue is one it was opened
				// for (a redelivery): as new as the record says.
				if e := &r.Timeline[i]; e.At.After(f.Created) {
					e.Commented, e.Commenting = false, true
				}
			}
			r.DescriptionHash = unknownDescription
		}
		r.Prior = nil
		r.JiraID, r.JiraKey, r.CreatingSince = f.ID, f.Key, time.Time{}
		if r.OpenedAt.IsZero() {
			r.OpenedAt = cmp.Or(f.Created, time.Now())
		}
		r.Resolved = false // open, or just reopened
		return nil
	})
	if err != nil {
		return fmt.Errorf("record jira issue: %w", err)
	}
	*rec = saved
	*in = incident.Incident{}
	if err := json.Unmarshal(rec.Incident, in); err != nil {
		return fmt.Errorf("decode incident %s: %w", rec.Fingerprint, err)
	}
	return nil
}

// unknownDescription stands for a description the function did not write,
// as far as it knows: no text hashes to it, so describe leaves the
// description to people and comments new facts.
const unknownDescription = "unknown"

// resume turns r, restarted after its window with Prior kept, back into
// Prior: the facts that came since are merged into Prior's (a refresh when
// they change anything), and the entries that came since are news to post.
func resume(r *store.Record) error {
	p := *r.Prior
	var cur, since incident.Incident
	if err := json.Unmarshal(p.Incident, &cur); err != nil {
		return fmt.Errorf("decode incident %s: %w", r.Fingerprint, err)
	}
	if err := json.Unmarshal(r.Incident, &since); err != nil {
		return fmt.Errorf("decode incident %s: %w", r.Fingerprint, err)
	}
	if incident.Merge(&cur, &since) {
		b, err := json.Marshal(&cur)
		if err != nil {
			return fmt.Errorf("encode incident %s: %w", r.Fingerprint, err)
		}
		p.Incident, p.Refresh = b, true
	}
	for _, e := range r.Timeline {
		if !p.HasEntry(e.Hash) {
			e.Commented, e.Commenting, e.OnPage = false, false, false
			p.Timeline = append(p.Timeline, e)
		}
	}
	p.Fingerprint, p.Revision, p.Pending = r.Fingerprint, r.Revision, r.Pending
	p.Refresh = p.Refresh || r.Refresh
	*r = p
	return nil
}

// ensurePage creates the postmortem page, or finds the one an earlier,
// interrupted delivery created: the title is unique per incident, so
// Confluence refuses a second page with it.
func (o *Opener) ensurePage(ctx context.Context, in *incident.Incident, rec *store.Record) error {
	spaceID, err := o.space(ctx)
	if err != nil {
		return err
	}
	title := render.PageTitle(in, rec.JiraKey)
	body, err := o.renderer.Page(in, o.context(*rec, in))
	if err != nil {
		return err
	}
	page, err := o.conf.CreatePage(ctx, confluence.NewPage{SpaceID: spaceID, ParentID: o.cfg.ConfluenceParentID, Title: title, Storage: body})
	if errors.Is(err, confluence.ErrDuplicateTitle) {
		var ok bool
		page, ok, err = o.conf.FindByTitle(ctx, spaceID, title)
		if err == nil && !ok {
			// Taken by a page the v2 API does not list (a draft): retrying
			// will not help; an operator must look.
			return fmt.Errorf("confluence page %q exists but cannot be found by title", title)
		}
	}
	if err != nil {
		return fmt.Errorf("create confluence page: %w", err)
	}
	rec.PageID, rec.PageURL, rec.PageTitle = page.ID, page.URL, page.Title
	for i := range rec.Timeline {
		rec.Timeline[i].OnPage = true // the page was rendered with every entry
	}
	return nil
}

// post adds timeline entry i to the issue as a comment, recording it as
// soon as it is done; the page's timeline is rewritten by refresh.
func (o *Opener) post(ctx context.Context, rec *store.Record, i int) error {
	e := &rec.Timeline[i]
	if !e.Commented {
		// The comment carries an identity: an attempt whose answer was lost
		// may have posted it, so look before posting again.
		id := rec.Fingerprint + ":" + e.Hash
		posted := false
		if e.Commenting {
			ids, err := o.jira.CommentIDs(ctx, rec.JiraKey)
			if err != nil {
				return fmt.Errorf("read comments of %s: %w", rec.JiraKey, err)
			}
			posted = ids[id]
		} else {
			e.Commenting = true
			if err := o.save(ctx, rec, "comment intent"); err != nil {
				return err
			}
			e = &rec.Timeline[i] // save replaced the record
		}
		if !posted {
			c := comment(e.At, e.Text)
			c.ID = id
			if err := o.jira.AddComment(ctx, rec.JiraKey, c); err != nil {
				return fmt.Errorf("comment on %s: %w", rec.JiraKey, err)
			}
		}
		e.Commented = true
		if err := o.save(ctx, rec, "timeline comment"); err != nil {
			return err
		}
		e = &rec.Timeline[i] // save replaced the record
	}
	return nil
}

func (o *Opener) space(ctx context.Context) (string, error) {
	o.spaceMu.Lock()
	defer o.spaceMu.Unlock()
	if o.spaceID != "" {
		return o.spaceID, nil
	}
	id, err := o.conf.SpaceID(ctx, o.cfg.ConfluenceSpace)
	if err != nil {
		return "", fmt.Errorf("resolve confluence space %s: %w", o.cfg.ConfluenceSpace, err)
	}
	o.spaceID = id
	return id, nil
}

// link puts the remote link to the postmortem on the issue; the globalId
// makes a repeat update the same link.
func (o *Opener) link(ctx context.Context, in *incident.Incident, rec *store.Record) error {
	if err := o.jira.UpsertRemoteLink(ctx, rec.JiraKey, jira.RemoteLink{
		GlobalID:     postmortemLinkPrefix + rec.Fingerprint,
		URL:          rec.PageURL,
		Title:        rec.PageTitle,
		Summary:      "Postmortem draft for " + in.Kind + " " + in.Subject(),
		Relationship: "postmortem",
		AppType:      "rollback-incident",
		AppName:      "Confluence",
	}); err != nil {
		return fmt.Errorf("link %s to page %s: %w", rec.JiraKey, rec.PageID, err)
	}
	rec.Linked = true
	return o.save(ctx, rec, "remote link")
}

// context is what the documents are rendered with: where the incident
// lives, when it opened, its owner and priority, the configured web UIs and
// every timeline entry the record holds.
func (o *Opener) context(rec store.Record, in *incident.Incident) render.Context {
	c := render.Context{
		JiraKey: rec.JiraKey, PageURL: rec.PageURL, Opened: rec.OpenedAt, PreviousKey: rec.PreviousKey,
		Owner:     cmp.Or(in.Owner, o.cfg.BackstageOwner(in.Namespace, in.Name)),
		Priority:  o.cfg.Priority(in.RequestedPriority),
		ArgoCDURL: o.cfg.ArgoCDURL, RolloutsDashboardURL: o.cfg.RolloutsDashboardURL, WorkflowsURL: o.cfg.WorkflowsURL,
	}
	if rec.JiraKey != "" {
		c.JiraURL = o.jira.BrowseURL(rec.JiraKey)
	}
	if rec.PreviousKey != "" {
		c.PreviousURL = o.jira.BrowseURL(rec.PreviousKey)
	}
	for _, e := range rec.Timeline {
		c.Timeline = append(c.Timeline, render.TimelineRow{At: e.At, Text: e.Text})
	}
	return c
}

// descriptionHash is the text hash of a description as this Jira stores it.
func (o *Opener) descriptionHash(doc adf.Doc, wiki string) string {
	if o.cfg.DataCenter() {
		return render.WikiHash(wiki)
	}
	return render.DescriptionHash(doc)
}

// refresh rewrites the page's generated sections (facts, failed analysis,
// timeline, next steps, durations) from the record when the facts changed
// or an entry is not on the page yet, keeping every section people wrote;
// on recovery it resolves the issue when RESOLVE_ON_RECOVERY says so.
// Rendering from the whole record makes a repeat harmless: an update whose
// answer was lost leaves nothing to add.
func (o *Opener) refresh(ctx context.Context, rec *store.Record) error {
	stale := rec.Refresh
	rendered := map[string]bool{}
	for _, e := range rec.Timeline {
		stale = stale || !e.OnPage
		rendered[e.Hash] = true
	}
	if !stale {
		return nil
	}
	snapshot := rec.Incident
	var in incident.Incident
	if err := json.Unmarshal(snapshot, &in); err != nil {
		return fmt.Errorf("decode incident %s: %w", rec.Fingerprint, err)
	}
	fresh, err := o.renderer.Page(&in, o.context(*rec, &in))
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		page, err := o.conf.GetPage(ctx, rec.PageID)
		if err != nil {
			return fmt.Errorf("read page %s: %w", rec.PageID, err)
		}
		updated := render.RefreshPage(page.Storage, fresh)
		if len(render.GeneratedSections(page.Storage)) == 0 {
			// A page written before the generated sections: add rows.
			for _, e := range rec.Timeline {
				if !e.OnPage {
					updated = render.AddTimelineRow(updated, e.At, e.Text)
				}
			}
		}
		if updated == page.Storage {
			break // nothing new on it: an update whose answer was lost
		}
		err = o.conf.UpdatePage(ctx, page, updated, page.Version+1, "rollback-incident: facts and timeline updated")
		if errors.Is(err, confluence.ErrVersionConflict) && attempt < 2 {
			continue // a person saved the page meanwhile: reapply on theirs
		}
		if err != nil {
			return fmt.Errorf("update page %s: %w", rec.PageID, err)
		}
		break
	}
	if rec.Refresh {
		if err := o.describe(ctx, rec, &in, snapshot); err != nil {
			return err
		}
	}
	if o.cfg.ResolveOnRecovery && in.Recovery != nil && !rec.Resolved {
		if err := o.resolve(ctx, rec.JiraKey); err != nil {
			return err
		}
		rec.Resolved = true
	}
	saved, err := store.Update(ctx, o.store, rec.Fingerprint, func(r *store.Record) error {
		o.merge(r, rec)
		for i := range r.Timeline {
			if rendered[r.Timeline[i].Hash] {
				r.Timeline[i].OnPage = true
			}
		}
		if bytes.Equal(r.Incident, snapshot) {
			r.Refresh = false // facts accepted meanwhile keep it set
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record refreshed page: %w", err)
	}
	*rec = saved
	return nil
}

// resolve moves the issue to a done status. An issue already done offers
// no transition into done, which counts as done.
func (o *Opener) resolve(ctx context.Context, key string) error {
	ts, err := o.jira.Transitions(ctx, key)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", key, err)
	}
	for _, t := range ts {
		if t.ToCategoryDone {
			if err := o.jira.DoTransition(ctx, key, t.ID); err != nil {
				return fmt.Errorf("resolve %s: %w", key, err)
			}
			loggerFrom(ctx, o.log).Info("incident resolved on recovery", "jira_key", key, "transition", t.Name)
			return nil
		}
	}
	return nil
}

// isEntityRef reports whether s has the form of a Backstage entity
// reference, kind:[namespace/]name.
func isEntityRef(s string) bool {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || kind == "" || rest == "" || strings.ContainsAny(s, " \t\n") {
		return false
	}
	ns, name, hasNS := strings.Cut(rest, "/")
	if hasNS {
		return ns != "" && name != "" && !strings.Contains(name, "/")
	}
	return true
}

// describe brings the Jira description up to the merged facts: rewritten
// while it is what the function last wrote (its text hash unchanged), else,
// since a person has edited it, the new facts arrive as one comment. The
// comment carries an identity, so a lost answer does not double it.
func (o *Opener) describe(ctx context.Context, rec *store.Record, in *incident.Incident, snapshot json.RawMessage) error {
	rc := o.context(*rec, in)
	doc, wiki := render.Description(in, rc), render.WikiDescription(in, rc)
	want := o.descriptionHash(doc, wiki)
	if want == rec.DescriptionHash || bytes.Equal(rec.Described, snapshot) {
		return nil // it says this already
	}
	adfJSON, wikiNow, err := o.jira.Description(ctx, rec.JiraKey)
	if err != nil {
		return fmt.Errorf("read description of %s: %w", rec.JiraKey, err)
	}
	now := render.WikiHash(wikiNow)
	if !o.cfg.DataCenter() {
		if now, err = render.ADFHash(adfJSON); err != nil {
			now = "" // unreadable: a person's, not ours
		}
	}
	switch {
	case now == want:
		// Written by an attempt whose answer was lost.
	case rec.DescriptionHash == "" || now == rec.DescriptionHash:
		if err := o.jira.SetDescription(ctx, rec.JiraKey, doc, wiki); err != nil {
			return fmt.Errorf("rewrite description of %s: %w", rec.JiraKey, err)
		}
	default:
		// A person edited it: leave it, and say what is new in a comment.
		var before incident.Incident
		if len(rec.Described) > 0 {
			if err := json.Unmarshal(rec.Described, &before); err != nil {
				return fmt.Errorf("decode described incident %s: %w", rec.Fingerprint, err)
			}
		}
		if cdoc, cwiki, changed := render.FactsComment(&before, in, rc); changed {
			id := rec.Fingerprint + ":facts:" + want
			ids, err := o.jira.CommentIDs(ctx, rec.JiraKey)
			if err != nil {
				return fmt.Errorf("read comments of %s: %w", rec.JiraKey, err)
			}
			if !ids[id] {
				if err := o.jira.AddComment(ctx, rec.JiraKey, jira.Comment{ADF: cdoc, Wiki: cwiki, ID: id}); err != nil {
					return fmt.Errorf("comment new facts on %s: %w", rec.JiraKey, err)
				}
			}
		}
		rec.Described = snapshot
		return o.save(ctx, rec, "facts comment")
	}
	rec.DescriptionHash, rec.Described = want, snapshot
	return o.save(ctx, rec, "description")
}
