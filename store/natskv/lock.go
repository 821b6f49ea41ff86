package natskv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// Waiting for a held lock polls with jittered exponential backoff: a
	// handler holds the lock for one Jira/Confluence round of a few hundred
	// milliseconds, so waiters should notice its release quickly without
	// hammering the server.
	minBackoff = 5 * time.Millisecond
	maxBackoff = 100 * time.Millisecond

	// unlockTimeout bounds the release, which runs from a defer after the
	// request's ctx may have ended. If it fails the lock lapses after its
	// ttl anyway.
	unlockTimeout = 5 * time.Second
)

// lockValue is the JSON value of a lock key. Owner (random per Lock call)
// only tells holders apart when someone inspects the bucket; release goes
// by revision, which the server makes unique per write.
type lockValue struct {
	Owner   string `json:"owner"`
	Expires int64  `json:"expires"` // unix nanoseconds, holder's clock
}

// Lock implements store.Store. While a live holder has the lock it polls
// with jittered exponential backoff (5 ms up to 100 ms) until ctx ends, and
// then returns ctx's error. A NATS failure, or a store not ready, returns
// an error wrapping store.ErrUnavailable at once: without the lock the
// caller must not work.
func (s *Store) Lock(ctx context.Context, fingerprint string, ttl time.Duration) (func(), error) {
	if err := checkFingerprint(fingerprint); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("natskv: lock %s: ttl %v is not positive", fingerprint, ttl)
	}
	key := lockPrefix + fingerprint
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("natskv: lock %s: owner id: %w", fingerprint, err)
	}
	owner := hex.EncodeToString(id[:])

	backoff := minBackoff
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("natskv: lock %s: %w", fingerprint, err)
		}
		rev, st, err := s.tryLock(ctx, key, owner, ttl)
		switch {
		case err != nil:
			return nil, fmt.Errorf("natskv: lock %s: %w", fingerprint, err)
		case st == acquired:
			return s.unlocker(key, rev), nil
		case st == contended:
			continue // the key changed under us: look again at once
		}
		// Jitter spreads waiters on different replicas apart, so they do
		// not all retry in the same instant after a release.
		d := backoff/2 + mrand.N(backoff/2+1)
		if err := sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("natskv: lock %s: %w", fingerprint, err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

type lockState int

const (
	acquired  lockState = iota
	busy                // a live holder has it: wait
	contended           // it vanished or was taken over meanwhile: retry now
)

// tryLock makes one attempt: claim a free key (none, or a delete marker
// left by a release), or take over an expired one, each with a
// compare-and-swap on the revision read, so that of several callers that
// saw the same state one wins. While a live holder has it, an attempt is
// one read and no write.
func (s *Store) tryLock(ctx context.Context, key, owner string, ttl time.Duration) (uint64, lockState, error) {
	b, err := s.bucket()
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()

	var expect uint64 // the revision to write over; 0: there is no message
	m, err := s.last(ctx, b, key)
	switch {
	case errors.Is(err, errNoMessage):
	case err != nil:
		return 0, 0, unavailable(ctx, "read", err)
	case m.deleted:
		expect = m.seq
	default:
		var cur lockValue
		if err := json.Unmarshal(m.data, &cur); err != nil {
			// Nobody could ever release a value we cannot read; treating
			// it as expired keeps the fingerprint from being blocked until
			// the bucket TTL removes it.
			s.log.Warn("unreadable lock value, taking it over", "key", key, "revision", m.seq, "err", err)
		} else if time.Now().UnixNano() <= cur.Expires {
			return 0, busy, nil
		} else {
			s.log.Warn("lock lapsed, taking it over: its holder ran past the ttl or died",
				"key", key, "expired", time.Unix(0, cur.Expires), "revision", m.seq)
		}
		expect = m.seq
	}

	val, err := json.Marshal(lockValue{Owner: owner, Expires: time.Now().Add(ttl).UnixNano()})
	if err != nil {
		return 0, 0, err
	}
	rev, err := b.kv.Update(ctx, key, val, expect)
	switch {
	case err == nil:
		return rev, acquired, nil
	case isConflict(err):
		return 0, contended, nil
	}
	return 0, 0, unavailable(ctx, "claim", err)
}

// unlocker returns the release for the lock we hold at revision rev. It
// deletes the key only while that revision is still the latest: if the
// lock lapsed and someone took it over, the delete fails its CAS and the
// new holder keeps the lock.
func (s *Store) unlocker(key string, rev uint64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b, err := s.bucket()
			if err != nil {
				s.log.Warn("unlock failed; the lock lapses after its ttl", "key", key, "revision", rev, "err", err)
				return
			}
			// Not the caller's ctx: unlock usually runs deferred, after
			// that ctx may have ended, and must still release.
			ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
			defer cancel()
			err = b.kv.Delete(ctx, key, jetstream.LastRevision(rev))
			switch {
			case err == nil:
			case isConflict(err):
				s.log.Warn("lock lapsed and was taken over before unlock: the work ran past the lock ttl", "key", key, "revision", rev)
			default:
				s.log.Warn("unlock failed; the lock lapses after its ttl", "key", key, "revision", rev, "err", err)
			}
		})
	}
}
