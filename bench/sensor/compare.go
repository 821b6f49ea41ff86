package sensor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"function/bench/harness"
)

// Side is what one approach did with a burst of events.
type Side struct {
	Approach  string
	Events    int               // events in the burst
	Handled   int               // events that reached the approach's action (Sensor filter passed / delivered to the function)
	Calls     int               // Atlassian API calls
	ByRoute   map[string]int    // calls per route
	Issues    int               // Jira issues created
	Pages     int               // Confluence pages created
	Refused   int               // Atlassian answers 4xx
	Linked    bool              // issue and page reference each other
	Wall      time.Duration     // burst sent at once → last answer
	PerEvent  []string          // what each event cost
	Outcomes  map[string]int    // function: reply status → count
	Sensor    *Summary          // Sensor side only
	Refusals  map[string]string // Sensor side: the first 4xx body per route
	Transport int               // failed deliveries (function side)
}

// Bench is one emulator shared by both approaches, with the Confluence v1
// content API either served by the emulator or, until it is, by V1StandIn
// in front of it.
type Bench struct {
	Emu     *harness.Emulator
	URL     string     // base URL the Sensor calls (JIRA and CONFLUENCE domain)
	StandIn *V1StandIn // nil when the emulator serves v1 itself
	server  *httptest.Server
}

// EmulatorHasV1 reports whether the emulator routes Confluence v1's page
// create.
func EmulatorHasV1(emu *harness.Emulator) bool {
	for _, r := range emu.Routes() {
		if r == ConfluenceRoute {
			return true
		}
	}
	return false
}

// NewBench wraps emu for the Sensor. forceStandIn uses the stand-in even
// when the emulator has the route.
func NewBench(emu *harness.Emulator, forceStandIn bool) *Bench {
	b := &Bench{Emu: emu, URL: emu.URL}
	if forceStandIn || !EmulatorHasV1(emu) {
		b.StandIn = &V1StandIn{Next: emu.Emulator, Email: emailOf(), Token: tokenOf()}
		b.server = httptest.NewServer(b.StandIn)
		b.URL = b.server.URL
	}
	return b
}

// Close stops the stand-in's server.
func (b *Bench) Close() {
	if b.server != nil {
		b.server.Close()
	}
}

func (b *Bench) snapshot() (calls map[string]int, issues, pages int) {
	calls = b.Emu.Calls()
	if b.StandIn != nil {
		calls[ConfluenceRoute+" (stand-in)"] = b.StandIn.Calls()
		pages = b.StandIn.Pages()
	}
	return calls, len(b.Emu.Issues()), pages + len(b.Emu.Pages())
}

// RunSensor sends the burst through the Sensor-only approach, all events
// at once.
func (b *Bench) RunSensor(ctx context.Context, events []harness.Event, mode Mode) (Side, error) {
	s := New(Options{JiraURL: b.URL, ConfluenceURL: b.URL, Email: emailOf(), Token: tokenOf(), Mode: mode})
	calls0, issues0, pages0 := b.snapshot()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(events))
	for i, ev := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Handle(ctx, ev)
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return Side{}, err
		}
	}
	calls1, issues1, pages1 := b.snapshot()
	byRoute := harness.Diff(calls0, calls1)
	sum := Summarize(s.Calls())
	side := Side{
		Approach: "Sensor only (" + mode.String() + ")", Events: len(events), Handled: s.Fired(),
		Calls: harness.Sum(byRoute), ByRoute: byRoute, Issues: issues1 - issues0, Pages: pages1 - pages0,
		Refused: sum.Refused, Wall: wall, Sensor: &sum,
	}
	side.Refusals = map[string]string{}
	perEvent := map[string][]string{}
	for _, c := range s.Calls() {
		if c.Status >= 400 && side.Refusals[c.Route] == "" {
			side.Refusals[c.Route] = fmt.Sprintf("%d %s", c.Status, strings.TrimSpace(c.Body))
		}
		perEvent[c.Event] = append(perEvent[c.Event], fmt.Sprintf("%s→%d", shortRoute(c.Route), c.Status))
	}
	for _, ev := range events {
		if p := perEvent[ev.Name]; len(p) > 0 {
			slices.Sort(p)
			side.PerEvent = append(side.PerEvent, ev.Name+": "+strings.Join(p, ", "))
		} else {
			side.PerEvent = append(side.PerEvent, ev.Name+": filtered out")
		}
	}
	return side, nil
}

// RunFunction sends the burst to the function as the project's deployment
// delivers it (Event.ToFunction), all at once, through deliver.
func (b *Bench) RunFunction(events []harness.Event, deliver func(harness.Delivery) harness.Result) Side {
	calls0, issues0, pages0 := b.snapshot()
	start := time.Now()
	var wg sync.WaitGroup
	results := make([]*harness.Result, len(events))
	handled := 0
	for i, ev := range events {
		d, ok := ev.ToFunction()
		if !ok {
			continue
		}
		handled++
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := deliver(d)
			results[i] = &r
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	calls1, issues1, pages1 := b.snapshot()
	byRoute := harness.Diff(calls0, calls1)
	side := Side{
		Approach: "rollback-incident function", Events: len(events), Handled: handled,
		Calls: harness.Sum(byRoute), ByRoute: byRoute, Issues: issues1 - issues0, Pages: pages1 - pages0,
		Wall: wall, Outcomes: map[string]int{},
	}
	for i, ev := range events {
		r := results[i]
		switch {
		case r == nil:
			side.PerEvent = append(side.PerEvent, ev.Name+": not forwarded (deploy Sensor filter)")
		case r.Err != nil:
			side.Transport++
			side.PerEvent = append(side.PerEvent, ev.Name+": "+r.Err.Error())
		default:
			side.Outcomes[fmt.Sprintf("%d %s", r.Status, r.Reply.Status)]++
			side.PerEvent = append(side.PerEvent, fmt.Sprintf("%s: %d %s %s", ev.Name, r.Status, r.Reply.Status, r.Reply.JiraKey))
		}
	}
	return side
}

func shortRoute(r string) string {
	switch r {
	case JiraRoute:
		return "Jira create"
	case ConfluenceRoute:
		return "Confluence v1 create"
	}
	return r
}

// InProcess returns a deliver function that serves deliveries with h.
func InProcess(h http.Handler) func(harness.Delivery) harness.Result {
	return func(d harness.Delivery) harness.Result { return harness.Serve(h, d) }
}
