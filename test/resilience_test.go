package test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"function/internal/emulator"
)

// deliver posts body as an Argo Events Sensor configured as in deploy/
// does: atLeastOnce, policy.status.allow 2xx, retryStrategy {steps: 8,
// duration: 500ms, factor: 1.5}. It repeats on any non-2xx answer and on
// transport errors, without looking at Retry-After.
func (e *env) deliver(body []byte) (result, int) {
	wait := 500 * time.Millisecond
	var r result
	for attempt := 1; ; attempt++ {
		r = e.postQuiet(body, nil)
		if r.status >= 200 && r.status < 300 || attempt == 8 {
			return r, attempt
		}
		time.Sleep(wait)
		wait = wait * 3 / 2
	}
}

// TestFaultMatrix injects each fault on each Atlassian endpoint the
// function uses, on Jira Cloud and Confluence v2 and on Data Center, and
// checks that, with the sender retrying as the Sensor does, every rollback
// ends with exactly one issue and one page, linked, its news commented
// and on the page once, that every injected failure was met, and that the
// number of Atlassian calls stays within the stated bound: the calls of a
// clean run plus four per injected failure. The faults include writes
// that took effect and whose answer was lost (reset, or no answer until
// the client gives up).
func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	type route struct {
		name, cloud, dc string
		news            bool // the endpoint is used when news arrives, not at opening
		write           bool
	}
	routes := []route{
		{"search", "POST /rest/api/3/search/jql", "POST /rest/api/2/search", false, false},
		{"create issue", "POST /rest/api/3/issue", "POST /rest/api/2/issue", false, true},
		{"resolve space", "GET /wiki/api/v2/spaces", "GET /rest/api/space/{spaceKey}", false, false},
		{"create page", "POST /wiki/api/v2/pages", "POST /rest/api/content", false, true},
		{"remote link", "POST /rest/api/3/issue/{issueIdOrKey}/remotelink", "POST /rest/api/2/issue/{issueIdOrKey}/remotelink", false, true},
		{"comment", "POST /rest/api/3/issue/{issueIdOrKey}/comment", "POST /rest/api/2/issue/{issueIdOrKey}/comment", true, true},
		{"read page", "GET /wiki/api/v2/pages/{id}", "GET /rest/api/content/{id}", true, false},
		{"update page", "PUT /wiki/api/v2/pages/{id}", "PUT /rest/api/content/{id}", true, true},
	}
	type fault struct {
		name  string
		f     emulator.Fault
		n     int
		write bool // only meaningful on a write
	}
	faults := []fault{
		{"429 with Retry-After", emulator.Fault{Status: 429}, 2, false},
		{"429 without Retry-After", emulator.Fault{Status: 429, NoRetryAfter: true}, 1, false},
		{"429 with only X-RateLimit-Reset", emulator.Fault{Status: 429, OnlyRateLimitReset: true}, 1, false},
		{"500", emulator.Fault{Status: 500}, 2, false},
		{"502", emulator.Fault{Status: 502}, 2, false},
		{"503", emulator.Fault{Status: 503}, 2, false},
		{"connection reset", emulator.Fault{Reset: true}, 1, false},
		{"slow answer", emulator.Fault{Delay: 1500 * time.Millisecond}, 1, false},
		{"timeout", emulator.Fault{Delay: 4 * time.Second}, 1, false}, // beyond ATLASSIAN_TIMEOUT
		{"took effect, then reset", emulator.Fault{Applied: true, Reset: true}, 1, true},
		{"took effect, then no answer", emulator.Fault{Applied: true}, 1, true},
	}
	const (
		openingCalls = 5 // search, create issue, resolve space, create page, remote link
		newsCalls    = 5 // comment, read and update the page, read and update the description (new facts)
		perFailure   = 4
	)
	for _, d := range deployments {
		for _, rt := range routes {
			// Data Center runs every fault on the writes, where it differs.
			if d.dataCenter && !rt.write {
				continue
			}
			for _, fl := range faults {
				if fl.write && !rt.write {
					continue
				}
				t.Run(d.name+"/"+rt.name+"/"+fl.name, func(t *testing.T) {
					t.Parallel()
					pattern := rt.cloud
					if d.dataCenter {
						pattern = rt.dc
					}
					e := d.start(t, "ATLASSIAN_TIMEOUT=2s", "JIRA_INDEX_GRACE=2s", "REQUEST_DEADLINE=8s")
					clean := openingCalls
					if rt.news {
						if r, _ := e.deliver(fixture(t, "rollout-notification-webhook.json")); r.status != http.StatusOK || !e.opened(1) {
							t.Fatalf("opening: %d %s", r.status, r.body)
						}
						clean += newsCalls
					}
					injected := e.emu.InjectFault(pattern, fl.f, fl.n)
					body := fixture(t, "rollout-notification-webhook.json")
					if rt.news {
						body = fixture(t, "analysisrun-failed.json")
					}
					r, attempts := e.deliver(body)
					if r.status/100 != 2 {
						t.Fatalf("after %d deliveries: %d %s", attempts, r.status, r.body)
					}
					// A 202 leaves the rest to the function: wait for it.
					waitUntil(t, time.Minute, func() bool {
						if !e.opened(1) {
							return false
						}
						return !rt.news || len(e.emu.Comments(e.emu.Issues()[0].Key)) == 1 && e.postmortems()[0].Version == 2
					})
					// The scenario: the function met every failure injected.
					if got := injected.Fired(); got != fl.n {
						t.Errorf("the fault answered %d of the %d calls it was injected for", got, fl.n)
					}
					issues, pages := e.emu.Issues(), e.postmortems()
					links := e.emu.RemoteLinks(issues[0].Key)
					if len(links) != 1 || !strings.Contains(links[0].URL, pages[0].ID) {
						t.Errorf("remote links %+v", links)
					}
					if rt.news {
						// Settled: no second comment or row comes later.
						e.deliver(body)
						if c := len(e.emu.Comments(issues[0].Key)); c != 1 || e.postmortems()[0].Version != 2 {
							t.Errorf("news: %d comments, page version %d; want 1 and 2", c, e.postmortems()[0].Version)
						}
					}
					calls := atlassianCalls(e.emu)
					if bound := clean + perFailure*fl.n; calls > bound {
						t.Errorf("%d Atlassian calls, bound %d (%v)", calls, bound, e.emu.Calls())
					}
					t.Logf("%d deliveries, %d Atlassian calls (clean run: %d)", attempts, calls, clean)
				})
			}
		}
	}
}

