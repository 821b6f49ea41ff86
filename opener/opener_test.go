package opener

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"function/atlassian"
	"function/config"
	"function/incident"
	"function/jira"
	"function/opener/openertest"
	"function/render"
	"function/render/adf"
	"function/store"
	"function/store/memory"
	"function/templates"
)

func testConfig() config.Config {
	return config.Config{
		JiraProject: "OPS", JiraIssueType: "Incident", JiraAllowedProjects: []string{"OPS"}, JiraAllowedTypes: []string{"Incident"},
		ConfluenceSpace: "INCIDENTS", ClusterName: "prod",
		RequestDeadline: 25 * time.Second, FinishBudget: 10 * time.Second,
		DedupWindow: 24 * time.Hour, ReopenWindow: 24 * time.Hour, JiraIndexGrace: 2 * time.Minute, NATSTTL: 168 * time.Hour,
		PendingMaxAge: 72 * time.Hour, DrainInterval: time.Minute, DrainConcurrency: 4,
		AtlassianEmail: "bot@example.com", AtlassianAPIToken: "token", BackstageBroadcast: true,
	}
}

// rig is an opener over fakes and the in-process store, with a drainer.
type rig struct {
	t     *testing.T
	jira  *openertest.Jira
	conf  *openertest.Confluence
	note  *openertest.Notifier
	store *memory.Store
	obs   *openertest.Observer
	o     *Opener
	d     *Drainer
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newRig(t *testing.T, change ...func(*config.Config)) *rig {
	t.Helper()
	cfg := testConfig()
	for _, c := range change {
		c(&cfg)
	}
	r, err := render.New(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, jira: openertest.NewJira(), conf: &openertest.Confluence{}, note: &openertest.Notifier{}, store: memory.New(cfg.NATSTTL), obs: &openertest.Observer{}, logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(g.logs, nil))
	g.o = New(cfg, g.jira, g.conf, g.store, r, Extras{Notifier: g.note}, log)
	g.d = NewDrainer(g.o, DrainerOptions{MaxAge: cfg.PendingMaxAge, Interval: cfg.DrainInterval, Concurrency: cfg.DrainConcurrency, Observer: g.obs, Log: log})
	return g
}

// run starts the drainer's passes; the returned func stops them.
func (g *rig) run() context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	go g.d.Run(ctx)
	return cancel
}

func rollback(name, revision string) *incident.Incident {
	return &incident.Incident{
		Source: "test", Cluster: "prod", Kind: incident.KindRollout, Namespace: "payments", Name: name, Revision: revision,
		Phase: "Degraded", Reason: "RolloutAborted", Message: "Rollout aborted update to revision " + revision,
		Time: time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC),
	}
}

func news(in *incident.Incident, reason, message string) *incident.Incident {
	c := *in
	c.Reason, c.Message = reason, message
	return &c
}

func (g *rig) accept(in *incident.Incident) Outcome {
	g.t.Helper()
	out, err := g.o.Accept(context.Background(), in)
	if err != nil {
		g.t.Fatalf("Accept: %v", err)
	}
	return out
}

func (g *rig) record(fp string) store.Record {
	g.t.Helper()
	rec, ok, err := g.store.Get(context.Background(), fp)
	if err != nil || !ok {
		g.t.Fatalf("record %s: ok=%v err=%v", fp, ok, err)
	}
	return rec
}

// work runs Work on fp and fails the test on an error.
func (g *rig) work(fp string) Outcome {
	g.t.Helper()
	out, err := g.o.Work(context.Background(), fp)
	if err != nil {
		g.t.Fatalf("Work: %v", err)
	}
	return out
}

// exactlyOnce checks one issue, one page, one link per rollback and the
// comments expected (news after the first event).
func (g *rig) exactlyOnce(rollbacks, comments int) {
	g.t.Helper()
	issues, gotComments, links := g.jira.Count()
	if issues != rollbacks || g.conf.Pages() != rollbacks || links != rollbacks || gotComments != comments {
		g.t.Errorf("issues %d, pages %d, links %d, comments %d; want %d, %d, %d, %d",
			issues, g.conf.Pages(), links, gotComments, rollbacks, rollbacks, rollbacks, comments)
	}
}

func TestAcceptThenWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		in := rollback("checkout", "7")
		acc := g.accept(in)
		if acc.Done || acc.Fingerprint != in.Fingerprint() {
			t.Fatalf("accepted %+v, want pending under %s", acc, in.Fingerprint())
		}
		if rec := g.record(acc.Fingerprint); rec.Pending == nil || rec.Incident == nil || len(rec.Timeline) != 1 {
			t.Fatalf("record after Accept: %+v, want pending with the incident and one entry", rec)
		}
		if g.jira.Calls("search")+g.jira.Calls("create") != 0 {
			t.Fatal("Accept called Jira")
		}
		out, err := g.o.Work(context.Background(), acc.Fingerprint)
		if err != nil || !out.Done || !out.Created || out.JiraKey != "OPS-1" || out.PageID == "" {
			t.Fatalf("Work: %+v, %v", out, err)
		}
		if rec := g.record(acc.Fingerprint); rec.Pending != nil || !rec.Done() {
			t.Fatalf("record after Work: %+v, want done and not pending", rec)
		}
		// The same event again: answered from the record, nothing written.
		before := g.record(acc.Fingerprint).Revision
		again := g.accept(rollback("checkout", "7"))
		if !again.Done || again.JiraKey != "OPS-1" || g.record(acc.Fingerprint).Revision != before {
			t.Errorf("repeat: %+v, revision %d → %d; want done, no write", again, before, g.record(acc.Fingerprint).Revision)
		}
		g.exactlyOnce(1, 0)
		if g.note.Sent("rollback:"+acc.Fingerprint) != 1 {
			t.Errorf("%d notifications, want one for the rollback", g.note.Sent("rollback:"+acc.Fingerprint))
		}
	})
}

// Several events of one pending rollback merge: each piece of news once.
func TestAcceptMergesNews(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		first := rollback("checkout", "7")
		analysis := news(first, "AnalysisRunFailed", "metric error-rate failed")
		for _, in := range []*incident.Incident{first, analysis, first, analysis, analysis} {
			g.accept(in)
		}
		fp := first.Fingerprint()
		if rec := g.record(fp); len(rec.Timeline) != 2 || rec.Pending == nil {
			t.Fatalf("timeline %d entries, pending %v; want 2, pending", len(rec.Timeline), rec.Pending)
		}
		g.work(fp)
		g.exactlyOnce(1, 1)
		if n := g.conf.TimelineRows("metric error-rate failed"); n != 1 {
			t.Errorf("the news is on the page %d times, want 1", n)
		}
	})
}

// News accepted while the lock holder works is worked in the same call.
func TestNewsDuringWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		first := rollback("checkout", "7")
		fp := g.accept(first).Fingerprint
		late := news(first, "AnalysisRunFailed", "arrived while the page was created")
		once := sync.Once{}
		g.conf.Fail = func(op string) (error, bool) {
			if op == "create" {
				once.Do(func() { g.accept(late) })
			}
			return nil, false
		}
		out, err := g.o.Work(context.Background(), fp)
		if err != nil || !out.Done {
			t.Fatalf("Work: %+v %v", out, err)
		}
		g.exactlyOnce(1, 1)
	})
}

func TestJoinsExistingIncident(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		abort := rollback("checkout", "7")
		fp := g.accept(abort).Fingerprint
		g.work(fp)
		undo := rollback("checkout", "8")
		undo.Reason, undo.Message, undo.Joins = incident.ReasonManualRollback, "reverted by hand", fp
		if acc := g.accept(undo); acc.Fingerprint != fp {
			t.Fatalf("joined %s, want %s", acc.Fingerprint, fp)
		}
		g.work(fp)
		g.exactlyOnce(1, 1)

		// Nothing to join: its own incident.
		alone := rollback("cart", "3")
		alone.Joins = rollback("cart", "2").Fingerprint()
		if acc := g.accept(alone); acc.Fingerprint != alone.Fingerprint() {
			t.Errorf("filed under %s, want its own %s", acc.Fingerprint, alone.Fingerprint())
		}
	})
}

// Jira answers 503 to everything for ten minutes: every rollback stays in
// custody, Atlassian is probed, not stormed, and once it is back every
// rollback opens exactly once, news included.
func TestOutageDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		start := time.Now()
		outage := 10 * time.Minute
		g.jira.Fail = func(op string) (error, bool) {
			if time.Since(start) < outage {
				return openertest.Unavailable(op), false
			}
			return nil, false
		}
		defer g.run()()
		for i := range 20 {
			in := rollback(fmt.Sprintf("svc-%d", i), "7")
			for range 3 {
				g.accept(in)
				g.d.Wake()
			}
			g.accept(news(in, "AnalysisRunFailed", "analysis failed"))
		}
		time.Sleep(outage - time.Second)
		synctest.Wait()
		duringOutage := g.obs.Count("unavailable")
		// One probe per closed gate (≤ 30 s) after the first pass's few
		// concurrent failures, not 20 rollbacks' worth of retries.
		if duringOutage == 0 || duringOutage > 4+int(outage/(30*time.Second))+8 {
			t.Errorf("%d attempts during the outage, want a probe per gate", duringOutage)
		}
		if issues, _, _ := g.jira.Count(); issues != 0 {
			t.Fatalf("%d issues during the outage", issues)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		g.exactlyOnce(20, 20)
		if pending, _ := g.obs.LastBacklog(); pending != 0 {
			t.Errorf("pending gauge %d after the drain, want 0", pending)
		}
		fps, _ := g.store.Pending(context.Background())
		if len(fps) != 0 {
			t.Errorf("still pending: %v", fps)
		}
	})
}

