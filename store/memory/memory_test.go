package memory_test

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"function/store"
	"function/store/memory"
)

// A pending record is in the function's custody until its work is done:
// retention, which bounds memory by forgetting finished rollbacks, must
// never drop it, however long the outage that keeps it pending.
func TestPendingRecordOutlivesRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const retention = time.Hour
		s := memory.New(retention)
		ctx := t.Context()
		const pendingFP, finishedFP = "00000000000000aa", "00000000000000bb"

		if _, err := s.Put(ctx, store.Record{Fingerprint: pendingFP, Pending: &store.Pending{Since: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, store.Record{Fingerprint: finishedFP, JiraKey: "OPS-1"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * retention)
		// Enough other writes to trigger Put's sweep of expired records,
		// which must spare the pending one too.
		for i := range 600 {
			if _, err := s.Put(ctx, store.Record{Fingerprint: fmt.Sprintf("%016x", 0x1000+i)}); err != nil {
				t.Fatal(err)
			}
		}

		r, ok, err := s.Get(ctx, pendingFP)
		if err != nil || !ok || r.Pending == nil {
			t.Fatalf("pending record after 10× the retention: ok=%v err=%v record %+v", ok, err, r)
		}
		if fps, err := s.Pending(ctx); err != nil || !slices.Contains(fps, pendingFP) {
			t.Errorf("Pending = %v (err %v), want it to list %s", fps, err, pendingFP)
		}
		if _, ok, _ := s.Get(ctx, finishedFP); ok {
			t.Error("a finished record outlived the retention")
		}

		// Once finished it ages like any other record.
		r.Pending = nil
		if _, err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(retention + time.Second)
		if _, ok, _ := s.Get(ctx, pendingFP); ok {
			t.Error("the record, finished, outlived the retention")
		}
	})
}
