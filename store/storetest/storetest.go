// Package storetest is the conformance suite every store.Store must pass, so
// that the in-process store used in tests and the shared store used by
// several replicas behave the same to the handler.
//
// Usage, from an implementation's test:
//
//	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
//
// open is called one or more times within a subtest; every call must return
// a handle onto the SAME shared backend, as if each were a different replica
// of the function. A backend shared over the network returns a new
// connection per call; an in-process backend (memory) returns the same
// *Store every time, because that is all its replicas could share. open
// registers any cleanup with t.Cleanup.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"function/store"
)

// Option adjusts Run.
type Option func(*config)

type config struct {
	skipLapse bool
}

// SkipLapse skips the subtest that lets a lock lapse after its ttl. Only an
// in-process store may use it: its locks die with the process that holds
// them, so a crashed holder cannot block anyone and the ttl is moot. A
// shared store must pass that subtest, since there a holder can vanish
// while its lock lives on.
func SkipLapse() Option { return func(c *config) { c.skipLapse = true } }

// Run runs the conformance subtests against the store that open returns.
func Run(t *testing.T, open func(t *testing.T) store.Store, opts ...Option) {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	t.Run("GetMissing", func(t *testing.T) { testGetMissing(t, open) })
	t.Run("PutGetRoundTrip", func(t *testing.T) { testRoundTrip(t, open) })
	t.Run("PutTimestamps", func(t *testing.T) { testTimestamps(t, open) })
	t.Run("LockExcludes", func(t *testing.T) { testLockExcludes(t, open) })
	t.Run("LockIndependentFingerprints", func(t *testing.T) { testIndependent(t, open) })
	t.Run("LockHonoursContext", func(t *testing.T) { testLockContext(t, open) })
	t.Run("UnlockIdempotent", func(t *testing.T) { testUnlockIdempotent(t, open) })
	t.Run("PutStaleRevisionConflicts", func(t *testing.T) { testStaleRevision(t, open) })
	t.Run("PutCreateOverExistingConflicts", func(t *testing.T) { testCreateOverExisting(t, open) })
	t.Run("GetReturnsPutRevision", func(t *testing.T) { testRevisions(t, open) })
	t.Run("ConcurrentUpdatesAddEachEntryOnce", func(t *testing.T) { testConcurrentUpdates(t, open) })
	t.Run("PendingListsPendingRecords", func(t *testing.T) { testPendingListed(t, open) })
	t.Run("PendingNeverMissesOne", func(t *testing.T) { testPendingNeverMissed(t, open) })
	t.Run("LockLapsesAfterTTL", func(t *testing.T) {
		if c.skipLapse {
			t.Skip("store opted out with SkipLapse: its locks cannot outlive their holder")
		}
		testLapse(t, open)
	})
}

// longTTL is a lock ttl that never lapses within a test, so only unlock
// frees the lock.
const longTTL = 30 * time.Second

// Fingerprint returns a fresh random fingerprint in the form the handler
// uses (16 lowercase hex characters). Each subtest uses its own, so
// subtests sharing one backend cannot see each other's records or locks.
func Fingerprint(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random fingerprint: %v", err)
	}
	return hex.EncodeToString(b[:])
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func testGetMissing(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	r, ok, err := s.Get(ctxTimeout(t, 5*time.Second), Fingerprint(t))
	if err != nil {
		t.Fatalf("Get missing: %v", err)
	}
	if ok {
		t.Fatalf("Get missing: ok=true, record %+v", r)
	}
}

