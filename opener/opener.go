// Package opener turns an accepted rollback into its incident: one Jira
// issue, one Confluence page, linked both ways, a timeline that grows as
// later events bring news, and the owners told in Backstage.
//
// It works in two moves, so that a 2xx to the caller means the function
// owns the rollback:
//
//   - Accept records the rollback in the idempotency store as pending,
//     before any Atlassian call, with everything needed to finish it.
//   - Work does the Atlassian steps the record says are not done yet,
//     under the fingerprint's lock, recording each as soon as it is done.
//     Done, it clears pending; failed, it records when to try again.
//
// Requests call both (Work within a short budget); the Drainer calls Work
// for every pending record until it is done or abandoned.
package opener

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
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
	"function/internal/clip"
	"function/jira"
	"function/render"
	"function/render/adf"
	"function/store"
)

// Jira is what opening an incident needs of Jira.
type Jira interface {
	CreateIssue(ctx context.Context, n jira.NewIssue) (jira.Issue, error)
	FindByLabels(ctx context.Context, projects, labels []string, reconcile []string) ([]jira.Found, error)
	UpsertRemoteLink(ctx context.Context, issueKey string, l jira.RemoteLink) error
	AddComment(ctx context.Context, issueKey string, body jira.Comment) error
	CommentIDs(ctx context.Context, issueKey string) (map[string]bool, error)
	Myself(ctx context.Context) error
	Description(ctx context.Context, issueKey string) (adfJSON []byte, wiki string, err error)
	SetDescription(ctx context.Context, issueKey string, doc adf.Doc, wiki string) error
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

// Opener accepts rollbacks and works them into incidents.
type Opener struct {
	cfg      config.Config
	jira     Jira
	conf     Confluence
	store    store.Store
	renderer *render.Renderer
	links    []render.LinkTemplate
	notifier Notifier // nil: no notifications
	log      *slog.Logger

	spaceMu sync.Mutex
	spaceID string // resolved once, lazily: Confluence may be down at start
}

// Extras are the optional parts of the opening.
type Extras struct {
	Links    []render.LinkTemplate // added to every incident
	Notifier Notifier              // nil: no notifications
}

// New wires the steps.
func New(cfg config.Config, j Jira, c Confluence, s store.Store, r *render.Renderer, x Extras, log *slog.Logger) *Opener {
	return &Opener{cfg: cfg, jira: j, conf: c, store: s, renderer: r, links: x.Links, notifier: x.Notifier, log: log}
}

// Outcome is where an incident stands.
type Outcome struct {
	Fingerprint string
	Done        bool // every step is done: nothing pending
	Created     bool // this work created the Jira issue
	News        bool // the event added an entry to the incident's timeline
	JiraKey     string
	JiraURL     string
	PageID      string
	PageURL     string
	// Pending is the custody state when not done: attempts so far, the
	// last error, the next attempt.
	Pending *store.Pending
}

// Link globalIds: one link per rollback whatever page id it points at, and
// one to the object's previous incident.
const (
	postmortemLinkPrefix = "rollback-incident:postmortem:"
	previousLinkPrefix   = "rollback-incident:previous:"
)

// Accept takes custody of the rollback in: it merges the event into the
// fingerprint's record (the incident when there is none yet, a timeline
// entry when it says something new) and marks the record pending when
// anything is left to do, all in one compare-and-swap write, before any
// Atlassian call. Only an error from the store fails it; the caller must
// then not answer 2xx.
func (o *Opener) Accept(ctx context.Context, in *incident.Incident) (Outcome, error) {
	fp, err := o.fingerprint(ctx, in)
	if err != nil {
		return Outcome{}, err
	}
	if err := render.AddLinks(in, o.links); err != nil {
		loggerFrom(ctx, o.log).Warn("configured link not added", "error", err.Error())
	}
	// Stored in the form merging gives it, so that a repeat of the same
	// event merges as no change.
	first := *in
	incident.Merge(&first, in)
	raw, err := json.Marshal(&first)
	if err != nil {
		return Outcome{}, fmt.Errorf("encode incident %s: %w", fp, err)
	}
	news, now := in.NewsHash(), time.Now()
	// A new incident is indexed under its object (for the recovery that
	// names the object) before its record is written: a delivery that
	// fails on either leaves no record, so its retry is new again and
	// writes both. (Indexed after the record, a failed index write was
	// never retried: the retry found the record and skipped it.) A repeat
	// costs no extra read: only a new record stops the update to index.
	added, indexed := false, false
	accept := func(r *store.Record) error {
		added = false
		if !indexed && (r.Revision == 0 || o.over(*r)) {
			return errNotIndexed
		}
		if r.Revision != 0 && o.over(*r) {
			// The record belongs to an incident that may be over (its
			// window passed): start afresh, keeping the old record; the
			// issue step asks Jira and resumes it (the issue is open, or
			// reopened) or opens a new incident.
			prior := *r
			prior.Revision, prior.Prior = 0, nil
			*r = store.Record{Fingerprint: fp, Revision: r.Revision, Prior: &prior}
			if fp != in.Fingerprint() {
				// A joining event (a manual rollback) is news about the
				// incident it joins, whose facts stay the record's.
				r.Incident = prior.Incident
			}
		}
		facts := false
		if r.Incident == nil {
			r.Incident = raw
		} else {
			// Facts accumulate: each once, newer values win.
			var cur incident.Incident
			if err := json.Unmarshal(r.Incident, &cur); err != nil {
				return fmt.Errorf("decode incident %s: %w", fp, err)
			}
			before := cur
			later := in
			if fp != in.Fingerprint() && in.Reason == incident.ReasonManualRollback {
				// A manual rollback joining the abort's incident: the
				// incident's images stay the failed ones; the restored
				// images are in the rollback's timeline entry.
				c := *in
				c.Images = nil
				later = &c
			}
			if incident.Merge(&cur, later) {
				b, err := json.Marshal(&cur)
				if err != nil {
					return err
				}
				// Another sender reporting the same facts is kept (the
				// reporters), but is no reason to rewrite anything.
				same := cur
				same.Sources, same.Source, same.EventID = before.Sources, before.Source, before.EventID
				sb, _ := json.Marshal(&same)
				bb, _ := json.Marshal(&before)
				r.Incident = b
				if !bytes.Equal(sb, bb) {
					r.Refresh, facts = true, true
				}
			}
		}
		if !r.HasEntry(news) {
			// The first entry is what the issue and the page are opened
			// with; later ones are news to post.
			first := len(r.Timeline) == 0
			r.Timeline = append(r.Timeline, store.Entry{Hash: news, At: cmp.Or(in.Time, now), Text: render.TimelineEntry(in), Commented: first, OnPage: first})
			added = !first
		}
		return o.markPending(r, added || facts, now, atlassian.Traceparent(ctx))
	}
	rec, err := store.Update(ctx, o.store, fp, accept)
	if errors.Is(err, errNotIndexed) {
		if err := o.index(ctx, in, fp); err != nil {
			return Outcome{}, err
		}
		indexed = true
		rec, err = store.Update(ctx, o.store, fp, accept)
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("take custody of %s: %w", fp, err)
	}
	out := o.outcome(rec)
	out.News = added
	return out, nil
}

// errNotIndexed stops Accept's update of a new record until its incident
// is indexed under its object.
var errNotIndexed = errors.New("not indexed under its object yet")

// markPending keeps r in custody when anything is left to do. changed
// says the event brought something new; traceparent is its trace context,
// kept from the first event that put the rollback in custody.
func (o *Opener) markPending(r *store.Record, changed bool, now time.Time, traceparent string) error {
	switch {
	case r.Pending != nil && !changed:
		return store.ErrUnchanged // already in custody, nothing new
	case r.Pending != nil:
		r.Pending.NextAt = time.Time{} // news: work it now
	case r.Done() && o.notified(*r) && !r.Refresh && r.Revision != 0 && !changed:
		return store.ErrUnchanged // finished, and this says nothing new
	default:
		r.Pending = &store.Pending{Since: now, Traceparent: traceparent}
	}
	return nil
}

// index records, under each of the object's fingerprints, that fp is its
// latest incident: a recovery names the object, not the failed revision.
func (o *Opener) index(ctx context.Context, in *incident.Incident, fp string) error {
	for _, key := range in.ObjectKeys() {
		if _, err := store.Update(ctx, o.store, key, func(r *store.Record) error {
			if r.Latest == fp {
				return store.ErrUnchanged
			}
			r.Latest = fp
			return nil
		}); err != nil {
			return fmt.Errorf("index incident %s under its object: %w", fp, err)
		}
	}
	return nil
}

// Recover records that the object of r is healthy again, when it ends the
// object's latest incident: a timeline entry, the recovery in the facts
// (durations), and the issue and page to update. ok is false when there
// is no incident it ends: the event stays ignored, with no Atlassian call.
func (o *Opener) Recover(ctx context.Context, r *incident.Recovery) (out Outcome, ok bool, err error) {
	ptr, found, err := o.store.Get(ctx, r.ObjectFingerprint())
	if err != nil {
		return Outcome{}, false, fmt.Errorf("read object record: %w", err)
	}
	if !found || ptr.Latest == "" {
		return Outcome{}, false, nil
	}
	now := time.Now()
	recovered, known := false, false
	rec, err := store.Update(ctx, o.store, ptr.Latest, func(rec *store.Record) error {
		recovered, known = false, false
		if rec.Incident == nil {
			return store.ErrUnchanged
		}
		var cur incident.Incident
		if err := json.Unmarshal(rec.Incident, &cur); err != nil {
			return fmt.Errorf("decode incident %s: %w", ptr.Latest, err)
		}
		if !cur.Recover(r) {
			// A repeat of a recovery already recorded is known, not news.
			known = cur.Recovery != nil && r.Ends(&cur)
			return store.ErrUnchanged
		}
		b, err := json.Marshal(&cur)
		if err != nil {
			return err
		}
		rec.Incident, rec.Refresh, recovered = b, true, true
		entry := store.Entry{Hash: "recovered-" + r.ObjectFingerprint() + "-" + r.Revision, At: cmp.Or(r.At, now), Text: render.RecoveryEntry(r), OnPage: true}
		if !rec.HasEntry(entry.Hash) {
			rec.Timeline = append(rec.Timeline, entry)
		}
		return o.markPending(rec, true, now, atlassian.Traceparent(ctx))
	})
	if err != nil {
		return Outcome{}, false, fmt.Errorf("record recovery of %s: %w", ptr.Latest, err)
	}
	if !recovered && !known {
		return Outcome{}, false, nil
	}
	return o.outcome(rec), true, nil
}

// fingerprint is the record the event belongs to: its own, or the earlier
// incident it joins when that one exists.
func (o *Opener) fingerprint(ctx context.Context, in *incident.Incident) (string, error) {
	if in.Joins == "" {
		return in.Fingerprint(), nil
	}
	_, ok, err := o.store.Get(ctx, in.Joins)
	if err != nil {
		return "", fmt.Errorf("read record %s: %w", in.Joins, err)
	}
	if ok {
		return in.Joins, nil
	}
	return in.Fingerprint(), nil
}

// Work runs the steps that the record of fp says are not done yet, under
// the fingerprint's lock, and records how it went: done (pending cleared)
// or failed (next attempt scheduled). On error the outcome still says what
// was done.
func (o *Opener) Work(ctx context.Context, fp string) (Outcome, error) {
	// Another holder works this rollback already (a replica, or a
	// request); waiting longer than a moment would only queue behind it.
	lctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	// The lock outlives the work's deadline a little, so it lapses only
	// when its holder is gone.
	unlock, err := o.store.Lock(lctx, fp, o.cfg.RequestDeadline+5*time.Second)
	if err != nil {
		if ctx.Err() == nil && lctx.Err() != nil {
			err = ErrBusy
		}
		return Outcome{Fingerprint: fp}, fmt.Errorf("lock %s: %w", fp, err)
	}
	defer unlock()

	rec, ok, err := o.store.Get(ctx, fp)
	if err != nil {
		return Outcome{Fingerprint: fp}, fmt.Errorf("read record %s: %w", fp, err)
	}
	if !ok || rec.Pending == nil || rec.Incident == nil {
		return o.outcome(rec), nil // finished by someone else meanwhile
	}
	ctx = o.withTrace(ctx, rec.Pending.Traceparent)
	var in incident.Incident
	if err := json.Unmarshal(rec.Incident, &in); err != nil {
		return o.outcome(rec), fmt.Errorf("decode incident %s: %w", fp, err)
	}
	created, err := o.steps(ctx, &in, &rec)
	out := o.outcome(rec)
	out.Created = created
	if err == nil && out.Done {
		// Also for rollbacks answered 202 long ago: the operator who read
		// the 202's reason sees here when and where it opened.
		loggerFrom(ctx, o.log).Info("rollback finished", "jira_key", out.JiraKey, "page_id", out.PageID, "created", out.Created)
	}
	return out, err
}

// steps brings the incident up to date with the record, and clears
// pending when nothing is left. News accepted meanwhile is picked up by the
// compare-and-swap of the last write and worked in the same call.
func (o *Opener) steps(ctx context.Context, in *incident.Incident, rec *store.Record) (created bool, err error) {
	for {
		if rec.JiraKey == "" {
			c, err := o.ensureIssue(ctx, in, rec)
			created = created || c
			if err != nil {
				return created, err
			}
		}
		if rec.PageID == "" {
			if err := o.ensurePage(ctx, in, rec); err != nil {
				return created, err
			}
			if err := o.save(ctx, rec, "confluence page"); err != nil {
				return created, err
			}
		}
		if !rec.Linked {
			if err := o.link(ctx, in, rec); err != nil {
				return created, err
			}
		}
		for i := 0; i < len(rec.Timeline); i++ {
			if err := o.post(ctx, rec, i); err != nil {
				return created, err
			}
		}
		if err := o.refresh(ctx, rec); err != nil {
			return created, err
		}
		if !o.notified(*rec) {
			if err := o.notify(ctx, in, *rec); err != nil {
				return created, err
			}
			rec.Notified = rec.Timeline[len(rec.Timeline)-1].Hash
			if err := o.save(ctx, rec, "notification"); err != nil {
				return created, err
			}
		}
		more := false
		saved, err := store.Update(ctx, o.store, rec.Fingerprint, func(r *store.Record) error {
			o.merge(r, rec)
			if !r.Done() || !o.notified(*r) || r.Refresh {
				more = true // news arrived meanwhile
				return store.ErrUnchanged
			}
			r.Pending = nil
			return nil
		})
		if err != nil {
			return created, fmt.Errorf("record done: %w", err)
		}
		*rec = saved
		if !more {
			return created, nil
		}
	}
}

// Failed records a failed attempt on fp: the attempt count, the reason and
// when to try again, which next decides from the record as it stands.
func (o *Opener) Failed(ctx context.Context, fp string, cause error, next func(store.Record) time.Time) (store.Record, error) {
	return store.Update(ctx, o.store, fp, func(r *store.Record) error {
		if r.Pending == nil {
			return store.ErrUnchanged
		}
		r.Pending.NextAt = next(*r)
		r.Pending.Attempts++
		r.Pending.LastError = clip.Text(cause.Error(), 500)
		return nil
	})
}

// Abandon gives up on fp: pending is cleared, the record stays as far as
// the work got. It returns the record as it was abandoned, pending and all
// (news accepted since the caller read it included), for the caller to log
// for replay; ok is false when nothing was pending any more.
func (o *Opener) Abandon(ctx context.Context, fp string) (abandoned store.Record, ok bool, err error) {
	_, err = store.Update(ctx, o.store, fp, func(r *store.Record) error {
		ok = r.Pending != nil
		if !ok {
			return store.ErrUnchanged
		}
		abandoned = *r
		r.Pending = nil
		return nil
	})
	return abandoned, ok && err == nil, err
}

// save records what the lock holder did: the fields only it writes are
// carried onto the current record, so that news accepted meanwhile is kept,
// and rec becomes the record as saved.
func (o *Opener) save(ctx context.Context, rec *store.Record, what string) error {
	saved, err := store.Update(ctx, o.store, rec.Fingerprint, func(r *store.Record) error {
		o.merge(r, rec)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %s: %w", what, err)
	}
	*rec = saved
	return nil
}

// merge copies onto cur what the lock holder writes: the issue, the page,
// the link, the notification, and which entries are posted. Requests write
// the rest (the incident, new entries, pending).
func (o *Opener) merge(cur, done *store.Record) {
	cur.JiraID, cur.JiraKey, cur.CreatingSince = done.JiraID, done.JiraKey, done.CreatingSince
	cur.PageID, cur.PageURL, cur.PageTitle = done.PageID, done.PageURL, done.PageTitle
	cur.Linked, cur.Notified = done.Linked, done.Notified
	cur.OpenedAt, cur.PreviousKey, cur.DescriptionHash, cur.Resolved = done.OpenedAt, done.PreviousKey, done.DescriptionHash, done.Resolved
	cur.Described = done.Described
	for i := range cur.Timeline {
		for _, d := range done.Timeline {
			if d.Hash == cur.Timeline[i].Hash {
				cur.Timeline[i].Commented = cur.Timeline[i].Commented || d.Commented
				cur.Timeline[i].Commenting = cur.Timeline[i].Commenting || d.Commenting
				cur.Timeline[i].OnPage = cur.Timeline[i].OnPage || d.OnPage
			}
		}
	}
}

func (o *Opener) outcome(rec store.Record) Outcome {
	out := Outcome{
		Fingerprint: rec.Fingerprint, Done: rec.Pending == nil && rec.Done(),
		JiraKey: rec.JiraKey, PageID: rec.PageID, PageURL: rec.PageURL, Pending: rec.Pending,
	}
	if rec.JiraKey != "" {
		out.JiraURL = o.jira.BrowseURL(rec.JiraKey)
	}
	return out
}

// current reports whether rec may be trusted without asking Jira: within
// DEDUP_WINDOW of its last update. An older record may belong to an
// incident that people have resolved since, so the issue step looks at the
// issue again and applies the reopen rule.
func (o *Opener) current(rec store.Record) bool {
	return rec.UpdatedAt.IsZero() || time.Since(rec.UpdatedAt) < o.cfg.DedupWindow
}

// over reports whether rec belongs to an incident that is over: nothing
// pending, and not written within DEDUP_WINDOW.
func (o *Opener) over(rec store.Record) bool {
	return rec.Pending == nil && !o.current(rec)
}

// notified reports whether the owners have heard the latest news.
func (o *Opener) notified(rec store.Record) bool {
	return o.notifier == nil || len(rec.Timeline) == 0 || rec.Notified == rec.Timeline[len(rec.Timeline)-1].Hash
}

// withTrace gives an attempt after the request (a pass, a retry) the
// trace of the event that brought the rollback, tp, kept with it in
// custody: its calls send it and its lines name it. An attempt for a
// request keeps the request's.
func (o *Opener) withTrace(ctx context.Context, tp string) context.Context {
	if tp == "" || atlassian.TraceID(ctx) != "" {
		return ctx
	}
	ctx = atlassian.WithTraceparent(ctx, tp)
	return WithLogger(ctx, loggerFrom(ctx, o.log).With("trace_id", atlassian.TraceID(ctx)))
}

type logKey struct{}

// WithLogger passes the request's logger, which carries the event's ids,
// down to the opening steps, so that every line about an event has them.
func WithLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, log)
}