// The create's answer is lost after it took effect and Jira's search hides
// new issues for 30 s: no second issue is created, the first is found.
func TestLostCreateWaitsForIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		g.jira.SearchLag = 30 * time.Second
		lostOnce := true
		g.jira.Fail = func(op string) (error, bool) {
			if op == "create" && lostOnce {
				lostOnce = false
				return openertest.Lost(op), true
			}
			return nil, false
		}
		defer g.run()()
		fp := g.accept(rollback("checkout", "7")).Fingerprint
		a, _ := g.d.Finish(context.Background(), fp)
		<-a.Done()
		if _, err := a.Result(); err == nil {
			t.Fatal("the first attempt succeeded, want the lost answer")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		g.exactlyOnce(1, 0)
		if rec := g.record(fp); rec.Pending != nil {
			t.Errorf("still pending: %+v", rec.Pending)
		}
		if g.jira.Calls("create") != 1 {
			t.Errorf("%d creates, want 1", g.jira.Calls("create"))
		}
	})
}

// A wrong token: Jira answers 401 until it is fixed; the rollback is kept
// and retried slowly, then opens once; the reason names the variables.
func TestRefusedThenFixed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		var fixed atomic.Bool
		g.jira.Fail = func(op string) (error, bool) {
			if !fixed.Load() {
				return &atlassian.Error{Service: "jira", Op: op, Status: http.StatusUnauthorized}, false
			}
			return nil, false
		}
		defer g.run()()
		fp := g.accept(rollback("checkout", "7")).Fingerprint
		a, _ := g.d.Finish(context.Background(), fp)
		<-a.Done()
		_, err := a.Result()
		if reason := Reason(testConfig(), err); !strings.Contains(reason, "ATLASSIAN_EMAIL and ATLASSIAN_API_TOKEN") || strings.Contains(reason, "token\"") {
			t.Errorf("reason %q does not name the variables", reason)
		}
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		refused := g.obs.Count("refused")
		if refused < 2 || refused > 6 {
			t.Errorf("%d refused attempts in 30 minutes, want a slow retry", refused)
		}
		fixed.Store(true)
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		g.exactlyOnce(1, 0)
	})
}

// A rollback refused for longer than PENDING_MAX_AGE is abandoned with an
// error log that carries its event.
func TestAbandonAfterMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, func(c *config.Config) { c.PendingMaxAge = 2 * time.Hour })
		g.d.opts.MaxAge = 2 * time.Hour
		g.jira.Fail = func(op string) (error, bool) {
			return &atlassian.Error{Service: "jira", Op: op, Status: http.StatusForbidden}, false
		}
		defer g.run()()
		fp := g.accept(rollback("checkout", "7")).Fingerprint
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if n := g.obs.Count("abandoned"); n != 1 {
			t.Fatalf("abandoned %d, want 1", n)
		}
		if rec := g.record(fp); rec.Pending != nil {
			t.Errorf("abandoned record still pending")
		}
		if logs := g.logs.String(); !strings.Contains(logs, "rollback abandoned") || !strings.Contains(logs, `"Name":"checkout"`) {
			t.Errorf("no abandon log with the event:\n%s", logs)
		}
		// Replay takes it back into custody.
		if ok, err := g.o.Revive(context.Background(), fp); err != nil || !ok {
			t.Errorf("Revive: %v %v", ok, err)
		}
	})
}

// The abandon log names what was abandoned, news accepted after the pass
// read the record included, and a rollback no longer pending is not
// abandoned (or counted) again.
func TestAbandonLogsWhatItAbandons(t *testing.T) {
	g := newRig(t)
	in := rollback("checkout", "7")
	fp := g.accept(in).Fingerprint
	read := g.record(fp) // as the pass read it
	g.accept(news(in, "AnalysisRunFailed", "late news about error-rate"))
	if !g.d.abandon(context.Background(), read) {
		t.Fatal("not abandoned")
	}
	if logs := g.logs.String(); !strings.Contains(logs, "late news about error-rate") {
		t.Errorf("the abandon log lacks the news accepted meanwhile:\n%s", logs)
	}
	if g.d.abandon(context.Background(), read) {
		t.Error("abandoned twice")
	}
	if n := g.obs.Count("abandoned"); n != 1 {
		t.Errorf("abandoned counted %d times, want 1", n)
	}
}