func testRoundTrip(t *testing.T, open func(*testing.T) store.Store) {
	writer, reader := open(t), open(t)
	ctx := ctxTimeout(t, 10*time.Second)
	fp := Fingerprint(t)
	// Times carry nanoseconds and a non-UTC zone: a store must keep the
	// instant, though it may change the representation.
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	want := store.Record{
		Fingerprint:   fp,
		JiraID:        "10042",
		JiraKey:       "OPS-42",
		CreatingSince: time.Date(2025, 3, 1, 10, 0, 0, 123456789, zone),
		PageID:        "98765",
		PageURL:       "https://example.atlassian.net/wiki/spaces/OPS/pages/98765",
		PageTitle:     "Rollback of payments — rev 7 → 6 \"quoted\"",
		Linked:        true,
		Timeline: []store.Entry{
			{Hash: "h1", At: time.Date(2025, 3, 1, 10, 0, 1, 1, time.UTC), Text: "Rollout aborted\nline 2", Commented: true, OnPage: true},
			{Hash: "h2", At: time.Date(2025, 3, 1, 10, 5, 0, 999999999, zone), Text: "Degraded: <b>not html</b> & more"},
		},
		CreatedAt: time.Date(2025, 3, 1, 9, 59, 0, 500, zone),
	}
	before := time.Now()
	if _, err := writer.Put(ctx, want); err != nil {
		t.Fatalf("Put: %v", err)
	}
	after := time.Now()
	got, ok, err := reader.Get(ctx, fp)
	if err != nil || !ok {
		t.Fatalf("Get after Put: ok=%v err=%v", ok, err)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt = %v, want the one given %v", got.CreatedAt, want.CreatedAt)
	}
	checkBetween(t, "UpdatedAt", got.UpdatedAt, before, after)
	want.UpdatedAt = got.UpdatedAt // set by Put, checked above
	if got.Revision == 0 {
		t.Error("Get returned revision 0 for a stored record")
	}
	want.Revision = got.Revision
	equalRecords(t, got, want)
}

func testTimestamps(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2 := open(t), open(t)
	ctx := ctxTimeout(t, 10*time.Second)
	fp := Fingerprint(t)

	before := time.Now()
	if _, err := s1.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-1"}); err != nil {
		t.Fatalf("first Put: %v", err)
	}
	after := time.Now()
	first, ok, err := s2.Get(ctx, fp)
	if err != nil || !ok {
		t.Fatalf("Get after first Put: ok=%v err=%v", ok, err)
	}
	checkBetween(t, "CreatedAt on first save", first.CreatedAt, before, after)
	checkBetween(t, "UpdatedAt on first save", first.UpdatedAt, before, after)

	// The handler saves what it read, changed: CreatedAt must survive and
	// UpdatedAt must move on. Every backend stamps from its own clock,
	// which the suite cannot set, so instead of sleeping some guessed time
	// it waits only until the clock reads later than the first stamp (on
	// any usual clock, at once): the second save's bounds then prove its
	// stamp the later one.
	for !time.Now().After(first.UpdatedAt) {
		runtime.Gosched()
	}
	first.PageID = "p-1"
	before = time.Now()
	if _, err := s2.Put(ctx, first); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	after = time.Now()
	second, ok, err := s1.Get(ctx, fp)
	if err != nil || !ok {
		t.Fatalf("Get after second Put: ok=%v err=%v", ok, err)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("CreatedAt changed on a later save: %v, was %v", second.CreatedAt, first.CreatedAt)
	}
	checkBetween(t, "UpdatedAt on second save", second.UpdatedAt, before, after)
	if !second.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("UpdatedAt did not move on: %v, was %v", second.UpdatedAt, first.UpdatedAt)
	}
	if second.JiraKey != "OPS-1" || second.PageID != "p-1" {
		t.Errorf("second save lost fields: %+v", second)
	}
}

