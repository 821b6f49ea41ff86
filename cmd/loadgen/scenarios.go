package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"function/bench/harness"
	"function/internal/proc"
)

// launchReady starts the function against emu with env and waits for
// readiness.
func launchReady(o options, env map[string]string) (*proc.Process, error) {
	p, err := harness.Launch(o.binary, env)
	if err != nil {
		return nil, err
	}
	if _, err := harness.WaitOK(p, "/health/readiness", 5*time.Millisecond, 30*time.Second); err != nil {
		p.Stop(10 * time.Second)
		return nil, err
	}
	return p, nil
}

func functionEnv(o options, emu *harness.Emulator, extra ...map[string]string) map[string]string {
	return harness.FunctionEnv(emu.URL, append(extra, o.env)...)
}

// ---- 1. cold start ------------------------------------------------------

type coldRun struct {
	listening, ready, first, emuTime time.Duration
	rssReady                         int64
}

func coldStart(o options, dir string) error {
	n := cmp.Or(o.n, 30)
	emu := harness.NewEmulator()
	defer emu.Close()
	sm := harness.NewSecretsManager()
	defer sm.Close()
	if o.latency > 0 {
		emu.AddLatency(o.latency)
	}
	notification, err := harness.Notification()
	if err != nil {
		return err
	}
	modes := []struct {
		name string
		env  map[string]string
	}{
		{"credentials from the environment", functionEnv(o, emu)},
		{"credentials from Secrets Manager (fake)", functionEnv(o, emu, sm.Env())},
	}
	switch o.creds {
	case "env":
		modes = modes[:1]
	case "secrets-manager":
		modes = modes[1:]
	}
	// One start not counted: warms the page cache for the binary and the
	// emulator's ADF schema.
	if p, err := launchReady(o, modes[0].env); err == nil {
		harness.Post(harness.NewClient(1), p.URL, notification)
		p.Stop(10 * time.Second)
	} else {
		return err
	}

	fmt.Printf("### Cold start (%d starts per row, readiness polled every %v, emulator latency %v)\n\n", n, o.interval, max(o.latency, 0))
	fmt.Println("| credentials | exec → listening | exec → readiness 200 | exec → first incident opened | of which inside the emulator | RSS at readiness |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, m := range modes {
		var runs []coldRun
		for i := range n {
			emu.Reset()
			if o.latency > 0 {
				emu.AddLatency(o.latency)
			}
			r, err := oneColdStart(o, m.env, emu, notification)
			if err != nil {
				return fmt.Errorf("%s, start %d: %w", m.name, i, err)
			}
			runs = append(runs, r)
		}
		col := func(f func(coldRun) time.Duration) string {
			var ds []time.Duration
			for _, r := range runs {
				ds = append(ds, f(r))
			}
			return fmt.Sprintf("%s / %s", harness.Ms(harness.Median(ds)), harness.Ms(harness.Percentile(ds, 95)))
		}
		var rss []time.Duration // reuse the percentile helper on bytes
		for _, r := range runs {
			rss = append(rss, time.Duration(r.rssReady))
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", m.name,
			col(func(r coldRun) time.Duration { return r.listening }),
			col(func(r coldRun) time.Duration { return r.ready }),
			col(func(r coldRun) time.Duration { return r.first }),
			col(func(r coldRun) time.Duration { return r.emuTime }),
			harness.MiB(int64(harness.Median(rss))))
	}
	// The floor: the smallest Go HTTP server, started the same way.
	hello, err := harness.BuildHello(dir)
	if err != nil {
		return err
	}
	var listening, ready []time.Duration
	var rss []time.Duration
	for range n {
		p, err := harness.Launch(hello, nil)
		if err != nil {
			return err
		}
		l, err := harness.WaitOK(p, "/health/liveness", o.interval, 10*time.Second)
		if err != nil {
			p.Stop(10 * time.Second)
			return err
		}
		r, err := harness.WaitOK(p, "/health/readiness", o.interval, 10*time.Second)
		m, _, _ := harness.Memory(p.Pid())
		p.Stop(10 * time.Second)
		if err != nil {
			return err
		}
		listening, ready, rss = append(listening, l), append(ready, r), append(rss, time.Duration(m))
	}
	fmt.Printf("| floor: a minimal Go net/http server (no function) | %s / %s | %s / %s | — | — | %s |\n",
		harness.Ms(harness.Median(listening)), harness.Ms(harness.Percentile(listening, 95)),
		harness.Ms(harness.Median(ready)), harness.Ms(harness.Percentile(ready, 95)), harness.MiB(int64(harness.Median(rss))))
	if err := initTrace(o, modes[0].env, n); err != nil {
		return err
	}
	fmt.Println("\nEach cell: median / p95. \"Inside the emulator\" is the time the first incident's Atlassian calls spent being served (mostly the emulator's ADF schema check of the issue); the function's own share is the difference.")
	fmt.Println()
	return nil
}

