package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"function/atlassian"
	"function/backstage"
	"function/config"
	"function/confluence"
	"function/incident"
	"function/jira"
	"function/render"
	"function/store"
)

// Jira is what opening an incident needs of Jira.
type Jira interface {
	CreateIssue(ctx context.Context, n jira.NewIssue) (jira.Issue, error)
	FindByLabels(ctx context.Context, projects, labels []string, reconcile []string) ([]jira.Found, error)
	UpsertRemoteLink(ctx context.Context, issueKey string, l jira.RemoteLink) (bool, error)
	AddComment(ctx context.Context, issueKey string, body jira.Comment) error
	Transitions(ctx context.Context, issueKey string) ([]jira.Transition, error)
	DoTransition(ctx context.Context, issueKey, id string) error
	BrowseURL(key string) string
}

// Confluence is what opening an incident needs of Confluence.
type Confluence interface {
	SpaceID(ctx context.Context, key string) (string, error)
	CreatePage(ctx context.Context, n confluence.NewPage) (confluence.Page, error)
	FindByTitle(ctx context.Context, spaceID, title string) (confluence.Page, bool, error)
	GetPage(ctx context.Context, id string) (confluence.Stored, error)
	UpdatePage(ctx context.Context, p confluence.Stored, storage string, version int, message string) error
}

// Notifier tells the owning team (Backstage).
type Notifier interface {
	Send(ctx context.Context, n backstage.Notification) error
}

// Opener opens the incident for a rollback: one Jira issue, one Confluence
// page, linked both ways, and keeps the incident's timeline as later events
// bring news. Every step is idempotent and recorded as soon as it is done,
// so a redelivery after any failure finishes the work without doubling it.
type Opener struct {
	cfg      config.Config
	jira     Jira
	conf     Confluence
	store    store.Store
	renderer *render.Renderer
	links    []render.LinkTemplate
	notifier Notifier // nil: no notifications
	log      *slog.Logger
	now      func() time.Time

	spaceMu sync.Mutex
	spaceID string // resolved once, lazily: Confluence may be down at start
}

// Extras are the optional parts of the opening.
type Extras struct {
	Links    []render.LinkTemplate // added to every incident
	Notifier Notifier              // nil: no notifications
}

// NewOpener wires the steps.
func NewOpener(cfg config.Config, j Jira, c Confluence, s store.Store, r *render.Renderer, x Extras, log *slog.Logger) *Opener {
	return &Opener{cfg: cfg, jira: j, conf: c, store: s, renderer: r, links: x.Links, notifier: x.Notifier, log: log, now: time.Now}
}

// Outcome is what Open did.
type Outcome struct {
	Status  Status // StatusCreated or StatusExisting
	JiraKey string
	JiraURL string
	PageID  string
	PageURL string
	News    bool // the event added an entry to the incident's timeline
}

// Link globalIds: one link per rollback whatever page id it points at, and
// one to the object's previous incident.
const (
	postmortemLinkPrefix = "rollback-incident:postmortem:"
	previousLinkPrefix   = "rollback-incident:previous:"
)

// errIndexing asks the caller to retry later: an earlier attempt may have
// created the issue, and search does not show it yet.
var errIndexing = errors.New("an earlier attempt may have created the Jira issue; waiting for Jira's search index before creating it again")

