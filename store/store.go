// Package store defines the idempotency record kept per rollback
// fingerprint (what has been done for it so far, so that a redelivery
// finishes the work instead of doubling it) and the lock that lets only one
// caller, in any replica, work on a fingerprint at a time.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Record is the state of one rollback's incident. It is stored as JSON;
// keep it small (a few KiB at most).
type Record struct {
	Fingerprint string `json:"fingerprint"`
	// Revision is the store's version of the record, set by Get and Put and
	// never stored: Put writes only over the revision that was read (0: no
	// record yet), so a writer never acts on, or overwrites, a stale record.
	Revision uint64 `json:"-"`
	// Incident is the rollback as accepted (incident.Incident as JSON):
	// everything the opening steps need to finish it without the caller.
	Incident json.RawMessage `json:"incident,omitempty"`
	// Refresh says the incident's facts changed since the page's generated
	// sections (and the description) were written: rewrite them.
	Refresh bool `json:"refresh,omitempty"`
	// OpenedAt is when the Jira issue was opened (found or created).
	OpenedAt time.Time `json:"openedAt,omitzero"`
	// PreviousKey is the object's previous incident, linked from this one.
	PreviousKey string `json:"previousKey,omitempty"`
	// DescriptionHash is the text hash of the description the function
	// last wrote, to tell whether a person has edited it since.
	DescriptionHash string `json:"descriptionHash,omitempty"`
	// Described is the incident as the description (or, once a person
	// edited it, the last facts comment) last told it: what a facts
	// comment compares with.
	Described json.RawMessage `json:"described,omitempty"`
	// Resolved says the function moved the issue to done on recovery.
	Resolved bool `json:"resolved,omitempty"`
	// Latest, on the record kept under an object's fingerprint (not an
	// incident's), names the object's latest incident: a recovery event
	// names the object, not the failed revision.
	Latest string `json:"latest,omitempty"`
	// Pending is set while the record holds work not yet done in Atlassian:
	// from the moment a request is accepted until every step has completed.
	// The function has custody of the rollback while it is set.
	Pending *Pending `json:"pending,omitempty"`
	JiraID  string   `json:"jiraId,omitempty"`
	JiraKey string   `json:"jiraKey,omitempty"`
	// CreatingSince is set just before the Jira issue is created and
	// cleared once its key is recorded. A record with CreatingSince and no
	// key means an earlier attempt may have created an issue that Jira's
	// search does not show yet.
	CreatingSince time.Time `json:"creatingSince,omitzero"`
	PageID        string    `json:"pageId,omitempty"`
	PageURL       string    `json:"pageUrl,omitempty"`
	PageTitle     string    `json:"pageTitle,omitempty"`
	Linked        bool      `json:"linked,omitempty"` // the issue carries the remote link to the page
	// Notified is the news hash of the last Backstage notification sent.
	Notified string `json:"notified,omitempty"`
	// Timeline lists what the deliveries for this rollback said, once each.
	Timeline  []Entry   `json:"timeline,omitempty"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
	// Prior is the record as it stood when a new event came after its
	// window (DEDUP_WINDOW without a write): the record starts afresh, as
	// for a new incident, until the issue step has asked Jira. If the issue
	// Prior names is still the one to use (open, or reopened), the record
	// resumes from Prior with what came since as news; if a new incident
	// opens, Prior is dropped.
	Prior *Record `json:"prior,omitempty"`
}

// Pending is the custody of unfinished work: when it was accepted, how the
// attempts to finish it went, and when to try next.
type Pending struct {
	Since     time.Time `json:"since"`              // accepted (the oldest unfinished acceptance)
	Attempts  int       `json:"attempts,omitempty"` // attempts that failed so far
	NextAt    time.Time `json:"nextAt,omitzero"`    // not to be worked before this
	LastError string    `json:"lastError,omitempty"`
	// Traceparent is the W3C trace context of the event that put the
	// rollback in custody: attempts after the request continue its trace.
	Traceparent string `json:"traceparent,omitempty"`
}

// Entry is one distinct piece of news about a rollback.
type Entry struct {
	Hash string    `json:"hash"` // identifies the content, see incident.Incident.NewsHash
	At   time.Time `json:"at"`
	Text string    `json:"text"`
	// Commented and OnPage record the two places the entry is posted to,
	// each as soon as it is done, so a retry repeats neither.
	Commented bool `json:"commented,omitempty"`
	OnPage    bool `json:"onPage,omitempty"`
	// Commenting is recorded before the comment is posted: an entry with
	// it and without Commented may have been posted by an attempt whose
	// answer was lost, so the comments are checked for its
	// identity before posting again.
	Commenting bool `json:"commenting,omitempty"`
}

// Posted reports whether the entry is on the issue and on the page.
func (e Entry) Posted() bool { return e.Commented && e.OnPage }

// Done reports whether every step has completed, timeline entries
// included.
func (r Record) Done() bool {
	if r.JiraKey == "" || r.PageID == "" || !r.Linked {
		return false
	}
	for _, e := range r.Timeline {
		if !e.Posted() {
			return false
		}
	}
	return true
}

// HasEntry reports whether the timeline holds an entry with hash.
func (r Record) HasEntry(hash string) bool {
	return slices.ContainsFunc(r.Timeline, func(e Entry) bool { return e.Hash == hash })
}

// Store keeps records and the per-fingerprint lock. Implementations: memory
// (one replica) and natskv (NATS JetStream key-value, shared by replicas).
type Store interface {
	// Lock gives the caller exclusive work on fingerprint among everyone
	// sharing the store. It waits until the lock is free or ctx ends. The
	// lock lapses by itself after ttl, so a holder that crashed cannot block
	// the rollback for longer; holders finish well within ttl.
	Lock(ctx context.Context, fingerprint string, ttl time.Duration) (unlock func(), err error)
	// Get returns the record, or ok=false when there is none (or it expired).
	Get(ctx context.Context, fingerprint string) (r Record, ok bool, err error)
	// Put saves the record (keyed by r.Fingerprint) if the stored one is
	// still at r.Revision (0: none may exist), setting CreatedAt on first
	// save and UpdatedAt always, and returns it as saved, with its new
	// Revision. If someone wrote the record meanwhile it returns an error
	// matching ErrConflict and saves nothing: read it again (Update does).
	Put(ctx context.Context, r Record) (Record, error)
	// Pending lists the fingerprints of records that have Pending set. It
	// never misses one; it may list one that finished meanwhile, so callers
	// read each record before acting on it.
	Pending(ctx context.Context) ([]string, error)
}

// ErrUnavailable wraps failures of a shared store: the caller answers 503
// so the sender retries, rather than risking a duplicate.
var ErrUnavailable = errors.New("idempotency store unavailable")

// ErrConflict is Put's answer when the record changed since it was read.
var ErrConflict = errors.New("record changed since it was read")

// ErrUnchanged is returned by an Update change that finds nothing to
// write: Update then saves nothing and returns the record as read.
var ErrUnchanged = errors.New("record unchanged")

// maxConflicts bounds Update's re-reads. Writers of one record are the
// lock holder and the requests accepting news for it, a handful at most;
// running out means something writes in a loop.
const maxConflicts = 50

// Update applies change to the current record of fingerprint (a fresh one,
// Revision 0, when there is none) and saves it with a compare-and-swap,
// reading and applying it again when someone wrote in between. change must
// depend only on the record it is given. It returns the record as saved;
// when change returns an error nothing is saved and the error is returned
// with the record as read.
func Update(ctx context.Context, s Store, fingerprint string, change func(r *Record) error) (Record, error) {
	for i := range maxConflicts {
		r, ok, err := s.Get(ctx, fingerprint)
		if err != nil {
			return Record{}, err
		}
		if !ok {
			r = Record{Fingerprint: fingerprint}
		}
		if err := change(&r); errors.Is(err, ErrUnchanged) {
			return r, nil
		} else if err != nil {
			return r, err
		}
		saved, err := s.Put(ctx, r)
		if !errors.Is(err, ErrConflict) {
			return saved, err
		}
		// Another writer won: back off a little (1 ms doubling to 64 ms)
		// so that writers racing on one record take turns rather than
		// spin.
		select {
		case <-ctx.Done():
			return Record{}, ctx.Err()
		case <-time.After(time.Millisecond << min(i, 6)):
		}
	}
	return Record{}, fmt.Errorf("update record %s: %w %d times in a row", fingerprint, ErrConflict, maxConflicts)
}