// A duplicate of a done rollback and an attempt that finds it done touch
// nothing; Work on a fingerprint held elsewhere reports ErrBusy.
func TestWorkBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		fp := g.accept(rollback("checkout", "7")).Fingerprint
		unlock, err := g.store.Lock(context.Background(), fp, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		_, err = g.o.Work(context.Background(), fp)
		if !errors.Is(err, ErrBusy) || Classify(err) != FailBusy {
			t.Errorf("Work on a held lock: %v, want ErrBusy", err)
		}
		unlock()
	})
}

func TestNextAttempt(t *testing.T) {
	now := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		f          Failure
		attempts   int
		retryAfter time.Duration
		creating   time.Time
		want       time.Duration
	}{
		{"unavailable first", FailUnavailable, 1, 0, time.Time{}, 2 * time.Second},
		{"unavailable third", FailUnavailable, 3, 0, time.Time{}, 8 * time.Second},
		{"unavailable capped", FailUnavailable, 20, 0, time.Time{}, time.Minute},
		{"Retry-After wins", FailUnavailable, 1, 90 * time.Second, time.Time{}, 90 * time.Second},
		{"refused slow", FailRefused, 1, 0, time.Time{}, time.Minute},
		{"refused capped", FailRefused, 10, 0, time.Time{}, 15 * time.Minute},
		{"internal like refused", FailInternal, 2, 0, time.Time{}, 2 * time.Minute},
		{"indexing searches again soon", FailIndexing, 1, 0, now.Add(-10 * time.Second), 5 * time.Second},
		{"indexing keeps searching", FailIndexing, 9, 0, now.Add(-60 * time.Second), 5 * time.Second},
		{"indexing not past the grace end", FailIndexing, 7, 0, now.Add(-117 * time.Second), 3 * time.Second},
		{"busy now", FailBusy, 3, 0, time.Time{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NextAttempt(tc.f, tc.attempts, now, tc.retryAfter, tc.creating, 2*time.Minute).Sub(now)
			if got != tc.want {
				t.Errorf("next attempt in %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Failure
	}{
		{openertest.Unavailable("create"), FailUnavailable},
		{&atlassian.Error{Status: http.StatusTooManyRequests, Temporary: true}, FailUnavailable},
		{openertest.Lost("create"), FailUnavailable},
		{context.DeadlineExceeded, FailUnavailable},
		{fmt.Errorf("x: %w", errIndexing), FailIndexing},
		{&atlassian.Error{Status: http.StatusUnauthorized}, FailRefused},
		{&atlassian.Error{Status: http.StatusBadRequest}, FailRefused},
		{fmt.Errorf("get: %w", store.ErrUnavailable), FailStore},
		{fmt.Errorf("lock: %w", ErrBusy), FailBusy},
		{errors.New("boom"), FailInternal},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// The reopen rule (Alertmanager's reopen_duration) and the dedup window for
// events without a revision, as a table over the issue Jira shows.
func TestDecide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		now := time.Now()
		found := func(created, resolved time.Time) jira.Found {
			f := jira.Found{Created: created, Resolved: resolved, StatusCategory: "new"}
			if !resolved.IsZero() {
				f.StatusCategory = "done"
			}
			return f
		}
		for _, tc := range []struct {
			name          string
			revision      string
			f             jira.Found
			reuse, reopen bool
		}{
			{"open issue", "7", found(now.Add(-48*time.Hour), time.Time{}), true, false},
			{"resolved an hour ago", "7", found(now.Add(-3*time.Hour), now.Add(-time.Hour)), false, true},
			{"resolved two days ago", "7", found(now.Add(-72*time.Hour), now.Add(-48*time.Hour)), false, false},
			{"no revision, opened within the window", "", found(now.Add(-time.Hour), time.Time{}), true, false},
			{"no revision, opened before the window", "", found(now.Add(-25*time.Hour), time.Time{}), false, false},
		} {
			in := rollback("checkout", tc.revision)
			if reuse, reopen := g.o.decide(in, tc.f); reuse != tc.reuse || reopen != tc.reopen {
				t.Errorf("%s: reuse %v reopen %v, want %v %v", tc.name, reuse, reopen, tc.reuse, tc.reopen)
			}
		}
	})
}

// After DEDUP_WINDOW the record is not trusted: the same rollback asks Jira
// again, reuses the open issue, and reopens one resolved within
// REOPEN_WINDOW, with no second issue either way.
func TestWindowsAskJiraAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, func(c *config.Config) { c.ReopenWindow = 48 * time.Hour })
		in := rollback("checkout", "7")
		fp := g.accept(in).Fingerprint
		g.work(fp)
		time.Sleep(25 * time.Hour)
		if acc := g.accept(in); acc.Done {
			t.Fatal("a record older than DEDUP_WINDOW was trusted")
		}
		if out, err := g.o.Work(context.Background(), fp); err != nil || out.JiraKey != "OPS-1" {
			t.Fatalf("after the window: %+v %v", out, err)
		}
		// Resolved, then failing again within REOPEN_WINDOW: reopened.
		_ = g.jira.DoTransition(context.Background(), "OPS-1", "2")
		time.Sleep(25 * time.Hour)
		g.accept(in)
		g.work(fp)
		if is, _ := g.jira.Issue("OPS-1"); is.Done() {
			t.Error("the issue resolved 25 h ago, within REOPEN_WINDOW, was not reopened")
		}
		g.exactlyOnce(1, 1) // the reopen comment
	})
}

