package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"function/internal/emulator"
)

// impatient posts body as a caller that gives up after 3 tries within
// 7 s: each try waits at most 1.8 s for an answer, with 0.5 s and 1 s
// between tries. It returns the first 2xx status, or the last failure.
func (e *env) impatient(body []byte) (status int, took time.Duration) {
	client := &http.Client{Timeout: 1800 * time.Millisecond}
	start := time.Now()
	for try, pause := 0, 500*time.Millisecond; try < 3; try, pause = try+1, pause*2 {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
			if status/100 == 2 {
				return status, time.Since(start)
			}
		}
		time.Sleep(pause)
	}
	return status, time.Since(start)
}

// gauge reads one unlabelled metric from /metrics (-1: absent).
func (e *env) gauge(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// exactlyOnce checks n issues, n pages, one link each, and per issue the
// comments and page rows the news made: one each.
func (e *env) exactlyOnce(t *testing.T, n int, newsText string) {
	t.Helper()
	issues, pages := e.emu.Issues(), e.postmortems()
	if len(issues) != n || len(pages) != n {
		t.Fatalf("%d issues, %d pages; want %d each", len(issues), len(pages), n)
	}
	for _, is := range issues {
		if l := e.emu.RemoteLinks(is.Key); len(l) != 1 {
			t.Errorf("%s has %d remote links", is.Key, len(l))
		}
		if newsText == "" {
			continue
		}
		if c := e.emu.Comments(is.Key); len(c) != 1 {
			t.Errorf("%s has %d comments, want 1 (the news)", is.Key, len(c))
		}
	}
	if newsText != "" {
		for _, p := range pages {
			body := p.Body
			if _, rest, ok := strings.Cut(body, "rollback-incident.timeline<"); ok {
				body, _, _ = strings.Cut(rest, "rollback-incident.timeline.end")
			}
			if got := strings.Count(body, newsText); got != 1 {
				t.Errorf("page %q's timeline shows the news %d times, want once", p.Title, got)
			}
		}
	}
}

// TestCustodyThroughOutage: Atlassian answers 503 to everything for over a
// minute, far past the callers' retries. 20 rollbacks, each delivered with
// two duplicates and one piece of news by callers that give up after 3
// tries within 7 s: every delivery gets a 2xx in its window. The function
// process is killed during the outage and a new one started (NATS store):
// within 60 s of the outage's end the new process has opened every
// incident exactly once, news included.
func TestCustodyThroughOutage(t *testing.T) {
	t.Parallel()
	_, natsURL := jetStream(t)
	emu, ts := newEmulator(t)
	vars := []string{"NATS_URL=" + natsURL, "FINISH_BUDGET=1s", "REQUEST_DEADLINE=8s"}
	e := startWith(t, emu, ts, vars...)
	const n = 20
	const newsText = "analysis error-rate failed"
	outageStart := time.Now()
	emu.SetOutage(http.StatusServiceUnavailable)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var slow []string
	for i := range n {
		base := fmt.Sprintf(`{"rolloutName":"svc-%02d","namespace":"payments","phase":"Degraded","message":"RolloutAborted: Rollout aborted update to revision 4","timestamp":"2026-12-06T02:00:00Z"}`, i)
		withNews := fmt.Sprintf(`{"rolloutName":"svc-%02d","namespace":"payments","phase":"Degraded","reason":"AnalysisRunFailed","message":"%s for revision 4","revision":"4","timestamp":"2026-12-06T02:00:05Z"}`, i, newsText)
		for _, body := range []string{base, base, base, withNews} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, took := e.impatient([]byte(body))
				if status/100 != 2 || took > 7*time.Second {
					mu.Lock()
					slow = append(slow, fmt.Sprintf("svc-%02d: %d after %v", i, status, took))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(slow) > 0 {
		t.Errorf("deliveries without a 2xx in the caller's window: %v", slow)
	}
	if got := len(emu.Issues()); got != 0 {
		t.Fatalf("%d issues during the outage", got)
	}
	// The process dies during the outage; a new one takes over the store.
	e.kill()
	e2 := startWith(t, emu, ts, vars...)
	waitUntil(t, 30*time.Second, func() bool { return e2.gauge(t, "rollback_incident_pending_rollbacks") == n })

	time.Sleep(time.Until(outageStart.Add(65 * time.Second)))
	emu.ClearOutage()
	ended := time.Now()
	waitUntil(t, 60*time.Second, func() bool { return e2.opened(n) && len(emu.Comments(emu.Issues()[0].Key)) >= 1 })
	waitUntil(t, 60*time.Second-time.Since(ended), func() bool { return e2.gauge(t, "rollback_incident_pending_rollbacks") == 0 })
	t.Logf("all %d incidents open %v after the outage ended", n, time.Since(ended).Round(time.Second))
	e2.exactlyOnce(t, n, newsText)
}

// TestLostCreateAnswer: the create's answer is lost after it took effect
// and Jira's search hides new issues for 30 s. The caller gets a 2xx; in
// the end exactly one issue, one page and one link exist.
func TestLostCreateAnswer(t *testing.T) {
	t.Parallel()
	emu, ts := newEmulator(t)
	emu.SetSearchLag(30 * time.Second)
	emu.InjectFault("POST /rest/api/3/issue", emulator.Fault{DelayAfter: 20 * time.Second}, 1) // past ATLASSIAN_TIMEOUT
	e := startWith(t, emu, ts, "FINISH_BUDGET=4s")
	body := fixture(t, "rollout-notification-webhook.json")
	if status, took := e.impatient(body); status/100 != 2 {
		t.Fatalf("caller got %d after %v", status, took)
	}
	waitUntil(t, 90*time.Second, func() bool { return e.opened(1) })
	if calls := emu.Calls()["POST /rest/api/3/issue"]; calls != 1 {
		t.Errorf("%d creates, want 1", calls)
	}
	e.exactlyOnce(t, 1, "")
}

// TestWrongAtlassianToken: with a wrong token every rollback is accepted
// (202) and held, the reply and the log name the variables at fault (never
// the value), and the pending gauge counts them; restarted with the right
// token (NATS store), the new process opens each exactly once.
func TestWrongAtlassianToken(t *testing.T) {
	t.Parallel()
	_, natsURL := jetStream(t)
	emu, ts := newEmulator(t)
	const wrong = "wrong-token-a1b2c3"
	e := startWith(t, emu, ts, "NATS_URL="+natsURL, "ATLASSIAN_API_TOKEN="+wrong)
	for i := range 3 {
		r := e.post([]byte(fmt.Sprintf(`{"rolloutName":"tok-%d","namespace":"payments","phase":"Degraded","message":"RolloutAborted: Rollout aborted update to revision 2"}`, i)), nil)
		if r.status != http.StatusAccepted || !strings.Contains(r.reply.Reason, "ATLASSIAN_EMAIL and ATLASSIAN_API_TOKEN") {
			t.Errorf("rollback %d: %d %s", i, r.status, r.body)
		}
	}
	waitUntil(t, 30*time.Second, func() bool { return e.gauge(t, "rollback_incident_pending_rollbacks") == 3 })
	if logs := e.output(); !strings.Contains(logs, "ATLASSIAN_API_TOKEN") || strings.Contains(logs, wrong) {
		t.Errorf("the log does not name the variable, or shows the value:\n%s", logs)
	}
	e.kill()
	e2 := startWith(t, emu, ts, "NATS_URL="+natsURL)
	waitUntil(t, 30*time.Second, func() bool { return e2.opened(3) })
	e2.exactlyOnce(t, 3, "")
}