// initTrace starts the function n times with GODEBUG=inittrace=1 and
// prints the median total package-initialisation time and the packages
// that cost most (the trace itself adds a little).
func initTrace(o options, env map[string]string, n int) error {
	var totals []time.Duration
	per := map[string][]time.Duration{}
	env = maps.Clone(env)
	env["GODEBUG"] = "inittrace=1"
	for range n {
		p, err := harness.Launch(o.binary, env)
		if err != nil {
			return err
		}
		if _, err := harness.WaitOK(p, "/health/readiness", o.interval, 30*time.Second); err != nil {
			p.Stop(10 * time.Second)
			return err
		}
		p.Stop(10 * time.Second)
		var total time.Duration
		for _, line := range strings.Split(p.Output(), "\n") {
			// init <pkg> @<t> ms, <d> ms clock, <b> bytes, <a> allocs
			f := strings.Fields(line)
			if len(f) < 7 || f[0] != "init" || f[6] != "clock," {
				continue
			}
			d, err := time.ParseDuration(f[4] + "ms")
			if err != nil {
				continue
			}
			total += d
			per[f[1]] = append(per[f[1]], d)
		}
		totals = append(totals, total)
	}
	type pkg struct {
		name string
		med  time.Duration
	}
	var pkgs []pkg
	for name, ds := range per {
		pkgs = append(pkgs, pkg{name, harness.Median(ds)})
	}
	slices.SortFunc(pkgs, func(a, b pkg) int { return int(b.med - a.med) })
	var top []string
	for _, p := range pkgs[:min(5, len(pkgs))] {
		top = append(top, fmt.Sprintf("%s %s", p.name, harness.Ms(p.med)))
	}
	fmt.Printf("\nPackage initialisation before main (GODEBUG=inittrace=1, %d packages, %d starts): median total %s; largest: %s.\n",
		len(per), n, harness.Ms(harness.Median(totals)), strings.Join(top, ", "))
	return nil
}

func oneColdStart(o options, env map[string]string, emu *harness.Emulator, d harness.Delivery) (coldRun, error) {
	var r coldRun
	p, err := harness.Launch(o.binary, env)
	if err != nil {
		return r, err
	}
	defer p.Stop(10 * time.Second)
	if r.listening, err = harness.WaitOK(p, "/health/liveness", o.interval, 30*time.Second); err != nil {
		return r, err
	}
	if r.ready, err = harness.WaitOK(p, "/health/readiness", o.interval, 30*time.Second); err != nil {
		return r, err
	}
	r.rssReady, _, _ = harness.Memory(p.Pid())
	st := emu.ServiceTime()
	res := harness.Post(harness.NewClient(1), p.URL, d)
	r.first = time.Since(p.Started)
	r.emuTime = emu.ServiceTime() - st
	if res.Err != nil || res.Status != http.StatusOK || res.Reply.Status != "created" {
		return r, fmt.Errorf("first incident: %d %s %v", res.Status, res.Body, res.Err)
	}
	return r, nil
}

// ---- 2. footprint -------------------------------------------------------

