package bench

import (
	"context"
	"testing"

	"function/bench/harness"
	"function/bench/sensor"
)

// TestSideBySide pins the side-by-side of docs/benchmarks.md: the burst of
// one rollback (3 notifications, 4 resource UPDATEs) through the source
// article's Sensor-only approach, read as intended and as printed, and
// through the function, all against one emulator in one run.
func TestSideBySide(t *testing.T) {
	emu := harness.NewEmulator()
	defer emu.Close()
	b := sensor.NewBench(emu, false)
	defer b.Close()
	if b.StandIn != nil {
		t.Logf("the emulator does not serve %s: counted by the stand-in in bench/sensor", sensor.ConfluenceRoute)
	}
	events, err := harness.RollbackBurst()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	intended, err := b.RunSensor(ctx, events, sensor.AsIntended)
	if err != nil {
		t.Fatal(err)
	}
	printed, err := b.RunSensor(ctx, events, sensor.AsPrinted)
	if err != nil {
		t.Fatal(err)
	}
	fn := b.RunFunction(events, sensor.InProcess(newHandler(t, emu.URL, nil)))

	for _, s := range []sensor.Side{intended, printed, fn} {
		t.Logf("%s: %d events, %d acted on, %d calls, %d issues, %d pages, %d refused — %s",
			s.Approach, s.Events, s.Handled, s.Calls, s.Issues, s.Pages, s.Refused, harness.FormatCalls(s.ByRoute))
		for _, p := range s.PerEvent {
			t.Logf("    %s", p)
		}
		for route, body := range s.Refusals {
			t.Logf("    first refusal of %s: %s", route, body)
		}
	}

	// The Sensor as intended: every Degraded event (3 notifications, 3
	// UPDATEs) opens an issue; the page title repeats, so one page and 5
	// duplicate-title 400s.
	if intended.Handled != 6 || intended.Calls != 12 || intended.Issues != 6 || intended.Pages != 1 || intended.Sensor.DuplicateTitle != 5 {
		t.Errorf("Sensor as intended: %d fired, %d calls, %d issues, %d pages, %d duplicate titles; want 6, 12, 6, 1, 5",
			intended.Handled, intended.Calls, intended.Issues, intended.Pages, intended.Sensor.DuplicateTitle)
	}
	// As printed: the payload nests everything under "body", both APIs
	// refuse it; the resource events never pass the body.phase filter.
	if printed.Handled != 3 || printed.Calls != 6 || printed.Issues != 0 || printed.Pages != 0 || printed.Refused != 6 {
		t.Errorf("Sensor as printed: %d fired, %d calls, %d issues, %d pages, %d refused; want 3, 6, 0, 0, 6",
			printed.Handled, printed.Calls, printed.Issues, printed.Pages, printed.Refused)
	}
	// The function: one incident with its news, at most 5 calls to open it
	// and 3 for the one piece of news (AnalysisRunFailed vs RolloutAborted).
	if fn.Issues != 1 || fn.Pages != 1 || fn.Calls > 10 || fn.Outcomes["200 created"] != 1 || fn.Transport != 0 {
		t.Errorf("function: %d issues, %d pages, %d calls, outcomes %v; want 1, 1, ≤ 10, one created", fn.Issues, fn.Pages, fn.Calls, fn.Outcomes)
	}
}