// Resolved longer ago than REOPEN_WINDOW, the same rollback failing again
// is a new incident that names the resolved one, which stays resolved.
func TestResolvedBeforeReopenWindowOpensNew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, func(c *config.Config) { c.ReopenWindow = time.Hour })
		ctx := context.Background()
		in := rollback("checkout", "7")
		fp := g.accept(in).Fingerprint
		g.work(fp)
		_ = g.jira.DoTransition(ctx, "OPS-1", "2")
		time.Sleep(25 * time.Hour) // past DEDUP_WINDOW and REOPEN_WINDOW
		g.accept(in)
		out, err := g.o.Work(ctx, fp)
		if err != nil || out.JiraKey != "OPS-2" {
			t.Fatalf("after REOPEN_WINDOW: %+v %v, want a new issue OPS-2", out, err)
		}
		if is, _ := g.jira.Issue("OPS-1"); !is.Done() {
			t.Error("OPS-1, resolved before REOPEN_WINDOW, was reopened")
		}
		if desc, _, _ := g.jira.Description(ctx, "OPS-2"); !strings.Contains(string(desc), "OPS-1") {
			t.Errorf("OPS-2 does not name the previous incident OPS-1: %s", desc)
		}
	})
}

// Every write step whose answer is lost after it took effect: the
// rollback still ends with one issue, one page, one link, and its news
// commented and on the page once.
func TestLostAnswers(t *testing.T) {
	for _, tc := range []struct{ service, op string }{
		{"jira", "create"}, {"jira", "link"}, {"jira", "comment"},
		{"confluence", "create"}, {"confluence", "update"},
	} {
		t.Run(tc.service+" "+tc.op, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newRig(t)
				g.jira.SearchLag = 30 * time.Second
				fail := openertest.LoseOnce(tc.op)
				if tc.service == "jira" {
					g.jira.Fail = fail
				} else {
					g.conf.Fail = fail
				}
				defer g.run()()
				in := rollback("checkout", "7")
				g.accept(in)
				g.accept(news(in, "AnalysisRunFailed", "metric error-rate failed"))
				time.Sleep(5 * time.Minute)
				synctest.Wait()
				g.exactlyOnce(1, 1)
				if n := g.conf.TimelineRows("metric error-rate failed"); n != 1 {
					t.Errorf("the news is on the page %d times, want 1", n)
				}
				if fps, _ := g.store.Pending(context.Background()); len(fps) != 0 {
					t.Errorf("still pending: %v", fps)
				}
			})
		})
	}
}

// The start-up check names the variables at fault when Atlassian refuses
// the credentials, and never their values.
func TestCheckCredentials(t *testing.T) {
	g := newRig(t)
	g.jira.Fail = func(op string) (error, bool) {
		return &atlassian.Error{Service: "jira", Op: op, Status: http.StatusUnauthorized}, false
	}
	g.o.CheckCredentials(context.Background())
	logs := g.logs.String()
	if !strings.Contains(logs, "ATLASSIAN_EMAIL and ATLASSIAN_API_TOKEN") || strings.Contains(logs, `"token"`) {
		t.Errorf("log does not name the variables:\n%s", logs)
	}
}

func TestIsEntityRef(t *testing.T) {
	for ref, want := range map[string]bool{
		"group:default/payments-team": true, "user:alice": true, "component:payments/checkout": true,
		"payments-team": false, "": false, "group:": false, ":x": false, "group:a/": false, "group:a b": false, "group:a/b/c": false,
	} {
		if got := isEntityRef(ref); got != want {
			t.Errorf("isEntityRef(%q) = %v, want %v", ref, got, want)
		}
	}
}