// Open runs the steps that the record says are not done yet. On error the
// outcome still carries what was done, for the reply and the logs.
func (o *Opener) Open(ctx context.Context, in *incident.Incident) (out Outcome, err error) {
	fp, news := in.Fingerprint(), in.NewsHash()
	out.Status = StatusExisting

	// Fast path: a finished incident that already has this news needs no
	// lock and no Atlassian call. Most deliveries of a storm end here.
	if rec, ok, err := o.store.Get(ctx, fp); err == nil && ok && rec.Done() && rec.HasEntry(news) && o.notified(rec) && o.current(rec, in) {
		o.fill(&out, rec)
		return out, nil
	}

	// The lock outlives the request deadline a little, so it lapses only
	// when its holder is gone.
	unlock, err := o.store.Lock(ctx, fp, o.cfg.RequestDeadline+5*time.Second)
	if err != nil {
		return out, fmt.Errorf("lock %s: %w", fp, err)
	}
	defer unlock()

	rec, _, err := o.store.Get(ctx, fp)
	if err != nil {
		return out, fmt.Errorf("read record %s: %w", fp, err)
	}
	if err := render.AddLinks(in, o.links); err != nil {
		loggerFrom(ctx, o.log).Warn("configured link not added", "error", err.Error())
	}
	rec.Fingerprint = fp
	defer func() { o.fill(&out, rec) }()

	if !o.current(rec, in) {
		// The record belongs to an incident that is over (window passed):
		// start afresh; ensureIssue decides between reopening and a new one.
		rec = store.Record{Fingerprint: fp, Revision: rec.Revision}
	}
	if rec.JiraKey == "" {
		created, err := o.ensureIssue(ctx, in, &rec)
		if err != nil {
			return out, err
		}
		if created {
			out.Status = StatusCreated
		}
	}
	if rec.PageID == "" {
		if err := o.ensurePage(ctx, in, &rec); err != nil {
			return out, err
		}
		if err := o.put(ctx, &rec, "confluence page"); err != nil {
			return out, err
		}
	}
	if !rec.Linked {
		if _, err := o.jira.UpsertRemoteLink(ctx, rec.JiraKey, jira.RemoteLink{
			GlobalID:     postmortemLinkPrefix + fp,
			URL:          rec.PageURL,
			Title:        rec.PageTitle,
			Summary:      "Postmortem draft for " + in.Kind + " " + in.Subject(),
			Relationship: "postmortem",
			AppType:      "rollback-incident",
			AppName:      "Confluence",
		}); err != nil {
			return out, fmt.Errorf("link %s to page %s: %w", rec.JiraKey, rec.PageID, err)
		}
		rec.Linked = true
		if err := o.put(ctx, &rec, "remote link"); err != nil {
			return out, err
		}
	}
	if !rec.HasEntry(news) {
		// The first entry is what the issue and the page were opened
		// with; later ones are news to post.
		first := len(rec.Timeline) == 0
		rec.Timeline = append(rec.Timeline, store.Entry{Hash: news, At: o.eventTime(in), Text: render.TimelineEntry(in), Commented: first, OnPage: first})
		out.News = !first
		if err := o.put(ctx, &rec, "timeline entry"); err != nil {
			return out, err
		}
	}
	for i := range rec.Timeline {
		if err := o.post(ctx, &rec, i); err != nil {
			return out, err
		}
	}
	if !o.notified(rec) {
		if err := o.notify(ctx, in, rec); err != nil {
			return out, err
		}
		rec.Notified = rec.Timeline[len(rec.Timeline)-1].Hash
		if err := o.put(ctx, &rec, "notification"); err != nil {
			return out, err
		}
	}
	return out, nil
}

func comment(at time.Time, text string) jira.Comment {
	return jira.Comment{ADF: render.Comment(at, text), Wiki: render.WikiComment(at, text)}
}

// notified reports whether the owners have heard the latest news.
func (o *Opener) notified(rec store.Record) bool {
	return o.notifier == nil || len(rec.Timeline) == 0 || rec.Notified == rec.Timeline[len(rec.Timeline)-1].Hash
}

// notify sends, or updates, the one Backstage notification of the rollback
// (its scope is the fingerprint).
func (o *Opener) notify(ctx context.Context, in *incident.Incident, rec store.Record) error {
	owner := firstNonEmpty(in.Owner, o.cfg.BackstageOwner(in.Namespace, in.Name))
	n := backstage.Notification{
		Title:       fmt.Sprintf("Rollback: %s %s", in.Kind, in.Subject()),
		Description: fmt.Sprintf("%s opened: %s. Postmortem draft: %s", rec.JiraKey, rec.Timeline[len(rec.Timeline)-1].Text, rec.PageURL),
		Link:        o.jira.BrowseURL(rec.JiraKey),
		Severity:    "high",
		Topic:       "deployment-rollback",
		Scope:       "rollback:" + in.Fingerprint(),
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
		n.Description = clipText(n.Description, 2000)
	}
	if err := o.notifier.Send(ctx, n); err != nil {
		return fmt.Errorf("notify %s: %w", firstNonEmpty(owner, "broadcast"), err)
	}
	return nil
}