// testLockExcludes has N callers spread over three replicas do a
// read-modify-write under the lock. Any overlap would lose an increment or
// trip the in-critical-section flag.
func testLockExcludes(t *testing.T, open func(*testing.T) store.Store) {
	const n = 50
	handles := []store.Store{open(t), open(t), open(t)}
	fp := Fingerprint(t)
	ctx := ctxTimeout(t, 45*time.Second)

	var inside atomic.Bool
	var overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		s := handles[i%len(handles)]
		wg.Go(func() {
			unlock, err := s.Lock(ctx, fp, longTTL)
			if err != nil {
				t.Errorf("caller %d: Lock: %v", i, err)
				return
			}
			defer unlock()
			if !inside.CompareAndSwap(false, true) {
				overlaps.Add(1)
			}
			defer inside.Store(false)

			r, ok, err := s.Get(ctx, fp)
			if err != nil {
				t.Errorf("caller %d: Get: %v", i, err)
				return
			}
			if !ok {
				r = store.Record{Fingerprint: fp}
			}
			// The counter is the timeline's length; each caller adds one
			// entry naming itself.
			r.Timeline = append(r.Timeline, store.Entry{Hash: strconv.Itoa(i), At: time.Now(), Text: "caller " + strconv.Itoa(i)})
			// Widen the window in which a second holder would be caught.
			time.Sleep(time.Millisecond)
			if _, err := s.Put(ctx, r); err != nil {
				t.Errorf("caller %d: Put: %v", i, err)
			}
		})
	}
	wg.Wait()

	if o := overlaps.Load(); o != 0 {
		t.Errorf("%d callers held the lock while another did", o)
	}
	r, ok, err := handles[0].Get(ctx, fp)
	if err != nil || !ok {
		t.Fatalf("final Get: ok=%v err=%v", ok, err)
	}
	if len(r.Timeline) != n {
		t.Errorf("count = %d, want %d (lost updates)", len(r.Timeline), n)
	}
	seen := map[string]bool{}
	for _, e := range r.Timeline {
		if seen[e.Hash] {
			t.Errorf("caller %s counted twice", e.Hash)
		}
		seen[e.Hash] = true
	}
}

func testIndependent(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2 := open(t), open(t)
	fpA, fpB := Fingerprint(t), Fingerprint(t)
	unlockA, err := s1.Lock(ctxTimeout(t, 5*time.Second), fpA, longTTL)
	if err != nil {
		t.Fatalf("Lock A: %v", err)
	}
	defer unlockA()
	// If B waited for A it would run into this deadline, not the ttl.
	unlockB, err := s2.Lock(ctxTimeout(t, 3*time.Second), fpB, longTTL)
	if err != nil {
		t.Fatalf("Lock B while A is held: %v", err)
	}
	unlockB()
}

func testLockContext(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2 := open(t), open(t)
	fp := Fingerprint(t)
	unlock, err := s1.Lock(ctxTimeout(t, 5*time.Second), fp, longTTL)
	if err != nil {
		t.Fatalf("first Lock: %v", err)
	}
	defer unlock()

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	unlock2, err := s2.Lock(ctx, fp, longTTL)
	elapsed := time.Since(start)
	if err == nil {
		unlock2()
		t.Fatal("second Lock succeeded while the first holds the lock")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Lock error = %v, want one wrapping context.DeadlineExceeded", err)
	}
	if unlock2 != nil {
		t.Error("second Lock returned an unlock func with its error")
	}
	// A Lock that ignored ctx would wait for the holder, who keeps the lock
	// for longTTL (30 s) or, in process, for ever: a bound a third of that
	// tells the two apart, and is so far above the 100 ms deadline that a
	// loaded machine (or a network store's poll) cannot reach it.
	if elapsed > longTTL/3 {
		t.Errorf("second Lock returned %v after its 100ms deadline", elapsed)
	}
}

// testUnlockIdempotent: a deferred unlock that also runs on an early path
// must not free a lock someone else took in between.
func testUnlockIdempotent(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2, s3 := open(t), open(t), open(t)
	fp := Fingerprint(t)
	unlockA, err := s1.Lock(ctxTimeout(t, 5*time.Second), fp, longTTL)
	if err != nil {
		t.Fatalf("Lock A: %v", err)
	}
	unlockA()
	unlockA()

	unlockB, err := s2.Lock(ctxTimeout(t, 5*time.Second), fp, longTTL)
	if err != nil {
		t.Fatalf("Lock B after A unlocked twice: %v", err)
	}
	unlockA() // stale: must leave B's lock alone
	expectHeld(t, s3, fp)

	unlockB()
	unlockC, err := s3.Lock(ctxTimeout(t, 5*time.Second), fp, longTTL)
	if err != nil {
		t.Fatalf("Lock C after B unlocked: %v", err)
	}
	unlockC()
}

