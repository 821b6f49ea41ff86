package atlassian

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// IssueLimiter spaces writes to each issue with a TokenBucket per issue.
// Jira Cloud allows 20 writes per 2 s and 100 per 30 s on one issue; a
// storm of news about one rollback must not trip it.
type IssueLimiter struct {
	every time.Duration
	burst int

	mu    sync.Mutex
	byKey map[string]*TokenBucket
}

// NewIssueLimiter allows burst writes at once and then one per every.
func NewIssueLimiter(every time.Duration, burst int) *IssueLimiter {
	return &IssueLimiter{every: every, burst: burst, byKey: map[string]*TokenBucket{}}
}

// DefaultIssueLimiter stays under both of Jira's per-issue windows: 10 at
// once, then one per 350 ms (≈86 per 30 s).
func DefaultIssueLimiter() *IssueLimiter { return NewIssueLimiter(350*time.Millisecond, 10) }

// sweepAt is how many buckets an IssueLimiter holds before it forgets the
// full ones.
const sweepAt = 1024

// Wait takes a slot for a write to key, as TokenBucket.Wait does.
func (l *IssueLimiter) Wait(ctx context.Context, key string) error {
	// The slot is reserved under l.mu so that no bucket is forgotten
	// between its lookup and its reservation: two callers would then get
	// two fresh buckets and go together.
	l.mu.Lock()
	b := l.byKey[key]
	if b == nil {
		if len(l.byKey) >= sweepAt {
			// A full bucket is the same as a new one: forgetting it
			// loses nothing, and memory stays bounded by the issues
			// written to within the last burst·every.
			now := time.Now()
			for k, v := range l.byKey {
				if v.full(now) {
					delete(l.byKey, k)
				}
			}
		}
		b = newTokenBucket(l.every, l.burst)
		l.byKey[key] = b
	}
	wait, err := b.reserve(ctx)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return sleep(ctx, wait)
}

// trace context (W3C Trace Context) carried from the inbound event onto
// every outgoing call.
type traceKey struct{}

// WithTraceparent returns ctx carrying the inbound traceparent; outgoing
// calls send it on with a new span id of their own.
func WithTraceparent(ctx context.Context, traceparent string) context.Context {
	if !validTraceparent(traceparent) {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, traceparent)
}

// Traceparent returns the inbound traceparent ctx carries, "" for none:
// kept with a rollback in custody, so that later attempts continue the
// trace of the event that brought it.
func Traceparent(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	return tp
}

// TraceID returns the trace id of ctx's traceparent, for logs.
func TraceID(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	if tp == "" {
		return ""
	}
	return tp[3:35]
}

func outgoingTraceparent(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	if tp == "" {
		return ""
	}
	return tp[:36] + newSpanID() + tp[52:]
}

// validTraceparent accepts version 00: 00-<32 hex trace id>-<16 hex parent
// id>-<2 hex flags>, with non-zero ids.
func validTraceparent(tp string) bool {
	if len(tp) != 55 || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return false
	}
	for i, r := range tp {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return tp[3:35] != "00000000000000000000000000000000" && tp[36:52] != "0000000000000000"
}

// newSpanID is a random 16-hex-digit span id; all zeros is invalid.
func newSpanID() string {
	n := rand.Uint64()
	for n == 0 {
		n = rand.Uint64()
	}
	return fmt.Sprintf("%016x", n)
}

// TokenBucket spaces calls: at most burst at once, then one per every.
// A caller reserves the next free slot and sleeps until it; a caller whose
// slot would come after its deadline takes none and fails at once. Slots
// are never handed back: when many queued callers give up (deadlines), a
// limiter that returns their tokens lets later calls burst above the limit
// (x/time/rate did, and Jira answered 429); this one may waste a slot
// instead, which errs on the safe side. No goroutine: an idle,
// scaled-to-zero function pays nothing.
//
// It keeps the time the schedule is free again (the generic cell rate
// algorithm), not a float count of tokens, so that spacing is exact.
type TokenBucket struct {
	every time.Duration // one slot per every
	ahead time.Duration // (burst-1)·every: how far the schedule may run ahead of now without waiting

	mu   sync.Mutex
	next time.Time // the slot after the last one reserved; before now when the bucket is full
}

// NewTokenBucket returns a full bucket for perSecond calls a second after a
// burst.
func NewTokenBucket(perSecond float64, burst int) *TokenBucket {
	return newTokenBucket(time.Duration(float64(time.Second)/perSecond), burst)
}

func newTokenBucket(every time.Duration, burst int) *TokenBucket {
	return &TokenBucket{every: every, ahead: time.Duration(max(burst, 1)-1) * every}
}

// Wait takes a slot, sleeping until it comes, or fails when it would come
// after ctx's deadline, or ctx ends first.
func (b *TokenBucket) Wait(ctx context.Context) error {
	wait, err := b.reserve(ctx)
	if err != nil {
		return err
	}
	return sleep(ctx, wait)
}

// reserve takes the next slot unless it comes after ctx's deadline, and
// returns how long until it.
func (b *TokenBucket) reserve(ctx context.Context) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	next := b.next
	if next.Before(now) {
		next = now
	}
	wait := max(next.Sub(now)-b.ahead, 0)
	if deadline, ok := ctx.Deadline(); ok && wait > 0 && now.Add(wait).After(deadline) {
		return 0, fmt.Errorf("no slot before the deadline (next in %v)", wait.Round(time.Millisecond))
	}
	b.next = next.Add(b.every)
	return wait, nil
}

// full reports whether the bucket has its whole burst again.
func (b *TokenBucket) full(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.next.After(now)
}

// sleep waits d or until ctx ends. A slot given up here stays taken.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
