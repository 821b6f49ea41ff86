// Package metrics holds the function's Prometheus metrics, on a registry of
// its own (no global state), served at /metrics.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"function/store"
)

const namespace = "rollback_incident"

// Metrics are the function's metrics.
type Metrics struct {
	reg *prometheus.Registry

	events        *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	calls         *prometheus.CounterVec
	callDuration  *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	rateLimitWait *prometheus.CounterVec
	storeOps      *prometheus.CounterVec
	pending       prometheus.Gauge
	oldest        prometheus.Gauge
	abandoned     prometheus.Counter
	attempts      *prometheus.CounterVec
}

// New registers the metrics, with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_total",
			Help: "Deliveries received, by source (the recognised payload) and outcome (created, existing, accepted, ignored, rejected, failed, reconcile).",
		}, []string{"source", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Time to answer a delivery, by outcome.",
			Buckets: []float64{.001, .005, .025, .1, .25, .5, 1, 2.5, 5, 10, 25},
		}, []string{"outcome"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "atlassian_requests_total",
			Help: "Calls to Atlassian, by service, operation and HTTP status (0: no answer).",
		}, []string{"service", "operation", "status"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "atlassian_request_duration_seconds",
			Help:    "Duration of calls to Atlassian, by service and operation.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "operation"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "atlassian_retries_total",
			Help: "Calls to Atlassian repeated after a transient failure, by service and operation.",
		}, []string{"service", "operation"}),
		rateLimitWait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "atlassian_rate_limit_wait_seconds_total",
			Help: "Time spent waiting for the client-side rate limiters, by service.",
		}, []string{"service"}),
		storeOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_operations_total",
			Help: "Idempotency store operations, by operation (lock, get, put) and result (ok, hit, miss, error).",
		}, []string{"operation", "result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "pending_rollbacks",
			Help: "Rollbacks in custody whose incident is not finished, as of the last pass over the store (shared by replicas with NATS).",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "pending_oldest_age_seconds",
			Help: "Age of the oldest pending rollback, as of the last pass (0: none).",
		}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "abandoned_total",
			Help: "Rollbacks given up after PENDING_MAX_AGE; each is logged with its event.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "attempts_total",
			Help: "Attempts to finish a rollback, by outcome (done, unavailable, indexing, refused, store, busy, internal).",
		}, []string{"outcome"}),
	}
	m.reg.MustRegister(m.events, m.duration, m.calls, m.callDuration, m.retries, m.rateLimitWait, m.storeOps,
		m.pending, m.oldest, m.abandoned, m.attempts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Event records one answered delivery.
func (m *Metrics) Event(source, outcome string, d time.Duration) {
	if source == "" {
		source = "unknown"
	}
	m.events.WithLabelValues(source, outcome).Inc()
	m.duration.WithLabelValues(outcome).Observe(d.Seconds())
}

// Attempt implements opener.Observer.
func (m *Metrics) Attempt(outcome string) { m.attempts.WithLabelValues(outcome).Inc() }

// Backlog implements opener.Observer.
func (m *Metrics) Backlog(pending int, oldest time.Duration) {
	m.pending.Set(float64(pending))
	m.oldest.Set(oldest.Seconds())
}

// Abandoned implements opener.Observer.
func (m *Metrics) Abandoned() { m.abandoned.Inc() }

// Request implements atlassian.Observer.
func (m *Metrics) Request(service, op string, status int, d time.Duration) {
	m.calls.WithLabelValues(service, op, strconv.Itoa(status)).Inc()
	m.callDuration.WithLabelValues(service, op).Observe(d.Seconds())
}

// Retried implements atlassian.Observer.
func (m *Metrics) Retried(service, op string) { m.retries.WithLabelValues(service, op).Inc() }

// RateLimitWait implements atlassian.Observer.
func (m *Metrics) RateLimitWait(service string, d time.Duration) {
	m.rateLimitWait.WithLabelValues(service).Add(d.Seconds())
}

// Store wraps s so that its operations are counted.
func (m *Metrics) Store(s store.Store) store.Store { return &instrumented{s: s, ops: m.storeOps} }

type instrumented struct {
	s   store.Store
	ops *prometheus.CounterVec
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (i *instrumented) Lock(ctx context.Context, fp string, ttl time.Duration) (func(), error) {
	unlock, err := i.s.Lock(ctx, fp, ttl)
	i.ops.WithLabelValues("lock", result(err)).Inc()
	return unlock, err
}

func (i *instrumented) Get(ctx context.Context, fp string) (store.Record, bool, error) {
	r, ok, err := i.s.Get(ctx, fp)
	res := result(err)
	if err == nil {
		res = map[bool]string{true: "hit", false: "miss"}[ok]
	}
	i.ops.WithLabelValues("get", res).Inc()
	return r, ok, err
}

func (i *instrumented) Put(ctx context.Context, r store.Record) (store.Record, error) {
	saved, err := i.s.Put(ctx, r)
	res := result(err)
	if errors.Is(err, store.ErrConflict) {
		res = "conflict"
	}
	i.ops.WithLabelValues("put", res).Inc()
	return saved, err
}

func (i *instrumented) Pending(ctx context.Context) ([]string, error) {
	fps, err := i.s.Pending(ctx)
	i.ops.WithLabelValues("pending", result(err)).Inc()
	return fps, err
}