// New facts rewrite the description while it is what the function wrote;
// once a person has edited it, it is left alone and the new facts arrive
// as one comment.
func TestDescriptionFollowsFacts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		thin := rollback("checkout", "7")
		fp := g.accept(thin).Fingerprint
		g.work(fp)
		richer := rollback("checkout", "7")
		richer.Images = []incident.Image{{Container: "api", Image: "registry.example.com/checkout:1.42.0"}}
		g.accept(richer)
		g.work(fp)
		desc := func() string { b, _, _ := g.jira.Description(context.Background(), "OPS-1"); return string(b) }
		if !strings.Contains(desc(), "checkout:1.42.0") {
			t.Fatalf("the description does not carry the new image: %s", desc())
		}
		if _, comments, _ := g.jira.Count(); comments != 0 {
			t.Errorf("%d comments for facts written into the description", comments)
		}
		// A person rewrites the description; later facts go to a comment.
		g.jira.EditDescription("OPS-1", adf.NewDoc(adf.Paragraph(adf.Text("Written by the on-call engineer."))))
		later := rollback("checkout", "7")
		later.StableImages = []incident.Image{{Container: "api", Image: "registry.example.com/checkout:1.41.3"}}
		g.accept(later)
		g.work(fp)
		if d := desc(); !strings.Contains(d, "on-call engineer") || strings.Contains(d, "1.41.3") {
			t.Errorf("the person's description was not kept: %s", d)
		}
		if _, comments, _ := g.jira.Count(); comments != 1 {
			t.Errorf("%d comments, want the one with the new facts", comments)
		}
		// The same facts again: nothing.
		g.accept(later)
		if _, comments, _ := g.jira.Count(); comments != 1 || g.jira.Calls("edit") != 1 {
			t.Errorf("a repeat: %d comments, %d edits", comments, g.jira.Calls("edit"))
		}
	})
}

// A recovery ends the object's incident: a timeline entry and, with
// RESOLVE_ON_RECOVERY, the issue moved to done. A healthy object without
// an incident is not found.
func TestRecoveryResolves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, func(c *config.Config) { c.ResolveOnRecovery = true })
		in := rollback("checkout", "7")
		fp := g.accept(in).Fingerprint
		g.work(fp)
		healthy := &incident.Recovery{Cluster: "prod", Kind: incident.KindRollout, Namespace: "payments", Name: "checkout", Revision: "8", State: "Healthy", At: in.Time.Add(time.Hour)}
		out, ok, err := g.o.Recover(context.Background(), healthy)
		if err != nil || !ok || out.Fingerprint != fp {
			t.Fatalf("Recover: %+v %v %v", out, ok, err)
		}
		g.work(fp)
		if is, _ := g.jira.Issue("OPS-1"); !is.Done() {
			t.Error("the issue was not resolved on recovery")
		}
		if n := g.conf.TimelineRows("Healthy again"); n != 1 {
			t.Errorf("the recovery is on the page %d times, want once", n)
		}
		other := *healthy
		other.Name = "cart"
		if _, ok, err := g.o.Recover(context.Background(), &other); err != nil || ok {
			t.Errorf("a healthy object without an incident was found: %v %v", ok, err)
		}
	})
}

// An attempt started for a request carries the request's values, not its
// cancellation: every Atlassian call sends the request's trace context,
// and the lines about it come from the request's logger (which names the
// event). A pass's attempt logs the fingerprint and continues the trace
// of the event that brought the rollback, if it had one.
func TestFinishCarriesRequestValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		fp := g.accept(rollback("checkout", "7")).Fingerprint
		var reqLogs syncBuffer
		reqLog := slog.New(slog.NewJSONHandler(&reqLogs, nil)).With("ce_id", "ev-1", "fingerprint", fp)
		const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		ctx := atlassian.WithTraceparent(context.Background(), "00-"+traceID+"-00f067aa0ba902b7-01")
		ctx, cancel := context.WithCancel(WithLogger(ctx, reqLog))
		a, started := g.d.Finish(ctx, fp)
		cancel() // the request went away before the attempt ran
		<-a.Done()
		if out, err := a.Result(); !started || err != nil || !out.Done {
			t.Fatalf("attempt: started %v, %+v, %v; want it finished", started, out, err)
		}
		for _, op := range []string{"search", "create", "link"} {
			if tr := g.jira.Traces(op); len(tr) == 0 || slices.ContainsFunc(tr, func(id string) bool { return id != traceID }) {
				t.Errorf("%s calls carried trace ids %q, want %s on each", op, tr, traceID)
			}
		}
		if want := `"msg":"rollback finished","ce_id":"ev-1","fingerprint":"` + fp + `"`; !strings.Contains(reqLogs.String(), want) {
			t.Errorf("the request's log has no %s:\n%s", want, reqLogs.String())
		}

		defer g.run()()
		other := g.accept(rollback("cart", "3")).Fingerprint
		g.d.Wake()
		time.Sleep(2 * minGap) // the fake clock: the pass after the wake
		synctest.Wait()
		if tr := g.jira.Traces("create"); len(tr) != 2 || tr[1] != "" {
			t.Errorf("create trace ids %q, want the pass's create to carry none", tr)
		}
		if want := `"msg":"rollback finished","fingerprint":"` + other + `"`; !strings.Contains(g.logs.String(), want) {
			t.Errorf("the drainer's log has no %s:\n%s", want, g.logs.String())
		}

		// Accepted with a trace context, worked later by a pass: the
		// calls continue the event's trace, kept with the rollback.
		const later = "0af7651916cd43dd8448eb211c80319c"
		tctx := atlassian.WithTraceparent(context.Background(), "00-"+later+"-b7ad6b7169203331-01")
		in3 := rollback("search", "9")
		if _, err := g.o.Accept(tctx, in3); err != nil {
			t.Fatal(err)
		}
		g.d.Wake()
		time.Sleep(2 * minGap)
		synctest.Wait()
		if tr := g.jira.Traces("create"); len(tr) != 3 || tr[2] != later {
			t.Errorf("create trace ids %q, want the third to continue the accepted event's trace %s", tr, later)
		}
		if want := `"msg":"rollback finished","fingerprint":"` + in3.Fingerprint() + `","trace_id":"` + later + `"`; !strings.Contains(g.logs.String(), want) {
			t.Errorf("the drainer's log has no %s:\n%s", want, g.logs.String())
		}
	})
}

