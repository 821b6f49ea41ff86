// Package store defines the idempotency record kept per rollback
// fingerprint: what has been done for it so far, so that a redelivery
// finishes the work instead of doubling it.
package store

import "time"

// Record is the state of one rollback's incident.
type Record struct {
	Fingerprint string
	JiraID      string
	JiraKey     string
	PageID      string
	PageURL     string
	PageTitle   string
	Linked      bool // the issue carries the remote link to the page
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Done reports whether every step has completed.
func (r Record) Done() bool { return r.JiraKey != "" && r.PageID != "" && r.Linked }
