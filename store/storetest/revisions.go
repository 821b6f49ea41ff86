package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"function/store"
)

// The subtests in this file pin down the compare-and-swap contract of Put
// and the pending index: what lets replicas that share a store write the
// same record without losing or doubling anything.

// checkConflict: a lost compare-and-swap is ErrConflict, to be retried by
// reading again, and never ErrUnavailable, which would make the caller
// answer 503 for what is only a race.
func checkConflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s: %v, want an error matching store.ErrConflict", what, err)
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Errorf("%s: %v matches store.ErrUnavailable; a lost race is no outage", what, err)
	}
}

// mustGet reads fp and fails the test if it is missing.
func mustGet(t *testing.T, s store.Store, fp string) store.Record {
	t.Helper()
	r, ok, err := s.Get(ctxTimeout(t, 10*time.Second), fp)
	if err != nil || !ok {
		t.Fatalf("Get %s: ok=%v err=%v", fp, ok, err)
	}
	return r
}

// testStaleRevision: a writer that read before someone else wrote must not
// overwrite that write.
func testStaleRevision(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2 := open(t), open(t)
	ctx := ctxTimeout(t, 10*time.Second)
	fp := Fingerprint(t)

	first, err := s1.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-1"})
	if err != nil {
		t.Fatalf("first Put: %v", err)
	}
	read := mustGet(t, s2, fp)
	read.PageID = "p-1"
	second, err := s2.Put(ctx, read)
	if err != nil {
		t.Fatalf("second Put at the revision read: %v", err)
	}

	stale := first
	stale.JiraKey, stale.PageID = "OPS-STALE", ""
	_, err = s1.Put(ctx, stale)
	checkConflict(t, "Put at a stale revision", err)
	never := second
	never.Revision += 1000
	never.JiraKey = "OPS-NEVER"
	_, err = s1.Put(ctx, never)
	checkConflict(t, "Put at a revision the record never had", err)

	got := mustGet(t, s1, fp)
	if got.Revision != second.Revision || got.JiraKey != "OPS-1" || got.PageID != "p-1" || !got.UpdatedAt.Equal(second.UpdatedAt) {
		t.Errorf("after the failed Puts the record is %+v, want it unchanged at revision %d: %+v", got, second.Revision, second)
	}
}

// testCreateOverExisting: revision 0 means "there is no record"; a writer
// that believed so must not replace the one someone else created.
func testCreateOverExisting(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2 := open(t), open(t)
	ctx := ctxTimeout(t, 20*time.Second)
	fp := Fingerprint(t)

	saved, err := s1.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-1"})
	if err != nil {
		t.Fatalf("first Put: %v", err)
	}
	_, err = s2.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-2"})
	checkConflict(t, "Put at revision 0 over an existing record", err)
	if got := mustGet(t, s2, fp); got.Revision != saved.Revision || got.JiraKey != "OPS-1" {
		t.Errorf("after the failed create the record is %+v, want OPS-1 at revision %d", got, saved.Revision)
	}

	// Creators racing on replicas: exactly one wins.
	handles := []store.Store{s1, s2, open(t)}
	fp = Fingerprint(t)
	const n = 9
	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := range n {
		s := handles[i%len(handles)]
		wg.Go(func() {
			key := "OPS-" + strconv.Itoa(i)
			_, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: key})
			if err == nil {
				wins.Add(1)
				winner.Store(key)
				return
			}
			checkConflict(t, "racing create "+key, err)
		})
	}
	wg.Wait()
	if w := wins.Load(); w != 1 {
		t.Fatalf("%d of %d racing creates succeeded, want exactly 1", w, n)
	}
	if got := mustGet(t, s1, fp); got.JiraKey != winner.Load() {
		t.Errorf("record holds %s, but the create that succeeded wrote %s", got.JiraKey, winner.Load())
	}
}

// testRevisions: Put returns the record as saved, and Get, on any replica,
// returns it at that revision; each save gives a new one.
func testRevisions(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2 := open(t), open(t)
	ctx := ctxTimeout(t, 10*time.Second)
	fp := Fingerprint(t)

	seen := map[uint64]bool{}
	r := store.Record{Fingerprint: fp}
	for i := range 3 {
		r.JiraKey = "OPS-" + strconv.Itoa(i)
		saved, err := s1.Put(ctx, r)
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if saved.Revision == 0 || seen[saved.Revision] {
			t.Fatalf("Put %d returned revision %d, want a new non-zero one (seen %v)", i, saved.Revision, seen)
		}
		seen[saved.Revision] = true
		if saved.JiraKey != r.JiraKey || saved.UpdatedAt.IsZero() || saved.CreatedAt.IsZero() {
			t.Errorf("Put %d returned %+v, want the record as saved", i, saved)
		}
		got := mustGet(t, s2, fp)
		if got.Revision != saved.Revision {
			t.Fatalf("Get after Put %d: revision %d, Put returned %d", i, got.Revision, saved.Revision)
		}
		equalRecords(t, got, saved)
		r = got
	}
}