// testLapse: a holder that never unlocks (it crashed) blocks others only
// until its ttl; when it comes back and unlocks late, it must not free the
// lock its successor holds.
func testLapse(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2, s3 := open(t), open(t), open(t)
	fp := Fingerprint(t)
	const ttl = time.Second

	unlockA, err := s1.Lock(ctxTimeout(t, 5*time.Second), fp, ttl)
	if err != nil {
		t.Fatalf("Lock A: %v", err)
	}
	heldSince := time.Now()

	unlockB, err := s2.Lock(ctxTimeout(t, 10*time.Second), fp, longTTL)
	if err != nil {
		t.Fatalf("Lock B did not get the lapsed lock: %v", err)
	}
	defer unlockB()
	// The store takes its clock reading before returning A's lock, so B
	// may get it a little before heldSince+ttl; far earlier means A's lock
	// did not exclude at all.
	if waited := time.Since(heldSince); waited < ttl-200*time.Millisecond {
		t.Errorf("B got the lock %v after A took it, before A's ttl %v", waited, ttl)
	}

	unlockA() // late unlock by the lapsed holder: must not free B's lock
	expectHeld(t, s3, fp)

	unlockB()
	unlockC, err := s3.Lock(ctxTimeout(t, 5*time.Second), fp, longTTL)
	if err != nil {
		t.Fatalf("Lock C after B unlocked: %v", err)
	}
	unlockC()
}

// expectHeld checks that fp is locked by someone: a Lock attempt times out.
func expectHeld(t *testing.T, s store.Store, fp string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	unlock, err := s.Lock(ctx, fp, longTTL)
	if err == nil {
		unlock()
		t.Fatal("lock was free: a stale unlock released another holder's lock")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("probing Lock: %v, want context.DeadlineExceeded", err)
	}
}

func checkBetween(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	// Round(0) drops the monotonic reading so all comparisons use the wall
	// clock, which is all a stored time can carry.
	if got.Before(before.Round(0)) || got.After(after.Round(0)) {
		t.Errorf("%s = %v, want between %v and %v", what, got, before, after)
	}
}

// equalRecords compares every field; times by instant (Equal), since a
// store may return them in another zone and without a monotonic reading.
func equalRecords(t *testing.T, got, want store.Record) {
	t.Helper()
	eqTime := func(name string, g, w time.Time) {
		if !g.Equal(w) {
			t.Errorf("%s = %v, want %v", name, g, w)
		}
	}
	eqTime("CreatingSince", got.CreatingSince, want.CreatingSince)
	eqTime("CreatedAt", got.CreatedAt, want.CreatedAt)
	eqTime("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	if len(got.Timeline) != len(want.Timeline) {
		t.Fatalf("Timeline has %d entries, want %d: %+v", len(got.Timeline), len(want.Timeline), got.Timeline)
	}
	for i := range want.Timeline {
		eqTime("Timeline["+strconv.Itoa(i)+"].At", got.Timeline[i].At, want.Timeline[i].At)
	}
	// With the times checked, blank them and compare the rest exactly.
	strip := func(r store.Record) store.Record {
		r.CreatingSince, r.CreatedAt, r.UpdatedAt = time.Time{}, time.Time{}, time.Time{}
		r.Timeline = append([]store.Entry(nil), r.Timeline...)
		for i := range r.Timeline {
			r.Timeline[i].At = time.Time{}
		}
		return r
	}
	if g, w := strip(got), strip(want); !reflect.DeepEqual(g, w) {
		t.Errorf("record round trip:\n got %+v\nwant %+v", g, w)
	}
}
