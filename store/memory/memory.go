// Package memory is the in-process idempotency store: correct for one
// replica. Several replicas need a shared store.
package memory

import (
	"context"
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
	if ok && s.now().Sub(r.UpdatedAt) > s.retention {
		delete(s.records, fingerprint)
		return store.Record{}, false, nil
	}
	return r, ok, nil
}

// Put saves r, and drops expired records so memory stays bounded by the
// number of rollbacks in one retention window.
func (s *Store) Put(_ context.Context, r store.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.UpdatedAt = now
	s.records[r.Fingerprint] = r
	if len(s.records)%256 == 0 {
		for k, v := range s.records {
			if now.Sub(v.UpdatedAt) > s.retention {
				delete(s.records, k)
			}
		}
	}
	return nil
}
