// Command loadgen drives the function as a whole process — the binary
// built from ./cmd/rollback-incident, started with exec as Knative starts
// it — against the in-process Atlassian emulator and Secrets Manager fake,
// and prints the figures docs/benchmarks.md publishes, as Markdown.
//
//	go run ./cmd/loadgen -scenario all
//	go run ./cmd/loadgen -scenario cold-start -n 30
//	go run ./cmd/loadgen -scenario footprint
//	go run ./cmd/loadgen -scenario overhead -n 2000
//	go run ./cmd/loadgen -scenario calls
//	go run ./cmd/loadgen -scenario storm-duplicates -n 1000 -latency 150ms
//	go run ./cmd/loadgen -scenario storm-distinct -n 200 -latency 150ms
//
// -env KEY=VALUE (repeatable) changes the function's environment, e.g.
// -env ATLASSIAN_RATE_LIMIT=100 for the storms.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"function/bench/harness"
	"function/internal/proc"
)

type envFlags map[string]string

func (e envFlags) String() string { return fmt.Sprint(map[string]string(e)) }
func (e envFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	e[k] = v
	return nil
}

type options struct {
	scenario string
	n        int
	latency  time.Duration
	binary   string
	env      envFlags
	attempts int
	creds    string
	interval time.Duration
	cpuprof  string
	adf      string
	idle     time.Duration
}

func main() {
	o := options{env: envFlags{}}
	flag.StringVar(&o.scenario, "scenario", "all", "cold-start | footprint | overhead | calls | storm-duplicates | storm-distinct | all | idle | go-bench")
	flag.IntVar(&o.n, "n", 0, "repetitions / deliveries (0: the scenario's default: cold-start 30, overhead 2000, storm-duplicates 1000, storm-distinct 200)")
	flag.DurationVar(&o.latency, "latency", -1, "latency the emulator adds to every Atlassian call (default: 150ms for the storms, 0 otherwise)")
	flag.StringVar(&o.binary, "binary", "", "function binary to run (default: go build ./cmd/rollback-incident into a temporary directory)")
	flag.Var(o.env, "env", "KEY=VALUE added to the function's environment (repeatable)")
	flag.IntVar(&o.attempts, "attempts", 5, "storms: deliveries per event, retrying 5xx after Retry-After as the Sensor's retryStrategy does")
	flag.StringVar(&o.creds, "creds", "both", "cold-start: credentials from env | secrets-manager | both")
	flag.DurationVar(&o.interval, "poll", time.Millisecond, "cold-start: readiness polling interval")
	flag.StringVar(&o.adf, "adf", "both", "storm-distinct: the emulator checks issue descriptions against the ADF schema (full), skips that check (light: its CPU cost would compete with the function on this machine), or both")
	flag.DurationVar(&o.idle, "wait-idle", 0, "before each scenario, wait up to this long for the machine to be quiet (under 10% busy for 3 s): other processes skew the figures")
	flag.StringVar(&o.cpuprof, "cpuprofile", "", "write a CPU profile of the load driver (emulator, fakes and clients) to this file")
	flag.Parse()

	if o.cpuprof != "" {
		f, err := os.Create(o.cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	if err := run(o); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "loadgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.binary == "" && o.scenario != "idle" && o.scenario != "go-bench" {
		fmt.Fprintln(os.Stderr, "building ./cmd/rollback-incident …")
		if o.binary, err = proc.Build(context.Background(), "", dir, "./cmd/rollback-incident"); err != nil {
			return err
		}
	}
	host, _ := os.Hostname()
	fmt.Printf("<!-- loadgen %s on %s: %d CPUs (GOMAXPROCS %d), %s %s/%s, %s -->\n\n",
		o.scenario, host, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		time.Now().UTC().Format("2006-01-02 15:04 MST"))

	scenarios := map[string]func(options) error{
		"cold-start":       func(o options) error { return coldStart(o, dir) },
		"footprint":        func(o options) error { return footprint(o, dir) },
		"overhead":         overhead,
		"calls":            calls,
		"storm-duplicates": stormDuplicates,
		"storm-distinct":   stormDistinct,
		// idle only waits (with -wait-idle) and reports the machine's load:
		// run it before go test -bench on a shared machine.
		"idle": func(options) error { return nil },
		// go-bench runs the in-process benchmarks (go test -bench) with
		// the same idle wait and load report.
		"go-bench": goBench,
	}
	names := []string{o.scenario}
	if o.scenario == "all" {
		names = []string{"cold-start", "footprint", "overhead", "calls", "storm-duplicates", "storm-distinct"}
	}
	for _, name := range names {
		f, ok := scenarios[name]
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		if o.idle > 0 {
			quiet, waited := harness.WaitIdle(0.10, 3, o.idle, runtime.NumCPU())
			if !quiet {
				fmt.Fprintf(os.Stderr, "loadgen: machine still busy after %v; measuring anyway\n", waited.Round(time.Second))
			}
		}
		load := harness.StartOtherLoad()
		if err := f(o); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		other, share := load.Stop(runtime.NumCPU())
		fmt.Printf("_Other processes on this machine used %.1f s of CPU (%.0f%% of its %d cores) while %s ran._\n\n", other.Seconds(), share*100, runtime.NumCPU(), name)
	}
	return nil
}

// goBench runs go test -run '^$' -bench 'Duplicate|NewIncident' -benchmem
// -benchtime 2s -count n ./bench/...: the per-event benchmarks, not the
// drain and memory ones, which are run once each by name.
func goBench(o options) error {
	root, err := proc.ModuleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "Duplicate|NewIncident", "-benchmem", "-benchtime", "2s", "-count", fmt.Sprint(cmp.Or(o.n, 5)), "./bench/...")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	fmt.Println("```")
	defer fmt.Println("```")
	return cmd.Run()
}

// orDefault returns v unless it is the flag's "not given" value. Where
// that is the zero value, cmp.Or does it; -latency needs this, as its 0
// means no added latency and -1 means not given.
func orDefault[T comparable](v, unset, def T) T {
	if v == unset {
		return def
	}
	return v
}
