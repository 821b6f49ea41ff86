package atlassian

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestTokenBucketGivenUpSlotStaysTaken: a caller that reserved a slot and
// gave up before it came does not hand it to the next caller, who would
// then go early (what x/time/rate did, and Jira answered 429); a caller
// refused at once for its deadline takes no slot.
func TestTokenBucketGivenUpSlotStaysTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTokenBucket(100*time.Millisecond, 1)
		start := time.Now()
		if err := b.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Reserves the slot at 100 ms, gives up at 10 ms. (A deadline
		// would refuse it at once.)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(10*time.Millisecond, cancel)
		if err := b.Wait(ctx); err == nil || time.Since(start) != 10*time.Millisecond {
			t.Fatalf("cancelled waiter: err %v after %v", err, time.Since(start))
		}
		// Would need the slot at 200 ms: refused at once, takes nothing.
		ctx, cancel = context.WithTimeout(t.Context(), 150*time.Millisecond)
		defer cancel()
		if err := b.Wait(ctx); err == nil || time.Since(start) != 10*time.Millisecond {
			t.Fatalf("deadline-refused waiter: err %v after %v", err, time.Since(start))
		}
		if err := b.Wait(t.Context()); err != nil || time.Since(start) != 200*time.Millisecond {
			t.Errorf("next caller went at %v (err %v), want 200ms: after the given-up slot, not in it", time.Since(start), err)
		}
	})
}

// TestIssueLimiterSpacing: burst writes to one issue at once, then one per
// interval; another issue has its own budget.
func TestIssueLimiterSpacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewIssueLimiter(50*time.Millisecond, 2)
		start := time.Now()
		var at []time.Duration
		for range 4 {
			if err := l.Wait(t.Context(), "OPS-1"); err != nil {
				t.Fatal(err)
			}
			at = append(at, time.Since(start))
		}
		if want := []time.Duration{0, 0, 50 * time.Millisecond, 100 * time.Millisecond}; !slices.Equal(at, want) {
			t.Errorf("writes to one issue at %v, want %v", at, want)
		}
		before := time.Now()
		if err := l.Wait(t.Context(), "OPS-2"); err != nil || time.Since(before) != 0 {
			t.Errorf("OPS-2 waited %v for OPS-1's budget (err %v)", time.Since(before), err)
		}
	})
}

// TestTokenBucketNeverOvergrants: however many callers wait and give up,
// the slots handed out are one interval apart (burst 1 makes any excess
// show), and every slot reserved is a new one.
func TestTokenBucketNeverOvergrants(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 10 * time.Millisecond
		b := newTokenBucket(every, 1)
		start := time.Now()
		var mu sync.Mutex
		var got []time.Duration
		gaveUp := 0
		var wg sync.WaitGroup
		for i := range 300 {
			wg.Go(func() {
				// Callers arrive one a millisecond, ten times the rate;
				// a third of them reserve a slot and give up 25 ms later,
				// as requests cancelled by their caller do, the others
				// are refused once the queue is longer than 500 ms.
				time.Sleep(time.Duration(i) * time.Millisecond)
				ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
				if i%3 == 0 {
					ctx, cancel = context.WithCancel(t.Context())
					time.AfterFunc(25*time.Millisecond, cancel)
				}
				defer cancel()
				err := b.Wait(ctx)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					got = append(got, time.Since(start))
				case ctx.Err() != nil:
					// Reserved a slot and gave up (a slot due exactly at
					// a deadline may end either way).
					gaveUp++
				}
			})
		}
		wg.Wait()
		slices.Sort(got)
		for i := 1; i < len(got); i++ {
			if got[i]-got[i-1] < every {
				t.Fatalf("slots at %v and %v", got[i-1], got[i])
			}
		}
		// The queue never drained: the slots reserved are exactly those
		// from start to b.next, none reused and none skipped.
		if reserved := b.next.Sub(start) / every; int(reserved) != len(got)+gaveUp || gaveUp == 0 {
			t.Errorf("%d slots handed out and %d given up, want %d in all", len(got), gaveUp, reserved)
		}
	})
}

// TestIssueLimiterForgetsFullBuckets: past sweepAt issues, the buckets that
// are full again are forgotten, and a busy one keeps its schedule.
func TestIssueLimiterForgetsFullBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewIssueLimiter(50*time.Millisecond, 2)
		for i := range sweepAt {
			if err := l.Wait(t.Context(), fmt.Sprint("OPS-", i)); err != nil {
				t.Fatal(err)
			}
		}
		// Nothing is full yet: nothing is forgotten.
		if err := l.Wait(t.Context(), "new-1"); err != nil || len(l.byKey) != sweepAt+1 {
			t.Fatalf("%d buckets (err %v), want %d", len(l.byKey), err, sweepAt+1)
		}
		// OPS-0 takes two more slots (at 0 and 50 ms); its next is at
		// 100 ms, and the others are full at 50 ms.
		for range 2 {
			if err := l.Wait(t.Context(), "OPS-0"); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Wait(t.Context(), "new-2"); err != nil || len(l.byKey) != 2 {
			t.Fatalf("%d buckets after the sweep (err %v), want OPS-0 and new-2", len(l.byKey), err)
		}
		start := time.Now()
		if err := l.Wait(t.Context(), "OPS-0"); err != nil || time.Since(start) != 50*time.Millisecond {
			t.Errorf("OPS-0 waited %v (err %v), want 50ms: its schedule survived the sweep", time.Since(start), err)
		}
	})
}