func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}

// lockWait bounds the wait for a fingerprint's lock.
const lockWait = 5 * time.Second

// ErrBusy says someone else holds the fingerprint's lock: it is being
// worked, nothing failed.
var ErrBusy = errors.New("another replica or request is working on this rollback")

// errIndexing: an earlier attempt may have created the issue, and search
// does not show it yet.
var errIndexing = errors.New("an earlier attempt may have created the Jira issue; waiting for Jira's search index before creating it again")

// Revive takes an abandoned rollback back into custody, so that it is
// worked again; it reports whether there was one to revive.
func (o *Opener) Revive(ctx context.Context, fp string) (bool, error) {
	if !validFingerprint(fp) {
		return false, nil
	}
	revived := false
	_, err := store.Update(ctx, o.store, fp, func(r *store.Record) error {
		revived = false
		if r.Revision == 0 || r.Incident == nil || r.Pending != nil || (r.Done() && o.notified(*r)) {
			return store.ErrUnchanged
		}
		r.Pending = &store.Pending{Since: time.Now(), Traceparent: atlassian.Traceparent(ctx)}
		revived = true
		return nil
	})
	return revived, err
}

// validFingerprint: 16 lowercase hex characters, as incident.Fingerprint
// makes them.
func validFingerprint(fp string) bool {
	if len(fp) != 16 {
		return false
	}
	for _, c := range fp {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CheckCredentials makes one cheap authenticated call and, when Atlassian
// refuses the credentials, logs which variables or secret to fix (never a
// value). Rollbacks are accepted and held meanwhile; it changes nothing.
func (o *Opener) CheckCredentials(ctx context.Context) {
	err := o.jira.Myself(ctx)
	switch {
	case err == nil:
		o.log.Info("Atlassian credentials accepted")
	case atlassian.HasStatus(err, http.StatusUnauthorized) || atlassian.HasStatus(err, http.StatusForbidden):
		o.log.Error("Atlassian refuses the credentials: check "+CredentialSource(o.cfg)+"; rollbacks are accepted and held until it is fixed",
			"error", err.Error())
	default:
		o.log.Warn("Atlassian credentials not checked at start: Atlassian did not answer", "error", err.Error())
	}
}