// lossyStore fails the next writes of one key: before they take effect,
// or after (the answer lost).
type lossyStore struct {
	store.Store
	key        string
	fails      int
	tookEffect bool
}

func (s *lossyStore) Put(ctx context.Context, r store.Record) (store.Record, error) {
	if r.Fingerprint != s.key || s.fails == 0 {
		return s.Store.Put(ctx, r)
	}
	s.fails--
	if s.tookEffect {
		if _, err := s.Store.Put(ctx, r); err != nil {
			return store.Record{}, err
		}
	}
	return store.Record{}, fmt.Errorf("put %s: %w", r.Fingerprint, store.ErrUnavailable)
}

// A delivery whose write of the object index fails (the caller gets a
// 503) and is retried still leaves its incident indexed under its object,
// so the recovery that names the object finds it: whether the failed write
// took effect or not, and whichever write failed.
func TestIndexSurvivesFailedDelivery(t *testing.T) {
	for _, tc := range []struct {
		name       string
		key        func(in *incident.Incident) string
		tookEffect bool
	}{
		{"index write fails", (*incident.Incident).ObjectFingerprint, false},
		{"index written, answer lost", (*incident.Incident).ObjectFingerprint, true},
		{"record write fails", (*incident.Incident).Fingerprint, false},
		{"record written, answer lost", (*incident.Incident).Fingerprint, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newRig(t)
				in := rollback("checkout", "7")
				g.o.store = &lossyStore{Store: g.store, key: tc.key(in), fails: 1, tookEffect: tc.tookEffect}
				if _, err := g.o.Accept(context.Background(), rollback("checkout", "7")); err == nil {
					t.Fatal("the first delivery succeeded; want the store's failure")
				}
				fp := g.accept(rollback("checkout", "7")).Fingerprint // the caller's retry
				g.work(fp)
				healthy := &incident.Recovery{Cluster: "prod", Kind: incident.KindRollout, Namespace: "payments", Name: "checkout", Revision: "8", State: "Healthy", At: in.Time.Add(time.Hour)}
				if out, ok, err := g.o.Recover(context.Background(), healthy); err != nil || !ok || out.Fingerprint != fp {
					t.Errorf("the recovery of the object did not find its incident: %+v %v %v", out, ok, err)
				}
				g.exactlyOnce(1, 0)
			})
		})
	}
}

