package natskv

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"function/store"
)

// The two interleavings in which a finisher's clean-up of the pending
// index races with a writer that makes the record pending again, played
// out step by step against a real server. Before the fix the clean-up was
// an unconditional delete after the finished write, and the first one
// left a pending record out of the index for good.
func TestClearPendingRaces(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{URL: ns.ClientURL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	b, err := s.bucket()
	if err != nil {
		t.Fatal(err)
	}
	listed := func(fp string) bool {
		t.Helper()
		fps, err := s.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(fps, fp)
	}

	t.Run("CleanUpArrivesAfterPendingAgain", func(t *testing.T) {
		fp := "00000000000000a1"
		// The finisher saves the record finished at revision fin; its
		// clean-up is slow (a stalled link) ...
		fin, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-1"})
		if err != nil {
			t.Fatal(err)
		}
		// ... and meanwhile another replica reads it and makes it pending.
		fin.Pending = &store.Pending{Since: time.Now()}
		if _, err := s.Put(ctx, fin); err != nil {
			t.Fatal(err)
		}
		// The finisher's clean-up for revision fin lands now.
		if err := s.clearPending(ctx, b, fp, fin.Revision); err != nil {
			t.Fatal(err)
		}
		if !listed(fp) {
			t.Error("the late clean-up of a finished revision took a pending record out of the index")
		}
	})

	t.Run("PendingAgainBetweenReadAndPurge", func(t *testing.T) {
		fp := "00000000000000a2"
		r, err := s.Put(ctx, store.Record{Fingerprint: fp, Pending: &store.Pending{Since: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		old, err := s.last(ctx, b, pendPrefix+fp)
		if err != nil {
			t.Fatal(err)
		}
		// Finished at fin: the clean-up reads the index entry (old) ...
		r.Pending = nil
		fin, err := s.Put(ctx, r) // its own clean-up runs here, and is right to
		if err != nil {
			t.Fatal(err)
		}
		// ... another replica makes the record pending again ...
		fin.Pending = &store.Pending{Since: time.Now()}
		if _, err := s.Put(ctx, fin); err != nil {
			t.Fatal(err)
		}
		// ... and the purge of the entry read lands after that.
		if err := s.purge(ctx, pendPrefix+fp, old.seq); err != nil {
			t.Fatal(err)
		}
		if !listed(fp) {
			t.Error("purging the index entry read took out the newer one")
		}
	})

	t.Run("LosingPendingWriteLeavesOnlyAStaleEntry", func(t *testing.T) {
		fp := "00000000000000a3"
		first, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-1"})
		if err != nil {
			t.Fatal(err)
		}
		// A writer that read first makes it pending, but loses the race
		// to a finished write: its index entry is written, its record not.
		finished := first
		finished.PageID = "p-1"
		if _, err := s.Put(ctx, finished); err != nil {
			t.Fatal(err)
		}
		loser := first
		loser.Pending = &store.Pending{Since: time.Now()}
		if _, err := s.Put(ctx, loser); err == nil {
			t.Fatal("the stale pending write succeeded")
		}
		if !listed(fp) {
			t.Fatal("no index entry from the losing pending write (this test expects it)")
		}
		// The next finished write clears the stale entry.
		cur, _, err := s.Get(ctx, fp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, cur); err != nil {
			t.Fatal(err)
		}
		if listed(fp) {
			t.Error("a finished write left the stale index entry behind")
		}
	})
}
