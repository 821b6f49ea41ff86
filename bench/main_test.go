package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"function/bench/harness"
	"function/internal/emulator"
	"function/internal/proc"
)

// childEnv makes the test binary serve the Atlassian emulator instead of
// running tests: BenchmarkNewIncident keeps Atlassian's work out of the
// benchmark process, so its CPU time and allocations are the function's
// alone.
const childEnv = "BENCH_ATLASSIAN_EMULATOR_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		serveEmulatorChild()
		return
	}
	code := m.Run()
	if child != nil {
		child.Stop(5 * time.Second)
	}
	os.Exit(code)
}

// serveEmulatorChild serves the emulator on LISTEN_ADDRESS (internal/proc
// sets 127.0.0.1:0) and announces its URL on stdout, the line proc.Start
// reads. It ends with its parent.
func serveEmulatorChild() {
	l, err := net.Listen("tcp", os.Getenv("LISTEN_ADDRESS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emu := emulator.New(emulator.Options{Projects: map[string][]string{"OPS": {"Incident", "Task", "Bug"}}})
	url := "http://" + l.Addr().String()
	emu.SetBaseURL(url)
	fmt.Println(url)
	// TestMain stops the child when the benchmarks end; a parent that dies
	// without running it (killed, or go test's -timeout panic) takes the
	// child with it (internal/proc asks the kernel to).
	fmt.Fprintln(os.Stderr, http.Serve(l, emu))
	os.Exit(1)
}

var (
	childOnce sync.Once
	child     *proc.Process // stopped by TestMain
	childErr  error
)

// emulatorProcess starts (once per test binary) the emulator in a child
// process, the test binary re-executed, and returns its URL.
func emulatorProcess(tb testing.TB) string {
	tb.Helper()
	childOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p, err := proc.Start(ctx, proc.Options{Path: os.Args[0], Env: append(os.Environ(), childEnv+"=1")})
		if err != nil {
			childErr = fmt.Errorf("emulator child: %w", err)
			return
		}
		child = p
		if _, err := p.WaitOK(ctx, "/_emulator/state", 10*time.Millisecond); err != nil {
			childErr = fmt.Errorf("emulator child at %s: %w", p.URL, err)
		}
	})
	if childErr != nil {
		tb.Fatal(childErr)
	}
	return child.URL
}

// resetEmulatorProcess empties the child emulator.
func resetEmulatorProcess(tb testing.TB, url string) {
	tb.Helper()
	resp, err := http.Post(url+"/_emulator/reset", "application/json", nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		tb.Fatalf("emulator reset: %s", resp.Status)
	}
}

// newHandler wires the function in process (see harness.NewHandler).
func newHandler(tb testing.TB, jiraURL string, overrides map[string]string) http.Handler {
	tb.Helper()
	h, err := harness.NewHandler(jiraURL, overrides)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}
