package opener

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"function/store"
)

// Observer is told how the custody goes (metrics). Implementations must be
// safe for concurrent use.
type Observer interface {
	// Attempt counts a work attempt by outcome: "done" or a Failure name.
	Attempt(outcome string)
	// Backlog reports the pending records and the age of the oldest.
	Backlog(pending int, oldest time.Duration)
	// Abandoned counts a rollback given up after PENDING_MAX_AGE.
	Abandoned()
}

// DrainerOptions configure a Drainer.
type DrainerOptions struct {
	// MaxAge is PENDING_MAX_AGE: a rollback pending longer is abandoned.
	MaxAge time.Duration
	// Interval is the longest wait between two passes.
	Interval time.Duration
	// Concurrency is how many rollbacks a pass works at once.
	Concurrency int
	// Volatile says the store lives in this process only: on Close, every
	// unfinished rollback is logged with its event, since it is lost.
	Volatile bool
	Observer Observer
	Log      *slog.Logger
}

// Drainer works off pending records: each process runs one. It works a
// rollback when a request asks (Finish), at start-up, on every request
// (Wake), when the earliest retry is due, and on a reconcile request
// (Pass). One attempt per fingerprint runs at a time in a process; the
// store's lock serialises replicas.
type Drainer struct {
	o    *Opener
	opts DrainerOptions
	log  *slog.Logger

	base   context.Context // attempts run under it, not under a request
	cancel context.CancelFunc
	stop   context.Context // ends Run: Close
	halt   context.CancelFunc
	wake   chan struct{}
	wg     sync.WaitGroup // attempts in flight

	mu        sync.Mutex
	inflight  map[string]*Attempt
	closed    bool
	gate      time.Time // Atlassian is known to be unavailable until then
	gateFails int       // unavailable answers in a row
}

// Attempt is one run of the steps for a fingerprint.
type Attempt struct {
	done chan struct{}
	out  Outcome
	err  error
}

// Done is closed when the attempt has ended.
func (a *Attempt) Done() <-chan struct{} { return a.done }

// Result is the attempt's outcome and error; valid once Done is closed.
func (a *Attempt) Result() (Outcome, error) { return a.out, a.err }

// NewDrainer returns a drainer for o's store. Call Run to start its
// passes and Close to stop it.
func NewDrainer(o *Opener, opts DrainerOptions) *Drainer {
	opts.Concurrency = max(opts.Concurrency, 1)
	opts.Interval = cmp.Or(opts.Interval, time.Minute)
	base, cancel := context.WithCancel(context.Background())
	stop, halt := context.WithCancel(context.Background())
	return &Drainer{
		o: o, opts: opts, log: cmp.Or(opts.Log, slog.Default()),
		base: base, cancel: cancel, stop: stop, halt: halt,
		wake: make(chan struct{}, 1), inflight: map[string]*Attempt{},
	}
}

// Opener is the opener the drainer works with.
func (d *Drainer) Opener() *Opener { return d.o }

// Unavailable reports until when Atlassian is known to be unavailable
// (it failed twice in a row, so one blip does not count): a request need
// not wait for an attempt that cannot succeed.
func (d *Drainer) Unavailable() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gate, d.gateFails >= 2 && time.Now().Before(d.gate)
}

// held reports until when passes hold back after Atlassian answered
// unavailable.
func (d *Drainer) held() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gate, time.Now().Before(d.gate)
}

// Finish starts an attempt on fp now, or returns the one running in this
// process; started says which (only the starter may report the issue as
// created by it). ctx's values go with the attempt (the request's logger,
// which names the event and the fingerprint, and its trace context, which
// every Atlassian call carries); its cancellation does not: an attempt
// runs even if the caller goes away, since the rollback is in custody and
// cancelling a create halfway would only cost the index grace.
func (d *Drainer) Finish(ctx context.Context, fp string) (a *Attempt, started bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a := d.inflight[fp]; a != nil {
		return a, false
	}
	a = &Attempt{done: make(chan struct{})}
	if d.closed {
		a.err = errors.New("shutting down; the rollback stays pending")
		close(a.done)
		return a, false
	}
	d.inflight[fp] = a
	d.wg.Add(1)
	go d.run(ctx, fp, a)
	return a, true
}

