package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"function/bench/harness"
	"function/internal/emulator"
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
	os.Exit(m.Run())
}

// serveEmulatorChild serves the emulator on a free port, prints its URL on
// stdout, and exits when stdin closes (the parent went away).
func serveEmulatorChild() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emu := emulator.New(emulator.Options{Projects: map[string][]string{"OPS": {"Incident", "Task", "Bug"}}})
	url := "http://" + l.Addr().String()
	emu.SetBaseURL(url)
	go func() { _ = http.Serve(l, emu) }()
	fmt.Println(url)
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

var (
	childOnce sync.Once
	childURL  string
	childErr  error
	// childStdin stays open for the life of this process: the child exits
	// when it closes.
	childStdin io.WriteCloser
)

// emulatorProcess starts (once per test binary) the emulator in a child
// process and returns its URL. The child exits with the test binary.
func emulatorProcess(tb testing.TB) string {
	tb.Helper()
	childOnce.Do(func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			childErr = err
			return
		}
		childStdin = stdin
		out, err := cmd.StdoutPipe()
		if err != nil {
			childErr = err
			return
		}
		cmd.Stderr = os.Stderr
		if childErr = cmd.Start(); childErr != nil {
			return
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			childErr = fmt.Errorf("emulator child: %w", err)
			return
		}
		childURL = strings.TrimSpace(line)
		// Wait until it answers.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if resp, err := http.Get(childURL + "/_emulator/state"); err == nil {
				resp.Body.Close()
				return
			}
		}
		childErr = fmt.Errorf("emulator child at %s does not answer", childURL)
	})
	if childErr != nil {
		tb.Fatal(childErr)
	}
	return childURL
}

// resetEmulatorProcess empties the child emulator.
func resetEmulatorProcess(tb testing.TB, url string) {
	tb.Helper()
	resp, err := http.Post(url+"/_emulator/reset", "application/json", nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
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