// TestBurstUnderRateLimit: 200 distinct rollbacks at once against an
// emulator that enforces Jira's burst limit. The client-side limiter keeps
// under it: every incident is created, the caller sees no 429, and memory
// stays bounded.
func TestBurstUnderRateLimit(t *testing.T) {
	t.Parallel()
	emu, ts := newEmulator(t)
	emu.SetRateLimit(emulator.RateLimit{PerSecond: 100, Burst: 100, PerIssueWrites: 20})
	// 200 schema checks would cost this process about 35 s of CPU under the
	// race detector, starving the tests beside it; the other tests check
	// the descriptions.
	emu.SkipADFSchema(true)
	e := startWith(t, emu, ts, "REQUEST_DEADLINE=25s") // default client limit: 50 per second, burst 20
	const n = 200
	results := make([]result, n)
	attempts := make([]int, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"rolloutName":"svc-%03d","namespace":"payments","phase":"Degraded","message":"RolloutAborted: Rollout aborted update to revision 4: canary failed","timestamp":"2026-11-22T02:00:00Z"}`, i)
			results[i], attempts[i] = e.deliver([]byte(body))
		}()
	}
	wg.Wait()
	redelivered, accepted := 0, 0
	for i, r := range results {
		// A delivery whose limiter wait outlasted FINISH_BUDGET got a 202:
		// the function finishes it; none may have seen a 429 or a 5xx.
		if r.status != http.StatusOK && r.status != http.StatusAccepted {
			t.Errorf("rollback %d: %d %s", i, r.status, r.body)
		}
		if r.status == http.StatusAccepted {
			accepted++
		}
		if attempts[i] > 1 {
			redelivered++
		}
	}
	waitUntil(t, time.Minute, func() bool { return e.opened(n) })
	t.Logf("%d rollbacks done in %v; %d answered 202 and finished in the background, %d redelivered", n, time.Since(start).Round(time.Millisecond), accepted, redelivered)
	if redelivered != 0 {
		t.Errorf("%d deliveries were retried by the caller, want none", redelivered)
	}
	if len(emu.Issues()) != n || len(e.postmortems()) != n {
		t.Errorf("%d issues, %d pages; want %d each", len(emu.Issues()), len(e.postmortems()), n)
	}
	// The client-side bucket keeps the function under the limit; what still
	// reaches Jira bunched up (a stalled connection pool, GC, a loaded CI
	// machine) is retried inside the function, never shown to the caller.
	calls := atlassianCalls(emu)
	if got := emu.RateLimited(); got*10 > calls {
		t.Errorf("the emulator answered 429 %d times in %d calls: the client-side limiter should keep (nearly) under the limit", got, calls)
	}
	t.Logf("%d Atlassian calls, %d answered 429 and retried", calls, emu.RateLimited())
	rss := peakRSS(t, e.p.Pid())
	t.Logf("peak RSS after %d concurrent rollbacks: %d MiB", n, rss>>20)
	if rss > 200<<20 {
		t.Errorf("peak RSS %d MiB, want under 200 MiB", rss>>20)
	}
}

// peakRSS reads the process's high-water resident set size (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestSIGTERMMidBurst: Knative scales a replica down in the middle of a
// burst. The process stops accepting, finishes what it has started, and
// exits 0; what arrives after the signal is refused and redelivered to a
// new replica, and no incident is left half-linked or doubled.
func TestSIGTERMMidBurst(t *testing.T) {
	t.Parallel()
	emu, ts := newEmulator(t)
	// Every Atlassian call takes 100 ms, so a rollback (four calls or more)
	// is still in flight when the signal comes.
	emu.InjectFault(emulator.AnyRoute, emulator.Fault{Delay: 100 * time.Millisecond}, 1_000_000)
	e := startWith(t, emu, ts)
	body := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"rolloutName":"term-%02d","namespace":"payments","phase":"Degraded","message":"RolloutAborted: Rollout aborted update to revision 2"}`, i))
	}
	const inFlight, after = 10, 10
	results := make([]result, inFlight)
	var finished atomic.Int32
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.postQuiet(body(i), nil)
			finished.Add(1)
		}()
	}
	waitFor(t, func() bool { return emu.Calls()["POST /rest/api/3/issue"] >= 5 })
	finishedAtSignal := finished.Load()
	if err := e.p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The scenario: rollbacks were mid-way when the signal came.
	if finishedAtSignal >= inFlight {
		t.Fatalf("all %d deliveries had finished before SIGTERM: nothing was in flight", inFlight)
	}
	// The listener closes; what comes now is refused.
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	for i := inFlight; i < inFlight+after; i++ {
		if r := e.postQuiet(body(i), nil); r.status != 0 {
			t.Errorf("delivery %d after the listener closed: %d %s, want refused", i, r.status, r.body)
		}
	}
	wg.Wait()
	if err := e.p.Err(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	// What was in flight finished before the process exited.
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Errorf("in-flight delivery %d: %d %s, want 200 (finished before exit)", i, r.status, r.body)
		}
	}
	emu.ClearFaults()
	e2 := startWith(t, emu, ts)
	for i := inFlight; i < inFlight+after; i++ {
		if r, _ := e2.deliver(body(i)); r.status/100 != 2 {
			t.Errorf("redelivery %d: %d %s", i, r.status, r.body)
		}
	}
	// A redelivery answered 202 (a slow moment) is finished by e2 itself.
	waitUntil(t, time.Minute, func() bool { return e2.opened(inFlight + after) })
	issues := emu.Issues()
	for _, is := range issues {
		if l := emu.RemoteLinks(is.Key); len(l) != 1 {
			t.Errorf("%s has %d remote links", is.Key, len(l))
		}
	}
}

