package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"function/bench/harness"
	"function/internal/emulator"
)

// BenchmarkDrainAfterOutage: 1,000 rollbacks are accepted while Atlassian
// answers 503 to everything, then Atlassian returns and the function's
// drainer works them off. The figure is how close the drain comes to what
// the client rate limit allows (ATLASSIAN_RATE_LIMIT calls per second per
// host, Jira and Confluence sharing one host here), and how many 429s the
// emulator, enforcing a limit above the client's, had to answer. Run it
// once:
//
//	go test -run '^$' -bench DrainAfterOutage -benchtime 1x ./bench/
func BenchmarkDrainAfterOutage(b *testing.B) {
	const (
		n          = 1000
		clientRate = 200 // calls per second the function allows itself
	)
	for range b.N {
		emu := harness.NewEmulator()
		emu.SkipADFSchema(true)
		emu.SetRateLimit(emulator.RateLimit{PerSecond: clientRate * 5 / 4, Burst: 100})
		h, d, err := harness.NewFunction(emu.URL, map[string]string{
			"ATLASSIAN_RATE_LIMIT": strconv.Itoa(clientRate), "ATLASSIAN_RATE_BURST": "20",
			"DRAIN_CONCURRENCY": "4", "FINISH_BUDGET": "1s",
		})
		if err != nil {
			b.Fatal(err)
		}
		emu.SetOutage(http.StatusServiceUnavailable)
		accepted := 0
		for i := range n {
			r := harness.Serve(h, harness.Delivery{Body: []byte(fmt.Sprintf(
				`{"rolloutName":"svc-%04d","namespace":"payments","phase":"Degraded","message":"RolloutAborted: Rollout aborted update to revision 4"}`, i))})
			if r.Status == http.StatusAccepted {
				accepted++
			}
		}
		if accepted != n {
			b.Fatalf("%d of %d accepted during the outage", accepted, n)
		}
		emu.ClearOutage()
		before, limited := emu.Total(), emu.RateLimited()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		for {
			c, err := d.Pass(ctx, true)
			if err != nil {
				b.Fatal(err)
			}
			if c.Pending == 0 {
				break
			}
		}
		elapsed := time.Since(start)
		cancel()
		_ = d.Close(context.Background())
		calls := emu.Total() - before
		if got := len(emu.Issues()); got != n || emu.Postmortems() != n {
			b.Fatalf("%d issues, %d pages; want %d each", got, emu.Postmortems(), n)
		}
		rate := float64(calls) / elapsed.Seconds()
		b.ReportMetric(elapsed.Seconds(), "s-to-drain")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "rollbacks/s")
		b.ReportMetric(rate, "calls/s")
		b.ReportMetric(rate/clientRate*100, "%-of-limit")
		b.ReportMetric(float64(emu.RateLimited()-limited), "429s")
		emu.Close()
	}
}