// After DEDUP_WINDOW of quiet, news about a rollback whose issue is still
// open continues that incident: the record resumes with everything it
// held (earlier timeline rows and facts stay on the page), the news is
// commented and added to the page once, and a description a person
// edited meanwhile is left to them.
func TestResumeAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		ctx := context.Background()
		in := rollback("checkout", "7")
		in.Images = []incident.Image{{Container: "api", Image: "registry.example.com/checkout:1.42.0"}}
		fp := g.accept(in).Fingerprint
		g.accept(news(in, "AnalysisRunFailed", "metric error-rate failed"))
		g.work(fp)
		g.jira.EditDescription("OPS-1", adf.NewDoc(adf.Paragraph(adf.Text("Written by the on-call engineer."))))

		time.Sleep(25 * time.Hour)
		later := rollback("checkout", "7") // knows no images
		later.StableImages = []incident.Image{{Container: "api", Image: "registry.example.com/checkout:1.41.3"}}
		if acc := g.accept(news(later, "AnalysisRunFailed", "aborted again after a retry")); acc.Done {
			t.Fatal("a record older than DEDUP_WINDOW was trusted")
		}
		out, err := g.o.Work(ctx, fp)
		if err != nil || out.JiraKey != "OPS-1" {
			t.Fatalf("after the window: %+v %v, want OPS-1 continued", out, err)
		}
		// The news before the window and after it, and the new facts (the
		// description is the person's now).
		g.exactlyOnce(1, 3)
		for _, row := range []string{"metric error-rate failed", "aborted again after a retry"} {
			if n := g.conf.TimelineRows(row); n != 1 {
				t.Errorf("timeline row %q on the page %d times, want once", row, n)
			}
		}
		for _, fact := range []string{"checkout:1.42.0", "checkout:1.41.3"} {
			if g.conf.Occurrences(fact) == 0 {
				t.Errorf("the page lost or lacks the fact %q", fact)
			}
		}
		if d, _, _ := g.jira.Description(ctx, "OPS-1"); !strings.Contains(string(d), "on-call engineer") {
			t.Errorf("the description the person edited was overwritten: %.200s", d)
		}
		if rec := g.record(fp); rec.Prior != nil || rec.Pending != nil {
			t.Errorf("record after resuming: prior %v, pending %v; want neither", rec.Prior != nil, rec.Pending)
		}
	})
}

// A manual rollback joining an abort's incident after DEDUP_WINDOW is news
// on that incident, not a second one.
func TestJoinAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		abort := rollback("checkout", "7")
		fp := g.accept(abort).Fingerprint
		g.work(fp)
		time.Sleep(25 * time.Hour)
		undo := rollback("checkout", "8")
		undo.Reason, undo.Message, undo.Joins = incident.ReasonManualRollback, "reverted by hand", fp
		undo.Images = []incident.Image{{Container: "api", Image: "registry.example.com/checkout:1.41.3"}}
		if acc := g.accept(undo); acc.Fingerprint != fp {
			t.Fatalf("joined %s, want %s", acc.Fingerprint, fp)
		}
		g.work(fp)
		g.exactlyOnce(1, 1)
		var in incident.Incident
		if err := json.Unmarshal(g.record(fp).Incident, &in); err != nil || len(in.Images) != 0 {
			t.Errorf("the incident's images %v (%v), want the failed ones (none known), not the restored", in.Images, err)
		}
	})
}

// An open issue whose record is gone (NATS_TTL passed, or an in-process
// store restarted) is adopted: an event from before the issue (a
// redelivery of what opened it) adds nothing, a later failure is news on
// it, and the description is not rewritten: nothing says it is still the
// function's.
func TestAdoptIssueWithoutRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t)
		ctx := context.Background()
		in := rollback("checkout", "7")
		in.Time = time.Now()
		fp := g.accept(in).Fingerprint
		g.work(fp)
		time.Sleep(time.Minute)
		forget := func() { g.store = memory.New(g.o.cfg.NATSTTL); g.o.store = g.store }
		forget() // the records are gone

		g.accept(in) // redelivered
		g.work(fp)
		g.exactlyOnce(1, 0)

		again := news(in, "RolloutAborted", "aborted again")
		again.Time = time.Now()
		forget()
		g.accept(again)
		g.work(fp)
		g.exactlyOnce(1, 1) // the news
		richer := *again
		richer.Images = []incident.Image{{Container: "api", Image: "registry.example.com/checkout:1.42.0"}}
		g.accept(&richer)
		g.work(fp)
		g.exactlyOnce(1, 2) // and the new facts, as a comment
		if d, _, _ := g.jira.Description(ctx, "OPS-1"); strings.Contains(string(d), "checkout:1.42.0") {
			t.Error("the description of an issue without a record was rewritten")
		}
	})
}

// Reopening posts its comment once even when its answer was lost after it
// took effect and Jira's search still shows the issue resolved.
func TestReopenCommentOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRig(t, func(c *config.Config) { c.ReopenWindow = 48 * time.Hour })
		ctx := context.Background()
		in := rollback("checkout", "7")
		fp := g.accept(in).Fingerprint
		g.work(fp)
		_ = g.jira.DoTransition(ctx, "OPS-1", "2")
		resolved, _ := g.jira.Issue("OPS-1")
		time.Sleep(25 * time.Hour)
		g.jira.Fail = openertest.LoseOnce("comment")
		g.accept(in)
		if _, err := g.o.Work(ctx, fp); err == nil {
			t.Fatal("the lost answer did not fail the attempt")
		}
		g.jira.ShowResolved("OPS-1", resolved.Resolved) // the index lags the reopening
		g.work(fp)
		g.exactlyOnce(1, 1)
		if is, _ := g.jira.Issue("OPS-1"); is.Done() {
			t.Error("the issue was not reopened")
		}
	})
}