func footprint(o options, dir string) error {
	st, err := os.Stat(o.binary)
	if err != nil {
		return err
	}
	stripped, err := proc.Build(context.Background(), "", dir+"/stripped", "./cmd/rollback-incident", "-ldflags=-s -w", "-trimpath")
	if err != nil {
		return err
	}
	sst, err := os.Stat(stripped)
	if err != nil {
		return err
	}
	emu := harness.NewEmulator()
	defer emu.Close()
	sm := harness.NewSecretsManager()
	defer sm.Close()
	notification, err := harness.Notification()
	if err != nil {
		return err
	}

	fmt.Println("### Footprint")
	fmt.Println()
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| binary, `go build` | %s |\n", harness.MiB(st.Size()))
	fmt.Printf("| binary, `go build -trimpath -ldflags='-s -w'` | %s |\n", harness.MiB(sst.Size()))
	for _, m := range []struct {
		name string
		env  map[string]string
	}{
		{"environment", functionEnv(o, emu)},
		{"Secrets Manager (fake)", functionEnv(o, emu, sm.Env())},
	} {
		p, err := launchReady(o, m.env)
		if err != nil {
			return err
		}
		cpu0, _ := harness.CPU(p.Pid())
		time.Sleep(5 * time.Second)
		cpu1, _ := harness.CPU(p.Pid())
		idle, idlePeak, err := harness.Memory(p.Pid())
		if err != nil {
			p.Stop(10 * time.Second)
			return err
		}
		emu.Reset()
		r := harness.Post(harness.NewClient(1), p.URL, notification)
		time.Sleep(time.Second)
		after, afterPeak, _ := harness.Memory(p.Pid())
		p.Stop(10 * time.Second)
		if r.Status != http.StatusOK {
			return fmt.Errorf("incident: %d %s", r.Status, r.Body)
		}
		fmt.Printf("| RSS idle, 5 s after readiness (credentials from the %s) | %s (peak so far %s) |\n", m.name, harness.MiB(idle), harness.MiB(idlePeak))
		fmt.Printf("| CPU while idle for those 5 s (credentials from the %s) | %s |\n", m.name, harness.Ms(cpu1-cpu0))
		fmt.Printf("| RSS after its first incident (credentials from the %s) | %s (peak so far %s) |\n", m.name, harness.MiB(after), harness.MiB(afterPeak))
	}
	fmt.Println("\nRSS at peak under the storms: see the storm tables (VmHWM of the function process).")
	fmt.Println()
	return nil
}

// ---- 3. overhead per event, whole process -------------------------------

func overhead(o options) error {
	n := cmp.Or(o.n, 2000)
	nNew := max(n/10, 1)
	emu := harness.NewEmulator()
	defer emu.Close()
	// A burst of 100,000 lets the new incidents go back to back; the
	// bucket's refill rate (and its ticker) stay at the default.
	p, err := launchReady(o, functionEnv(o, emu, map[string]string{"ATLASSIAN_RATE_BURST": "100000"}))
	if err != nil {
		return err
	}
	defer p.Stop(10 * time.Second)
	c := harness.NewClient(4)
	notification, err := harness.Notification()
	if err != nil {
		return err
	}
	resource, err := harness.ResourceUpdate()
	if err != nil {
		return err
	}
	if r := harness.Post(c, p.URL, notification); r.Reply.Status != "created" {
		return fmt.Errorf("first incident: %d %s", r.Status, r.Body)
	}
	measure := func(count int, next func(i int) harness.Delivery, want string) (cpu time.Duration, ds []time.Duration, emuTime time.Duration, err error) {
		cpu0, _ := harness.CPU(p.Pid())
		st := emu.ServiceTime()
		for i := range count {
			r := harness.Post(c, p.URL, next(i))
			if r.Err != nil || r.Status != http.StatusOK || r.Reply.Status != want {
				return 0, nil, 0, fmt.Errorf("delivery %d: %d %s %v", i, r.Status, r.Body, r.Err)
			}
			ds = append(ds, r.Duration)
		}
		cpu1, _ := harness.CPU(p.Pid())
		return (cpu1 - cpu0) / time.Duration(count), ds, emu.ServiceTime() - st, nil
	}
	fmt.Printf("### Overhead per event, whole process (func-go HTTP server included; keep-alive client on loopback)\n\n")
	fmt.Println("| event | deliveries | function CPU per event | reply p50 | reply p99 | time inside the emulator per event |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, c := range []struct {
		name  string
		count int
		next  func(int) harness.Delivery
		want  string
	}{
		{"identical duplicate, notification (plain JSON, 0.4 KB)", n, func(int) harness.Delivery { return notification }, "existing"},
		{"identical duplicate, resource UPDATE (binary CloudEvent, 10 KB)", n, func(int) harness.Delivery { return resource }, "existing"},
		{"new incident (4 Atlassian calls)", nNew, func(i int) harness.Delivery { return harness.DistinctRollback("overhead", i) }, "created"},
	} {
		cpu, ds, et, err := measure(c.count, c.next, c.want)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Printf("| %s | %d | %s | %s | %s | %s |\n", c.name, c.count, fmt.Sprintf("%.3f ms", float64(cpu)/1e6),
			harness.Ms(harness.Median(ds)), harness.Ms(harness.Percentile(ds, 99)), harness.Ms(et/time.Duration(c.count)))
	}
	fmt.Println("\nCPU per event: the function process's user+system time (/proc/<pid>/stat, 10 ms ticks) over the run, divided by the deliveries.")
	fmt.Println()
	return nil
}

