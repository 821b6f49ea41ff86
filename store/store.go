// Package store defines the idempotency record kept per rollback
// fingerprint (what has been done for it so far, so that a redelivery
// finishes the work instead of doubling it) and the lock that lets only one
// caller, in any replica, work on a fingerprint at a time.
package store

import (
	"context"
	"errors"
	"time"
)

// Record is the state of one rollback's incident. It is stored as JSON;
// keep it small (a few KiB at most).
type Record struct {
	Fingerprint string `json:"fingerprint"`
	JiraID      string `json:"jiraId,omitempty"`
	JiraKey     string `json:"jiraKey,omitempty"`
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
	for _, e := range r.Timeline {
		if e.Hash == hash {
			return true
		}
	}
	return false
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
	// Put saves the record (keyed by r.Fingerprint), setting CreatedAt on
	// first save and UpdatedAt always.
	Put(ctx context.Context, r Record) error
}

// ErrUnavailable wraps failures of a shared store: the caller answers 503
// so the sender retries, rather than risking a duplicate.
var ErrUnavailable = errors.New("idempotency store unavailable")
