package bench

import (
	"net/http"
	"testing"

	"function/bench/harness"
)

// TestCallsPerIncident pins the "Atlassian calls per incident" row of
// docs/benchmarks.md: the emulator counts every call the function makes
// for a new incident, an identical duplicate, a repeat with news, and an
// identical duplicate reaching a replica that has no record of it.
func TestCallsPerIncident(t *testing.T) {
	emu := harness.NewEmulator()
	defer emu.Close()
	h := newHandler(t, emu.URL, nil)

	notification, err := harness.Notification()
	if err != nil {
		t.Fatal(err)
	}
	resource, err := harness.ResourceUpdate()
	if err != nil {
		t.Fatal(err)
	}
	analysis, err := harness.AnalysisRunFailed()
	if err != nil {
		t.Fatal(err)
	}

	step := func(h http.Handler, label string, d harness.Delivery, want string) int {
		t.Helper()
		before := emu.Calls()
		r := harness.Serve(h, d)
		diff := harness.Diff(before, emu.Calls())
		if r.Status != http.StatusOK || r.Reply.Status != want {
			t.Fatalf("%s: %d %s, want 200 %s", label, r.Status, r.Body, want)
		}
		t.Logf("%-58s %d calls: %s", label, harness.Sum(diff), harness.FormatCalls(diff))
		return harness.Sum(diff)
	}

	if n := step(h, "new incident (first of the process)", notification, "created"); n > 5 {
		t.Errorf("a new incident took %d Atlassian calls, target at most 5", n)
	}
	if n := step(h, "identical duplicate, same envelope", notification, "existing"); n != 0 {
		t.Errorf("an identical duplicate took %d calls, want 0", n)
	}
	// The resource UPDATE carries facts the notification lacked (images,
	// pod hashes): the page's generated sections and the description are
	// rewritten once (each read first: a person may have edited them).
	if n := step(h, "same failure with more facts, resource UPDATE CloudEvent", resource, "existing"); n > 4 {
		t.Errorf("new facts took %d calls, want a read and an update of the page and of the description (≤ 4)", n)
	}
	if n := step(h, "identical duplicate, resource UPDATE CloudEvent", resource, "existing"); n != 0 {
		t.Errorf("an identical duplicate in another envelope took %d calls, want 0", n)
	}
	news := step(h, "repeat with new information (AnalysisRun failed)", analysis, "existing")
	if news == 0 || news > 5 {
		t.Errorf("news took %d calls, want a comment and the page and description updated (≤ 5)", news)
	}
	if n := step(h, "identical repeat of that news", analysis, "existing"); n != 0 {
		t.Errorf("a repeat of known news took %d calls, want 0", n)
	}
	if n := step(h, "new incident (space id already known)", harness.DistinctRollback("calls", 1), "created"); n > 5 {
		t.Errorf("a second new incident took %d calls, target at most 5", n)
	}
	// A replica without the record (a second replica without NATS, or a
	// restarted one) finds the incident in Jira instead of opening one.
	other := newHandler(t, emu.URL, nil)
	issues := len(emu.Issues())
	step(other, "identical duplicate on a replica without the record", notification, "existing")
	if len(emu.Issues()) != issues || emu.Postmortems() != 2 {
		t.Errorf("the other replica opened something: %d issues (want %d), %d pages (want 2)", len(emu.Issues()), issues, emu.Postmortems())
	}
}
