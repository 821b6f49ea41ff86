package bench

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"function/bench/harness"
)

// The per-event figures of docs/benchmarks.md ("Overhead per event"):
//
//	go test -run '^$' -bench 'Duplicate|NewIncident' -benchmem ./bench/
//
// (-bench . would also run the drain and memory benchmarks, minutes of
// work each, whose figures are sections of their own.)
//
// Besides ns/op, B/op and allocs/op, each benchmark reports cpu-ns/op (user
// + system CPU time of the benchmark process per event, from getrusage) and
// the p50/p99/max latency of single events.

// reusable is a request and response writer reused across iterations, so
// that a benchmark measures Handler.ServeHTTP and not the test's own
// request construction.
type reusable struct {
	req  *http.Request
	body *bytes.Reader
	w    discardWriter
	raw  []byte
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func newReusable(d harness.Delivery) *reusable {
	r := &reusable{raw: d.Body, body: bytes.NewReader(d.Body), w: discardWriter{h: http.Header{}}}
	r.req = httptest.NewRequest(http.MethodPost, "/", nil)
	r.req.Header.Set("Authorization", "Bearer "+harness.AuthToken)
	for k, v := range d.Headers {
		r.req.Header.Set(k, v)
	}
	return r
}

func (r *reusable) serve(h http.Handler) int {
	r.body.Reset(r.raw)
	r.req.Body = readCloser{r.body}
	clear(r.w.h)
	r.w.code = 0
	h.ServeHTTP(&r.w, r.req)
	return r.w.code
}

type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.code = code }

// latencies reports the distribution of per-event durations.
func latencies(b *testing.B, ds []time.Duration, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	if len(ds) == 0 {
		return
	}
	b.ReportMetric(float64(harness.Percentile(ds, 50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(harness.Percentile(ds, 99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(slices.Max(ds).Nanoseconds()), "max-ns")
}

// BenchmarkDuplicate: an identical repeat of a finished incident inside the
// dedup window, on the replica that opened it — the fast path every
// delivery of a storm but the first takes. No Atlassian call is made
// (TestCallsPerIncident checks it), so the in-process emulator costs
// nothing here.
func BenchmarkDuplicate(b *testing.B) {
	notification, err := harness.Notification()
	if err != nil {
		b.Fatal(err)
	}
	resource, err := harness.ResourceUpdate()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		d    harness.Delivery
	}{
		{"notification-plain-json", notification},       // 0.4 KB Rollouts webhook body
		{"resource-update-binary-cloudevent", resource}, // 10 KB Rollout object from the resource EventSource
	} {
		b.Run(c.name, func(b *testing.B) {
			emu := harness.NewEmulator()
			defer emu.Close()
			h := newHandler(b, emu.URL, nil)
			if r := harness.Serve(h, c.d); r.Status != http.StatusOK || r.Reply.JiraKey == "" {
				b.Fatalf("first delivery: %d %s", r.Status, r.Body)
			}
			calls := emu.Total()
			rq := newReusable(c.d)
			ds := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			cpu0 := harness.SelfCPU()
			b.ResetTimer()
			for range b.N {
				t := time.Now()
				if code := rq.serve(h); code != http.StatusOK {
					b.Fatalf("duplicate: %d", code)
				}
				ds = append(ds, time.Since(t))
			}
			b.StopTimer()
			latencies(b, ds, harness.SelfCPU()-cpu0)
			if n := emu.Total() - calls; n != 0 {
				b.Fatalf("duplicates made %d Atlassian calls", n)
			}
		})
	}
}

// BenchmarkDuplicateParallel: the same fast path under contention, one
// goroutine per GOMAXPROCS (go test -cpu 1,2,8 to vary it).
func BenchmarkDuplicateParallel(b *testing.B) {
	d, err := harness.Notification()
	if err != nil {
		b.Fatal(err)
	}
	emu := harness.NewEmulator()
	defer emu.Close()
	h := newHandler(b, emu.URL, nil)
	if r := harness.Serve(h, d); r.Status != http.StatusOK {
		b.Fatalf("first delivery: %d %s", r.Status, r.Body)
	}
	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	cpu0 := harness.SelfCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rq := newReusable(d)
		var ds []time.Duration
		for pb.Next() {
			t := time.Now()
			if code := rq.serve(h); code != http.StatusOK {
				b.Errorf("duplicate: %d", code)
				return
			}
			ds = append(ds, time.Since(t))
		}
		mu.Lock()
		all = append(all, ds...)
		mu.Unlock()
	})
	b.StopTimer()
	latencies(b, all, harness.SelfCPU()-cpu0)
}

// BenchmarkNewIncident: a new rollback each iteration, opened in full
// (search, issue, space id once, page, remote link) against the emulator
// running in a child process with no added latency, so that cpu-ns/op,
// B/op and allocs/op are the function's own work (decode, render, JSON,
// HTTP client) and ns/op is that plus loopback round trips. The
// client-side token bucket keeps its production refill rate (50/s) but
// gets a burst of 100,000 (ATLASSIAN_RATE_BURST), so that a loop of new
// incidents measures the function rather than the limiter.
func BenchmarkNewIncident(b *testing.B) {
	url := emulatorProcess(b)
	resetEmulatorProcess(b, url)
	h := newHandler(b, url, map[string]string{"ATLASSIAN_RATE_BURST": "100000"})
	// Warm up: the first incident also resolves the space id and opens
	// the keep-alive connections.
	if r := harness.Serve(h, harness.DistinctRollback("warm", 0)); r.Status != http.StatusOK || r.Reply.Status != "created" {
		b.Fatalf("warm-up: %d %s", r.Status, r.Body)
	}
	rqs := make([]*reusable, b.N)
	for i := range rqs {
		rqs[i] = newReusable(harness.DistinctRollback(fmt.Sprintf("new-%d", b.N), i))
	}
	ds := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	cpu0 := harness.SelfCPU()
	b.ResetTimer()
	for i := range b.N {
		t := time.Now()
		if code := rqs[i].serve(h); code != http.StatusOK {
			b.Fatalf("new incident %d: %d", i, code)
		}
		ds = append(ds, time.Since(t))
	}
	b.StopTimer()
	latencies(b, ds, harness.SelfCPU()-cpu0)
}