func (d *Drainer) run(parent context.Context, fp string, a *Attempt) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.inflight, fp)
		d.mu.Unlock()
		close(a.done)
	}()
	// The caller's values, the drainer's lifetime (Close cancels it).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), d.o.cfg.RequestDeadline)
	defer cancel()
	defer context.AfterFunc(d.base, cancel)()
	log := loggerFrom(parent, d.log.With("fingerprint", fp))
	ctx = WithLogger(ctx, log)
	a.out, a.err = d.o.Work(ctx, fp)
	if a.err == nil {
		d.opts.Observer.Attempt("done")
		d.mu.Lock()
		d.gate, d.gateFails = time.Time{}, 0
		d.mu.Unlock()
		return
	}
	kind := Classify(a.err)
	d.opts.Observer.Attempt(kind.String())
	now := time.Now()
	if kind == FailUnavailable {
		d.closeGate(now, RetryAfter(a.err))
	}
	if kind == FailBusy || kind == FailStore {
		return // nothing to record: someone else works it, or the store is down
	}
	// The attempt count and an interrupted create's start come from the
	// record the failure is written to, in the same compare-and-swap.
	rec, err := d.o.Failed(context.WithoutCancel(ctx), fp, a.err, func(r store.Record) time.Time {
		return NextAttempt(kind, r.Pending.Attempts+1, now, RetryAfter(a.err), r.CreatingSince, d.o.cfg.JiraIndexGrace)
	})
	if err != nil {
		log.Warn("failed attempt not recorded", "error", err.Error())
		return
	}
	if rec.Pending != nil {
		a.out.Pending = rec.Pending
	}
	if rec.Pending == nil {
		return // finished or abandoned meanwhile
	}
	log = loggerFrom(d.o.withTrace(ctx, rec.Pending.Traceparent), log)
	log.Warn("rollback not finished yet; kept for a later attempt", "jira_key", rec.JiraKey,
		"failure", kind.String(), "attempts", rec.Pending.Attempts, "next_attempt", rec.Pending.NextAt, "reason", Reason(d.o.cfg, a.err), "error", a.err.Error())
}

// withFingerprint gives a pass's attempt on fp the pass's logger (a
// reconcile request's, or the drainer's) naming fp.
func (d *Drainer) withFingerprint(ctx context.Context, fp string) context.Context {
	return WithLogger(ctx, loggerFrom(ctx, d.log).With("fingerprint", fp))
}

// closeGate holds attempts back after Atlassian answered unavailable:
// exponentially longer while it stays so, never shorter than it asked.
func (d *Drainer) closeGate(now time.Time, retryAfter time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gateFails++
	wait := min(time.Second<<min(d.gateFails-1, 5), 30*time.Second)
	if until := now.Add(max(wait, retryAfter)); until.After(d.gate) {
		d.gate = until
	}
}

// Wake asks for a pass soon. Cheap; call it on every request.
func (d *Drainer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// minGap keeps passes apart however often requests wake the drainer.
const minGap = time.Second

// Run makes passes until ctx ends or Close: the first at once, treating
// every pending rollback as due (a new process may have new credentials or
// configuration), then whenever the earliest retry is due, at the latest
// after Interval, and soon after Wake.
func (d *Drainer) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.stop.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	all := true
	for {
		c, _ := d.Pass(ctx, all)
		all = false
		wait := d.opts.Interval
		if !c.NextDue.IsZero() {
			wait = min(wait, time.Until(c.NextDue))
		}
		wait = max(wait, minGap)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-d.wake:
			t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-time.After(minGap):
			}
		}
	}
}

// Counts are what a pass did.
type Counts struct {
	Finished  int `json:"finished"`
	Failed    int `json:"failed"`
	Abandoned int `json:"abandoned"`
	Pending   int `json:"pending"` // left pending after the pass
	// NextDue is the earliest retry left (zero: none).
	NextDue time.Time `json:"-"`
}

