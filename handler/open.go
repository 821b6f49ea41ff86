package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"function/atlassian"
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
	FindByLabel(ctx context.Context, projects []string, label string, reconcile []string) ([]jira.Issue, error)
	UpsertRemoteLink(ctx context.Context, issueKey string, l jira.RemoteLink) (bool, error)
	BrowseURL(key string) string
}

// Confluence is what opening an incident needs of Confluence.
type Confluence interface {
	SpaceID(ctx context.Context, key string) (string, error)
	CreatePage(ctx context.Context, n confluence.NewPage) (confluence.Page, error)
	FindByTitle(ctx context.Context, spaceID, title string) (confluence.Page, bool, error)
}

// Store keeps the idempotency record per fingerprint.
type Store interface {
	Lock(ctx context.Context, fingerprint string) (unlock func(), err error)
	Get(ctx context.Context, fingerprint string) (store.Record, bool, error)
	Put(ctx context.Context, r store.Record) error
}

// Opener opens the incident for a rollback: one Jira issue, one Confluence
// page, linked both ways. Every step is idempotent and recorded as soon as
// it is done, so a redelivery after any failure finishes the work without
// doubling any of it.
type Opener struct {
	cfg      config.Config
	jira     Jira
	conf     Confluence
	store    Store
	renderer *render.Renderer
	log      *slog.Logger
	now      func() time.Time

	spaceMu sync.Mutex
	spaceID string // resolved once, lazily: Confluence may be down at start
}

// NewOpener wires the steps.
func NewOpener(cfg config.Config, j Jira, c Confluence, s Store, r *render.Renderer, log *slog.Logger) *Opener {
	return &Opener{cfg: cfg, jira: j, conf: c, store: s, renderer: r, log: log, now: time.Now}
}

// Outcome is what Open did.
type Outcome struct {
	Status  Status // StatusCreated or StatusExisting
	JiraKey string
	JiraURL string
	PageID  string
	PageURL string
}

// remoteLinkPrefix starts the globalId of the issue → page link: one link
// per rollback, whatever page id it points at.
const remoteLinkPrefix = "rollback-incident:postmortem:"

// Open runs the steps that the record says are not done yet. On error the
// outcome still carries what was done, for the reply and the logs.
func (o *Opener) Open(ctx context.Context, in *incident.Incident) (out Outcome, err error) {
	fp := in.Fingerprint()
	unlock, err := o.store.Lock(ctx, fp)
	if err != nil {
		return Outcome{}, fmt.Errorf("lock %s: %w", fp, err)
	}
	defer unlock()

	rec, _, err := o.store.Get(ctx, fp)
	if err != nil {
		return Outcome{}, fmt.Errorf("read record %s: %w", fp, err)
	}
	rec.Fingerprint = fp
	out.Status = StatusExisting
	// Whatever happens below, the outcome reports what is done.
	fill := func() {
		out.JiraKey, out.PageID, out.PageURL = rec.JiraKey, rec.PageID, rec.PageURL
		if rec.JiraKey != "" {
			out.JiraURL = o.jira.BrowseURL(rec.JiraKey)
		}
	}
	defer fill()

	if rec.JiraKey == "" {
		created, err := o.ensureIssue(ctx, in, &rec)
		if err != nil {
			return out, err
		}
		if created {
			out.Status = StatusCreated
		}
		if err := o.store.Put(ctx, rec); err != nil {
			return out, fmt.Errorf("record jira issue: %w", err)
		}
	}
	if rec.PageID == "" {
		if err := o.ensurePage(ctx, in, &rec); err != nil {
			return out, err
		}
		if err := o.store.Put(ctx, rec); err != nil {
			return out, fmt.Errorf("record confluence page: %w", err)
		}
	}
	if !rec.Linked {
		if _, err := o.jira.UpsertRemoteLink(ctx, rec.JiraKey, jira.RemoteLink{
			GlobalID:     remoteLinkPrefix + fp,
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
		if err := o.store.Put(ctx, rec); err != nil {
			return out, fmt.Errorf("record remote link: %w", err)
		}
	}
	return out, nil
}

// ensureIssue finds the rollback's issue by its fingerprint label, or
// creates it. It reports whether it created one.
func (o *Opener) ensureIssue(ctx context.Context, in *incident.Incident, rec *store.Record) (bool, error) {
	var reconcile []string
	if rec.JiraID != "" {
		reconcile = append(reconcile, rec.JiraID)
	}
	found, err := o.jira.FindByLabel(ctx, o.cfg.JiraAllowedProjects, in.Label(), reconcile)
	if err != nil {
		return false, fmt.Errorf("find jira issue: %w", err)
	}
	if len(found) > 0 {
		rec.JiraID, rec.JiraKey = found[0].ID, found[0].Key
		return false, nil
	}
	summary, err := o.renderer.Summary(in)
	if err != nil {
		return false, err
	}
	issue, err := o.jira.CreateIssue(ctx, jira.NewIssue{
		Project:     o.cfg.AllowedProject(in.RequestedProject),
		IssueType:   o.cfg.AllowedIssueType(in.RequestedIssueType),
		Summary:     summary,
		Description: render.Description(in),
		Labels:      []string{"rollback", in.Label()},
	})
	if err != nil {
		return false, fmt.Errorf("create jira issue: %w", err)
	}
	rec.JiraID, rec.JiraKey = issue.ID, issue.Key
	return true, nil
}

// ensurePage creates the postmortem page, or finds the one an earlier,
// interrupted delivery created: the title is unique per rollback, so
// Confluence refuses a second page with it.
func (o *Opener) ensurePage(ctx context.Context, in *incident.Incident, rec *store.Record) error {
	spaceID, err := o.space(ctx)
	if err != nil {
		return err
	}
	title := render.PageTitle(in)
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
			// later will not help; an operator must look.
			return fmt.Errorf("confluence page %q exists but cannot be found by title", title)
		}
	}
	if err != nil {
		return fmt.Errorf("create confluence page: %w", err)
	}
	rec.PageID, rec.PageURL, rec.PageTitle = page.ID, page.URL, page.Title
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

func isTemporary(err error) bool { return atlassian.IsTemporary(err) }

func isAtlassian(err error) bool {
	_, ok := atlassian.AsError(err)
	return ok || errors.Is(err, confluence.ErrSpaceNotFound)
}

func retryDelay(err error) time.Duration {
	if ae, ok := atlassian.AsError(err); ok && ae.RetryAfter > 0 {
		return ae.RetryAfter
	}
	return 5 * time.Second
}