// TestMetrics: /metrics shows the counts a run produced.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.post(fixture(t, "rollout-notification-webhook.json"), nil)                                // created
	e.post(fixture(t, "argo-events-webhook-event.json"), nil)                                   // existing
	e.post([]byte(`{"rolloutName":"a","namespace":"b","phase":"Healthy"}`), nil)                // ignored
	e.post([]byte(`{"nope":1}`), nil)                                                           // rejected
	e.emu.FailNext("POST /rest/api/3/search/jql", 500, 1)                                       // accepted
	e.post([]byte(`{"rolloutName":"b","namespace":"b","phase":"Degraded","message":"m"}`), nil) //
	e.emu.FailNext("POST /rest/api/3/search/jql", 503, 1)                                       // retried
	e.post([]byte(`{"rolloutName":"c","namespace":"b","phase":"Degraded","message":"m"}`), nil) // created
	waitUntil(t, time.Minute, func() bool { return e.opened(3) })                               // b, finished by the function
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	text := b.String()
	for _, want := range []string{
		`rollback_incident_events_total{outcome="created",source="rollouts-notification"} 2`,
		`rollback_incident_events_total{outcome="existing",source="rollouts-notification"} 1`,
		`rollback_incident_events_total{outcome="ignored",source="rollouts-notification"} 1`,
		`rollback_incident_events_total{outcome="rejected",source="unknown"} 1`,
		`rollback_incident_events_total{outcome="accepted",source="rollouts-notification"} 1`,
		`rollback_incident_atlassian_requests_total{operation="create issue",service="jira",status="201"} 3`,
		`rollback_incident_attempts_total{outcome="unavailable"} 1`,
		`rollback_incident_abandoned_total 0`,
		`rollback_incident_pending_rollbacks `,
		`rollback_incident_pending_oldest_age_seconds `,
		`rollback_incident_atlassian_requests_total{operation="search issues",service="jira",status="500"} 1`,
		`rollback_incident_atlassian_requests_total{operation="search issues",service="jira",status="503"} 1`,
		`rollback_incident_atlassian_retries_total{operation="search issues",service="jira"} 1`,
		`rollback_incident_store_operations_total{operation="lock",result="ok"}`,
		`rollback_incident_request_duration_seconds_count{outcome="created"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^go_goroutines \d+`).MatchString(text) {
		t.Error("no Go runtime metrics")
	}
	// Every log line about an event carries its ids.
	for _, l := range e.logLines() {
		if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "incident created") {
			for _, k := range []string{"fingerprint", "jira_key", "page_id", "ce_id"} {
				if _, ok := l[k]; !ok {
					t.Errorf("log line %v lacks %s", l, k)
				}
			}
		}
	}
}