// Pass works every pending rollback that is due (all: every one) once,
// within ctx, at most Concurrency at a time, and abandons those pending
// longer than MaxAge. It holds back while Atlassian is known to be
// unavailable, probing with one attempt when the wait is over.
func (d *Drainer) Pass(ctx context.Context, all bool) (Counts, error) {
	var c Counts
	fps, err := d.o.store.Pending(ctx)
	if err != nil {
		return c, err
	}
	now := time.Now()
	type due struct {
		fp string
		at time.Time
	}
	var work []due
	pending, oldest := 0, time.Duration(0)
	for _, fp := range fps {
		rec, ok, err := d.o.store.Get(ctx, fp)
		if err != nil {
			return c, err
		}
		if !ok || rec.Pending == nil {
			continue // finished meanwhile; the index lags a moment
		}
		age := now.Sub(rec.Pending.Since)
		if d.opts.MaxAge > 0 && age > d.opts.MaxAge {
			if d.abandon(ctx, rec) {
				c.Abandoned++
			}
			continue
		}
		pending++
		oldest = max(oldest, age)
		if all || !rec.Pending.NextAt.After(now) {
			work = append(work, due{fp, rec.Pending.NextAt})
		} else if c.NextDue.IsZero() || rec.Pending.NextAt.Before(c.NextDue) {
			c.NextDue = rec.Pending.NextAt
		}
	}
	d.opts.Observer.Backlog(pending, oldest)
	slices.SortFunc(work, func(a, b due) int { return a.at.Compare(b.at) })

	var mu sync.Mutex
	tally := func(a *Attempt) {
		out, err := a.Result()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && out.Done:
			c.Finished++
		case err != nil && Classify(err) != FailBusy:
			c.Failed++
			if p := out.Pending; p != nil && (c.NextDue.IsZero() || p.NextAt.Before(c.NextDue)) {
				c.NextDue = p.NextAt
			}
		}
	}
	next := make(chan string)
	var wg sync.WaitGroup
	for range min(d.opts.Concurrency, len(work)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fp := range next {
				a, _ := d.Finish(d.withFingerprint(ctx, fp), fp)
				select {
				case <-a.Done():
					tally(a)
				case <-ctx.Done():
					// It goes on; the pass reports what ended in time.
				}
			}
		}()
	}
feed:
	for _, w := range work {
		// While Atlassian is known to be down, hold back; when the wait
		// is over, one attempt probes it before the others follow.
		if until, down := d.held(); down {
			t := time.NewTimer(time.Until(until))
			select {
			case <-ctx.Done():
				t.Stop()
				c.NextDue = until
				break feed
			case <-t.C:
			}
			a, _ := d.Finish(d.withFingerprint(ctx, w.fp), w.fp)
			select {
			case <-a.Done():
				tally(a)
				continue
			case <-ctx.Done():
				break feed
			}
		}
		select {
		case next <- w.fp:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	c.Pending = pending - c.Finished
	d.opts.Observer.Backlog(c.Pending, oldest)
	return c, nil
}

// abandon gives up on a rollback pending longer than MaxAge: an error log
// line with everything needed to replay it, and the abandoned counter. It
// reports whether it gave up on it (not finished meanwhile).
func (d *Drainer) abandon(ctx context.Context, rec store.Record) bool {
	abandoned, ok, err := d.o.Abandon(ctx, rec.Fingerprint)
	if err != nil {
		d.log.Warn("abandoning a rollback failed; trying again on the next pass", "fingerprint", rec.Fingerprint, "error", err.Error())
		return false
	}
	if !ok {
		return false // finished meanwhile
	}
	d.opts.Observer.Abandoned()
	d.log.Error("rollback abandoned: pending longer than PENDING_MAX_AGE; replay it with POST /reconcile {\"replay\":[\"<fingerprint>\"]} while its record lives, or open the incident by hand",
		unfinished(abandoned)...)
	return true
}

// unfinished describes a rollback that is not finished, for a log line an
// operator can act on: its event and what is missing.
func unfinished(rec store.Record) []any {
	var news []string
	for _, e := range rec.Timeline {
		if !e.Posted() {
			news = append(news, e.Text)
		}
	}
	args := []any{"fingerprint", rec.Fingerprint, "jira_key", rec.JiraKey, "page_id", rec.PageID,
		"event", json.RawMessage(rec.Incident), "unposted_news", news}
	if rec.Pending != nil {
		args = append(args, "pending_since", rec.Pending.Since, "attempts", rec.Pending.Attempts, "last_error", rec.Pending.LastError)
	}
	return args
}

// Close stops new attempts and waits for those in flight until ctx ends.
// With a volatile store, every rollback still pending is then logged with
// its event: it dies with the process.
func (d *Drainer) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.halt() // no more passes; attempts in flight go on until ctx ends
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		d.log.Warn("stopping with attempts still in flight; their rollbacks stay pending")
		d.cancel()
		<-done
	}
	d.cancel()
	if !d.opts.Volatile {
		return nil
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	fps, err := d.o.store.Pending(lctx)
	if err != nil {
		return err
	}
	for _, fp := range fps {
		if rec, ok, err := d.o.store.Get(lctx, fp); err == nil && ok && rec.Pending != nil {
			d.log.Error("unfinished rollback lost with this process (in-process store): replay its event", unfinished(rec)...)
		}
	}
	return nil
}
