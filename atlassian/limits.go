package atlassian

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// IssueLimiter spaces writes to each issue. Jira Cloud allows 20 writes per
// 2 s and 100 per 30 s on one issue; a storm of news about one rollback
// must not trip it.
type IssueLimiter struct {
	every time.Duration
	burst int

	mu    sync.Mutex
	byKey map[string]*issueBucket
}

type issueBucket struct {
	l    *rate.Limiter
	used time.Time
}

// NewIssueLimiter allows burst writes at once and then one per every.
func NewIssueLimiter(every time.Duration, burst int) *IssueLimiter {
	return &IssueLimiter{every: every, burst: burst, byKey: map[string]*issueBucket{}}
}

// DefaultIssueLimiter stays under both of Jira's per-issue windows: 10 at
// once, then one per 350 ms (≈86 per 30 s).
func DefaultIssueLimiter() *IssueLimiter { return NewIssueLimiter(350*time.Millisecond, 10) }

// Wait blocks until a write to key may go.
func (l *IssueLimiter) Wait(ctx context.Context, key string) error {
	l.mu.Lock()
	now := time.Now()
	b := l.byKey[key]
	if b == nil {
		// Forget idle issues so memory stays bounded by the active ones.
		if len(l.byKey) >= 1024 {
			for k, v := range l.byKey {
				if now.Sub(v.used) > time.Minute {
					delete(l.byKey, k)
				}
			}
		}
		b = &issueBucket{l: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.byKey[key] = b
	}
	b.used = now
	l.mu.Unlock()
	return b.l.Wait(ctx)
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

func newSpanID() string {
	const hexdigits = "0123456789abcdef"
	var b [16]byte
	for {
		n := rand.Uint64()
		if n == 0 {
			continue
		}
		for i := range b {
			b[i] = hexdigits[n>>(60-4*i)&0xf]
		}
		return string(b[:])
	}
}

// TokenBucket spaces calls to one host: at most burst at once, then rate
// per second. A caller reserves the next free slot and sleeps until it; a
// caller whose slot would come after its deadline takes none and fails at
// once. Slots are never handed back: when many queued callers give up
// (deadlines), a limiter that returns their tokens lets later calls burst
// above the limit (x/time/rate did, and Jira answered 429); this one may
// waste a slot instead, which errs on the safe side. No goroutine: an idle,
// scaled-to-zero function pays nothing.
type TokenBucket struct {
	rate  float64 // tokens per second
	burst float64

	mu     sync.Mutex
	tokens float64 // may go negative: slots reserved ahead
	last   time.Time
}

// NewTokenBucket returns a full bucket.
func NewTokenBucket(perSecond float64, burst int) *TokenBucket {
	return &TokenBucket{rate: perSecond, burst: float64(max(burst, 1)), tokens: float64(max(burst, 1)), last: time.Now()}
}

// Wait takes a slot, sleeping until it comes, or fails when it would come
// after ctx's deadline, or ctx ends first.
func (b *TokenBucket) Wait(ctx context.Context) error {
	b.mu.Lock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	var wait time.Duration
	if b.tokens < 1 {
		wait = time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	}
	if deadline, ok := ctx.Deadline(); ok && wait > 0 && now.Add(wait).After(deadline) {
		b.mu.Unlock()
		return fmt.Errorf("no slot before the deadline (next in %v)", wait.Round(time.Millisecond))
	}
	b.tokens--
	b.mu.Unlock()
	if wait == 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
