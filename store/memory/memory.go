// Package memory is the in-process idempotency store: correct for one
// replica. Several replicas need a shared store.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"function/store"
)

// Store keeps records in memory for a retention window.
type Store struct {
	retention time.Duration
	now       func() time.Time

	mu      sync.Mutex
	records map[string]store.Record
	rev     uint64 // last revision given out, as a stream sequence would be
	locks   map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while the key is locked
	refs int
}

// New returns a store that forgets records retention after their last update.
func New(retention time.Duration) *Store {
	return &Store{retention: retention, now: time.Now, records: map[string]store.Record{}, locks: map[string]*keyLock{}}
}

// Lock serialises work on one fingerprint within this process. It waits
// until the lock is free or ctx ends. The ttl is not needed here: a holder
// cannot outlive the process that holds the lock.
func (s *Store) Lock(ctx context.Context, fingerprint string, _ time.Duration) (func(), error) {
	s.mu.Lock()
	l := s.locks[fingerprint]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		s.locks[fingerprint] = l
	}
	l.refs++
	s.mu.Unlock()

	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		s.release(fingerprint, l)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.ch
			s.release(fingerprint, l)
		})
	}, nil
}

func (s *Store) release(fingerprint string, l *keyLock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(s.locks, fingerprint)
	}
}

// Get returns the record for fingerprint, if one is held and not expired.
func (s *Store) Get(_ context.Context, fingerprint string) (store.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[fingerprint]
	if ok && s.expired(r, s.now()) {
		delete(s.records, fingerprint)
		return store.Record{}, false, nil
	}
	return clone(r), ok, nil
}

// expired reports a record past its retention. A pending record never
// expires: the function has custody of it until it is finished or
// abandoned.
func (s *Store) expired(r store.Record, now time.Time) bool {
	return r.Pending == nil && now.Sub(r.UpdatedAt) > s.retention
}

// Put saves r if the stored record is still at r.Revision, and drops
// expired records so memory stays bounded by the number of rollbacks in
// one retention window.
func (s *Store) Put(_ context.Context, r store.Record) (store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	cur, ok := s.records[r.Fingerprint]
	if ok && s.expired(cur, now) {
		delete(s.records, r.Fingerprint)
		ok = false
	}
	if (ok && cur.Revision != r.Revision) || (!ok && r.Revision != 0) {
		return store.Record{}, fmt.Errorf("memory: put record %s at revision %d: %w", r.Fingerprint, r.Revision, store.ErrConflict)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.UpdatedAt = now
	s.rev++
	r.Revision = s.rev
	r = clone(r)
	s.records[r.Fingerprint] = r
	if len(s.records)%256 == 0 {
		for k, v := range s.records {
			if s.expired(v, now) {
				delete(s.records, k)
			}
		}
	}
	return clone(r), nil
}

// Pending lists the fingerprints of pending records.
func (s *Store) Pending(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fps []string
	for fp, r := range s.records {
		if r.Pending != nil {
			fps = append(fps, fp)
		}
	}
	slices.Sort(fps)
	return fps, nil
}

// clone copies what a caller could change in place, so that a record in
// the store changes only through Put, as in a shared store.
func clone(r store.Record) store.Record {
	r.Timeline = slices.Clone(r.Timeline)
	r.Incident = slices.Clone(r.Incident)
	if r.Pending != nil {
		p := *r.Pending
		r.Pending = &p
	}
	if r.Prior != nil {
		p := clone(*r.Prior)
		r.Prior = &p
	}
	return r
}