// testConcurrentUpdates has every replica deliver every entry at once, as
// redeliveries to several replicas do, each adding it with Update if it is
// absent. Compare-and-swap must make every entry land exactly once: no
// write lost under another, none written twice.
func testConcurrentUpdates(t *testing.T, open func(*testing.T) store.Store) {
	handles := []store.Store{open(t), open(t), open(t)}
	ctx := ctxTimeout(t, 60*time.Second)
	fp := Fingerprint(t)
	const entries = 12

	var writes atomic.Int32
	var wg sync.WaitGroup
	for e := range entries {
		hash := fmt.Sprintf("entry-%02d", e)
		for _, s := range handles {
			wg.Go(func() {
				var appended bool
				saved, err := store.Update(ctx, s, fp, func(r *store.Record) error {
					appended = false
					if r.HasEntry(hash) {
						return store.ErrUnchanged
					}
					r.Timeline = append(r.Timeline, store.Entry{Hash: hash, At: time.Now(), Text: "news " + hash})
					appended = true
					return nil
				})
				if err != nil {
					t.Errorf("Update adding %s: %v", hash, err)
					return
				}
				if !saved.HasEntry(hash) {
					t.Errorf("Update adding %s returned a record without it: %+v", hash, saved.Timeline)
				}
				if appended {
					writes.Add(1)
				}
			})
		}
	}
	wg.Wait()

	got := mustGet(t, handles[0], fp)
	var hashes []string
	for _, e := range got.Timeline {
		hashes = append(hashes, e.Hash)
	}
	slices.Sort(hashes)
	want := make([]string, entries)
	for e := range entries {
		want[e] = fmt.Sprintf("entry-%02d", e)
	}
	if !slices.Equal(hashes, want) {
		t.Errorf("timeline holds %v, want each of %v once", hashes, want)
	}
	if w := writes.Load(); w != entries {
		t.Errorf("%d Updates saved an append, want %d (one per entry)", w, entries)
	}
}

// testPendingListed: Pending lists a pending record, from any replica, and
// stops once the record is saved finished.
func testPendingListed(t *testing.T, open func(*testing.T) store.Store) {
	s1, s2 := open(t), open(t)
	ctx := ctxTimeout(t, 10*time.Second)
	fp, done := Fingerprint(t), Fingerprint(t)

	if _, err := s1.Put(ctx, store.Record{Fingerprint: done, JiraKey: "OPS-0"}); err != nil {
		t.Fatalf("Put finished record: %v", err)
	}
	since := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	saved, err := s1.Put(ctx, store.Record{Fingerprint: fp, Pending: &store.Pending{Since: since}})
	if err != nil {
		t.Fatalf("Put pending record: %v", err)
	}
	listed := func(s store.Store, fp string) bool {
		t.Helper()
		fps, err := s.Pending(ctx)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		return slices.Contains(fps, fp)
	}
	if !listed(s2, fp) {
		t.Error("Pending does not list a pending record")
	}
	if listed(s2, done) {
		t.Error("Pending lists a record that was never pending")
	}
	if got := mustGet(t, s2, fp); got.Pending == nil || !got.Pending.Since.Equal(since) {
		t.Errorf("pending record read back as %+v", got.Pending)
	}

	saved.Pending = nil
	saved.JiraKey = "OPS-1"
	if saved, err = s2.Put(ctx, saved); err != nil {
		t.Fatalf("Put finished: %v", err)
	}
	if listed(s1, fp) {
		t.Error("Pending still lists the record after it was saved finished")
	}

	saved.Pending = &store.Pending{Since: since.Add(time.Hour), Attempts: 1}
	if _, err := s1.Put(ctx, saved); err != nil {
		t.Fatalf("Put pending again: %v", err)
	}
	if !listed(s2, fp) {
		t.Error("Pending does not list the record once it is pending again")
	}
}

// testPendingNeverMissed races replicas that finish a record against one
// that makes it pending again, round after round; whenever the record ends
// up pending, Pending must list it. (A store that takes the index entry out
// after a finished write, without checking that nobody made the record
// pending again meanwhile, loses the entry of a pending record.)
func testPendingNeverMissed(t *testing.T, open func(*testing.T) store.Store) {
	handles := []store.Store{open(t), open(t), open(t)}
	ctx := ctxTimeout(t, 90*time.Second)
	const rounds = 30
	fp := Fingerprint(t)

	var pendingEnds int
	for round := range rounds {
		var wg sync.WaitGroup
		for i, s := range handles {
			pend := i == round%len(handles)
			wg.Go(func() {
				_, err := store.Update(ctx, s, fp, func(r *store.Record) error {
					if pend {
						r.Pending = &store.Pending{Since: time.Now(), Attempts: round}
					} else {
						r.Pending = nil
						r.Notified = strconv.Itoa(round) // a finished write, not a no-op
					}
					return nil
				})
				if err != nil {
					t.Errorf("round %d: Update (pending %v): %v", round, pend, err)
				}
			})
		}
		wg.Wait()
		r := mustGet(t, handles[0], fp)
		if r.Pending == nil {
			continue
		}
		pendingEnds++
		for i, s := range handles {
			fps, err := s.Pending(ctx)
			if err != nil {
				t.Fatalf("round %d: Pending: %v", round, err)
			}
			if !slices.Contains(fps, fp) {
				t.Fatalf("round %d: the record is pending (revision %d) but Pending on replica %d does not list it", round, r.Revision, i)
			}
		}
	}
	t.Logf("the record ended %d of %d rounds pending", pendingEnds, rounds)
	if pendingEnds == 0 {
		t.Fatal("no round ended with the record pending: nothing was checked")
	}
}
