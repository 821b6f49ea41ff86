package atlassian

import (
	"context"
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
// per second. Tokens are handed out through a channel by one goroutine, so
// waiters that give up (deadline) never return tokens and can never cause a
// burst above the limit: with many callers queued and some cancelling, a
// reservation-based limiter over-grants; this one cannot.
type TokenBucket struct {
	tokens chan struct{}
	stop   chan struct{}
	once   sync.Once
}

// NewTokenBucket starts the bucket, full. Close stops it.
func NewTokenBucket(perSecond float64, burst int) *TokenBucket {
	b := &TokenBucket{tokens: make(chan struct{}, max(burst, 1)), stop: make(chan struct{})}
	for range cap(b.tokens) {
		b.tokens <- struct{}{}
	}
	every := time.Duration(float64(time.Second) / perSecond)
	go func() {
		t := time.NewTicker(max(every, time.Microsecond))
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				select {
				case b.tokens <- struct{}{}:
				default: // full
				}
			}
		}
	}()
	return b
}

// Wait takes a token, or fails when ctx ends first.
func (b *TokenBucket) Wait(ctx context.Context) error {
	select {
	case <-b.tokens:
		return nil
	default:
	}
	select {
	case <-b.tokens:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the refill.
func (b *TokenBucket) Close() { b.once.Do(func() { close(b.stop) }) }