func (o *Opener) fill(out *Outcome, rec store.Record) {
	out.JiraKey, out.PageID, out.PageURL = rec.JiraKey, rec.PageID, rec.PageURL
	if rec.JiraKey != "" {
		out.JiraURL = o.jira.BrowseURL(rec.JiraKey)
	}
}

func (o *Opener) put(ctx context.Context, rec *store.Record, what string) error {
	saved, err := o.store.Put(ctx, *rec)
	if err != nil {
		return fmt.Errorf("record %s: %w", what, err)
	}
	*rec = saved
	return nil
}

// current reports whether rec may be trusted without asking Jira: within
// DEDUP_WINDOW of its last update. An older record may belong to an
// incident that people have resolved since, so the slow path looks at the
// issue again and applies the reopen rule.
func (o *Opener) current(rec store.Record, _ *incident.Incident) bool {
	return rec.UpdatedAt.IsZero() || o.now().Sub(rec.UpdatedAt) < o.cfg.DedupWindow
}

func (o *Opener) eventTime(in *incident.Incident) time.Time {
	if !in.Time.IsZero() {
		return in.Time
	}
	return o.now()
}

// ensureIssue finds the rollback's issue by its fingerprint label, reopens
// it, or creates one. It reports whether it created one.
func (o *Opener) ensureIssue(ctx context.Context, in *incident.Incident, rec *store.Record) (bool, error) {
	var reconcile []string
	if rec.JiraID != "" {
		reconcile = append(reconcile, rec.JiraID)
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
			if err := o.reopen(ctx, in, same.Key); err != nil {
				return false, err
			}
			fallthrough
		case reuse:
			rec.JiraID, rec.JiraKey, rec.CreatingSince = same.ID, same.Key, time.Time{}
			return false, o.put(ctx, rec, "jira issue")
		default:
			// Over and done: a new incident, linked to this one.
			previous = same
		}
	} else if !rec.CreatingSince.IsZero() && o.now().Sub(rec.CreatingSince) < o.cfg.JiraIndexGrace {
		return false, errIndexing
	}

	rec.CreatingSince = o.now()
	if err := o.put(ctx, rec, "intent to create jira issue"); err != nil {
		return false, err
	}
	summary, err := o.renderer.Summary(in)
	if err != nil {
		return false, err
	}
	var rel render.Related
	if previous != nil {
		rel = render.Related{PreviousKey: previous.Key, PreviousURL: o.jira.BrowseURL(previous.Key)}
	}
	extra, extraLabels, err := o.renderer.Fields(in)
	if err != nil {
		// A template that fails on this event must not cost the incident.
		loggerFrom(ctx, o.log).Error("extra Jira fields left out", "error", err.Error())
		extra, extraLabels = nil, nil
	}
	issue, err := o.jira.CreateIssue(ctx, jira.NewIssue{
		Project:     o.cfg.AllowedProject(in.RequestedProject),
		IssueType:   o.cfg.AllowedIssueType(in.RequestedIssueType),
		Summary:     summary,
		Description: render.Description(in, rel),
		// Data Center takes wiki markup; the client sends what its Jira takes.
		WikiDescription: render.WikiDescription(in, rel),
		Labels:          append([]string{"rollback", in.Label(), in.ObjectLabel()}, extraLabels...),
		Extra:           extra,
	})
	if err != nil {
		// An answer that says the issue was not created (a 4xx, 429, 503)
		// leaves nothing to wait for; a lost answer (timeout, broken
		// connection, 500, 502, 504) might have, so the intent stays.
		if ae, ok := atlassian.AsError(err); ok && (ae.Status >= 400 && ae.Status < 500 || ae.Status == http.StatusServiceUnavailable) {
			rec.CreatingSince = time.Time{}
			_ = o.put(context.WithoutCancel(ctx), rec, "create intent cleared")
		}
		return false, fmt.Errorf("create jira issue: %w", err)
	}
	rec.JiraID, rec.JiraKey, rec.CreatingSince = issue.ID, issue.Key, time.Time{}
	if err := o.put(ctx, rec, "jira issue"); err != nil {
		return true, err
	}
	if previous != nil {
		if _, err := o.jira.UpsertRemoteLink(ctx, issue.Key, jira.RemoteLink{
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
	if in.Revision == "" && !f.Created.IsZero() && o.now().Sub(f.Created) >= o.cfg.DedupWindow {
		return false, false
	}
	if !f.Done() {
		return true, false
	}
	resolved := f.Resolved
	if resolved.IsZero() {
		resolved = f.Created
	}
	if o.now().Sub(resolved) < o.cfg.ReopenWindow {
		return false, true
	}
	return false, false
}

// reopen moves a resolved issue back to an open status and says why.
func (o *Opener) reopen(ctx context.Context, in *incident.Incident, key string) error {
	ts, err := o.jira.Transitions(ctx, key)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", key, err)
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
		return fmt.Errorf("reopen %s: the workflow offers no transition out of a done status", key)
	}
	if err := o.jira.DoTransition(ctx, key, pick.ID); err != nil {
		return fmt.Errorf("reopen %s: %w", key, err)
	}
	if err := o.jira.AddComment(ctx, key, comment(o.now(), "Reopened: failed again. "+render.TimelineEntry(in))); err != nil {
		return fmt.Errorf("comment on reopened %s: %w", key, err)
	}
	loggerFrom(ctx, o.log).Info("incident reopened", "jira_key", key, "transition", pick.Name)
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
	body, err := o.renderer.Page(in, render.PageContext{
		JiraKey: rec.JiraKey, JiraURL: o.jira.BrowseURL(rec.JiraKey), Opened: o.now(),
	})
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
	return nil
}

// post adds timeline entry i to the issue (a comment) and to the page (a
// row in its timeline table, keeping what people wrote on the page),
// recording each as soon as it is done.
func (o *Opener) post(ctx context.Context, rec *store.Record, i int) error {
	e := &rec.Timeline[i]
	if !e.Commented {
		if err := o.jira.AddComment(ctx, rec.JiraKey, comment(e.At, e.Text)); err != nil {
			return fmt.Errorf("comment on %s: %w", rec.JiraKey, err)
		}
		e.Commented = true
		if err := o.put(ctx, rec, "timeline comment"); err != nil {
			return err
		}
		e = &rec.Timeline[i] // put replaced the record
	}
	if e.OnPage {
		return nil
	}
	for attempt := 0; ; attempt++ {
		page, err := o.conf.GetPage(ctx, rec.PageID)
		if err != nil {
			return fmt.Errorf("read page %s: %w", rec.PageID, err)
		}
		err = o.conf.UpdatePage(ctx, page, render.AddTimelineRow(page.Storage, e.At, e.Text), page.Version+1, "timeline: "+clipText(e.Text, 80))
		if errors.Is(err, confluence.ErrVersionConflict) && attempt < 2 {
			continue // a person saved the page meanwhile: reapply on theirs
		}
		if err != nil {
			return fmt.Errorf("update page %s: %w", rec.PageID, err)
		}
		break
	}
	e.OnPage = true
	return o.put(ctx, rec, "timeline row")
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

func isTemporary(err error) bool {
	return atlassian.IsTemporary(err) || errors.Is(err, store.ErrUnavailable) || errors.Is(err, errIndexing)
}

func isAtlassian(err error) bool {
	_, ok := atlassian.AsError(err)
	return ok || errors.Is(err, confluence.ErrSpaceNotFound)
}

func retryDelay(err error) time.Duration {
	if ae, ok := atlassian.AsError(err); ok && ae.RetryAfter > 0 {
		return ae.RetryAfter
	}
	if errors.Is(err, errIndexing) {
		return 30 * time.Second
	}
	return 5 * time.Second
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