// ---- 4. calls per incident, whole process -------------------------------

func calls(o options) error {
	emu := harness.NewEmulator()
	defer emu.Close()
	p, err := launchReady(o, functionEnv(o, emu))
	if err != nil {
		return err
	}
	defer p.Stop(10 * time.Second)
	c := harness.NewClient(1)
	notification, err := harness.Notification()
	if err != nil {
		return err
	}
	resource, err := harness.ResourceUpdate()
	if err != nil {
		return err
	}
	analysis, err := harness.AnalysisRunFailed()
	if err != nil {
		return err
	}
	fmt.Println("### Atlassian calls per incident (counted by the emulator)")
	fmt.Println()
	fmt.Println("| delivery | reply | calls | which |")
	fmt.Println("|---|---|---|---|")
	step := func(p *proc.Process, label string, d harness.Delivery) error {
		before := emu.Calls()
		r := harness.Post(c, p.URL, d)
		if r.Err != nil || r.Status != http.StatusOK {
			return fmt.Errorf("%s: %d %s %v", label, r.Status, r.Body, r.Err)
		}
		diff := harness.Diff(before, emu.Calls())
		fmt.Printf("| %s | %s | %d | %s |\n", label, r.Reply.Status, harness.Sum(diff), harness.FormatCalls(diff))
		return nil
	}
	for _, s := range []struct {
		label string
		d     harness.Delivery
	}{
		{"new incident, first of the process", notification},
		{"identical duplicate (same body)", notification},
		{"identical duplicate (resource UPDATE, another envelope)", resource},
		{"repeat with new information (AnalysisRun Failed)", analysis},
		{"identical repeat of that news", analysis},
		{"new incident, space id already known", harness.DistinctRollback("calls", 1)},
	} {
		if err := step(p, s.label, s.d); err != nil {
			return err
		}
	}
	// A second replica without shared records (no NATS_URL).
	p2, err := launchReady(o, functionEnv(o, emu))
	if err != nil {
		return err
	}
	defer p2.Stop(10 * time.Second)
	if err := step(p2, "identical duplicate on another replica without the record (no NATS)", notification); err != nil {
		return err
	}
	fmt.Println()
	return nil
}

// ---- 5. storms ----------------------------------------------------------

type stormResult struct {
	wall        time.Duration
	results     []harness.Result
	latencies   []time.Duration
	rss, peak   int64
	cpu         time.Duration
	calls       map[string]int
	issues      int
	pages       int
	emuTime     time.Duration
	maxInFlight int
	driverCPU   time.Duration // this process: emulator, fakes, clients
}

// fire sends all deliveries at once (every goroutine waits on one barrier)
// and waits for every reply, retrying as the sender would.
func fire(o options, emu *harness.Emulator, p *proc.Process, ds []harness.Delivery) stormResult {
	c := harness.NewClient(len(ds))
	out := stormResult{results: make([]harness.Result, len(ds))}
	ends := make([]time.Time, len(ds))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out.results[i] = harness.Deliver(c, p.URL, d, o.attempts)
			ends[i] = time.Now()
		}()
	}
	calls0 := emu.Calls()
	time.Sleep(50 * time.Millisecond) // let every goroutine reach the barrier
	cpu0, _ := harness.CPU(p.Pid())
	self0 := harness.SelfCPU()
	st := emu.ServiceTime()
	t0 := time.Now()
	close(start)
	wg.Wait()
	for _, e := range ends {
		out.wall = max(out.wall, e.Sub(t0))
		out.latencies = append(out.latencies, e.Sub(t0))
	}
	cpu1, _ := harness.CPU(p.Pid())
	out.cpu = cpu1 - cpu0
	out.driverCPU = harness.SelfCPU() - self0
	out.rss, out.peak, _ = harness.Memory(p.Pid())
	out.calls = harness.Diff(calls0, emu.Calls())
	out.issues = len(emu.Issues())
	out.pages = emu.Postmortems()
	out.emuTime = emu.ServiceTime() - st
	out.maxInFlight = emu.MaxConcurrent()
	return out
}

func printStorm(title string, o options, n int, latency time.Duration, r stormResult, extra []string) {
	statuses := map[string]int{}
	keys := map[string]bool{}
	redelivered := 0
	for _, res := range r.results {
		switch {
		case res.Err != nil:
			statuses["transport error"]++
		default:
			statuses[fmt.Sprintf("%d %s", res.Status, res.Reply.Status)]++
		}
		if res.Reply.JiraKey != "" {
			keys[res.Reply.JiraKey] = true
		}
		if res.Attempts > 1 {
			redelivered++
		}
	}
	var st []string
	for _, k := range slices.Sorted(maps.Keys(statuses)) {
		st = append(st, fmt.Sprintf("%s ×%d", k, statuses[k]))
	}
	fmt.Printf("### %s (%d deliveries at once, emulator adds %v per call)\n\n", title, n, latency)
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| wall time, all sent at once → every reply | %s |\n", harness.Ms(r.wall))
	fmt.Printf("| reply time first / p50 / p99 (from the burst's start, retries included) | %s / %s / %s |\n",
		harness.Ms(slices.Min(r.latencies)), harness.Ms(harness.Median(r.latencies)), harness.Ms(harness.Percentile(r.latencies, 99)))
	fmt.Printf("| replies | %s |\n", strings.Join(st, ", "))
	fmt.Printf("| deliveries that needed a retry (5xx → Retry-After) | %d |\n", redelivered)
	fmt.Printf("| distinct Jira keys in the replies | %d |\n", len(keys))
	fmt.Printf("| Atlassian calls | %d (%s) |\n", harness.Sum(r.calls), harness.FormatCalls(r.calls))
	fmt.Printf("| incidents created: Jira issues / postmortem pages | %d / %d |\n", r.issues, r.pages)
	fmt.Printf("| Atlassian calls in flight at once (max) | %d |\n", r.maxInFlight)
	fmt.Printf("| function CPU time for the storm | %s |\n", harness.Ms(r.cpu))
	fmt.Printf("| load driver CPU time (emulator, senders) on the same %d cores | %s |\n", runtime.NumCPU(), harness.Ms(r.driverCPU))
	fmt.Printf("| function RSS after / peak (VmHWM) | %s / %s |\n", harness.MiB(r.rss), harness.MiB(r.peak))
	for _, e := range extra {
		fmt.Println(e)
	}
	if len(o.env) > 0 {
		fmt.Printf("\nFunction environment changed with -env: %v\n", map[string]string(o.env))
	}
	fmt.Println()
}

func stormDuplicates(o options) error {
	n := cmp.Or(o.n, 1000)
	latency := orDefault(o.latency, -1, 150*time.Millisecond)
	emu := harness.NewEmulator()
	defer emu.Close()
	p, err := launchReady(o, functionEnv(o, emu))
	if err != nil {
		return err
	}
	defer p.Stop(10 * time.Second)
	if latency > 0 {
		emu.AddLatency(latency)
	}
	ds, err := harness.StormDeliveries(n)
	if err != nil {
		return err
	}
	r := fire(o, emu, p, ds)
	printStorm("Duplicate storm: one rollback", o, n, latency, r, nil)
	if r.issues != 1 || r.pages != 1 {
		return fmt.Errorf("storm of one rollback opened %d issues and %d pages", r.issues, r.pages)
	}
	return nil
}

func stormDistinct(o options) error {
	n := cmp.Or(o.n, 200)
	latency := orDefault(o.latency, -1, 150*time.Millisecond)
	modes := []bool{false, true}
	switch o.adf {
	case "full":
		modes = modes[:1]
	case "light":
		modes = modes[1:]
	}
	for _, light := range modes {
		emu := harness.NewEmulator()
		emu.SkipADFSchema(light)
		p, err := launchReady(o, functionEnv(o, emu))
		if err != nil {
			emu.Close()
			return err
		}
		if latency > 0 {
			emu.AddLatency(latency)
		}
		ds := make([]harness.Delivery, n)
		for i := range ds {
			ds[i] = harness.DistinctRollback("storm", i)
		}
		r := fire(o, emu, p, ds)
		p.Stop(10 * time.Second)
		emu.Close()
		title := "Storm of distinct rollbacks, emulator checks every description against the ADF schema"
		if light {
			title = "Storm of distinct rollbacks, emulator's ADF check skipped (-adf light)"
		}
		printStorm(title, o, n, latency, r, []string{
			fmt.Sprintf("| time inside the emulator, summed over calls | %s |", harness.Ms(r.emuTime)),
		})
		if r.issues != n || r.pages != n {
			return fmt.Errorf("%d rollbacks opened %d issues and %d pages", n, r.issues, r.pages)
		}
	}
	return nil
}
