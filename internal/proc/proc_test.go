package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// roleEnv makes the test binary, run as a child by the tests, play a
// server instead of running the tests: a process of the kind proc runs.
const roleEnv = "PROC_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(child(role))
	}
	os.Exit(m.Run())
}

// child plays role and returns its exit status.
func child(role string) int {
	switch role {
	case "exit":
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		return 3
	case "env":
		fmt.Println("LISTEN_ADDRESS=" + os.Getenv("LISTEN_ADDRESS"))
		return 0
	case "silent":
		fmt.Println("starting, but never listening")
		time.Sleep(time.Hour) // until killed
		return 0
	case "parent":
		// Starts a server child and announces the child's URL as its own.
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c, err := Start(context.Background(), Options{Path: self, Env: []string{roleEnv + "=plain", "GORACE=atexit_sleep_ms=0"}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(c.URL)
		time.Sleep(time.Hour) // until killed
		return 0
	}
	ln, err := net.Listen("tcp", os.Getenv("LISTEN_ADDRESS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ready := http.StatusOK
	if role == "unready" {
		ready = http.StatusServiceUnavailable
	}
	http.HandleFunc("GET /health/readiness", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(ready) })
	go func() { _ = http.Serve(ln, nil) }()
	// Exit 0 on SIGINT as func-go does once drained; "stubborn" ignores it.
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt)
	fmt.Println("starting") // not an announcement
	url := "http://" + ln.Addr().String()
	if role == "json" {
		// The function's form, on stderr: output is read from both.
		fmt.Fprintf(os.Stderr, `{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"listening","url":%q}`+"\n", url)
	} else {
		fmt.Println(url)
	}
	for {
		<-interrupted
		if role != "stubborn" {
			return 0
		}
	}
}

// options runs the test binary as a child in role.
func options(t *testing.T, role string, env ...string) Options {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Under -race a child would wait 1 s at exit for the race reports.
	return Options{Path: self, Env: append([]string{roleEnv + "=" + role, "GORACE=atexit_sleep_ms=0"}, env...)}
}

// start starts a child in role and stops it when the test ends.
func start(t *testing.T, role string) *Process {
	t.Helper()
	p, err := Start(t.Context(), options(t, role))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestAnnouncement(t *testing.T) {
	for _, tt := range []struct {
		line, url string
	}{
		{"http://127.0.0.1:8080\n", "http://127.0.0.1:8080"},
		{"  http://127.0.0.1:8080/  \r\n", "http://127.0.0.1:8080/"},
		{`{"level":"INFO","msg":"listening","url":"http://127.0.0.1:9"}`, "http://127.0.0.1:9"},
		{"listening on http://127.0.0.1:8080\n", ""},          // prose
		{"http://127.0.0.1:8080 ready\n", ""},                 // more than the URL
		{"https://127.0.0.1:8080\n", ""},                      // not plain HTTP
		{`{"msg":"listening","addr":"127.0.0.1:9"}`, ""},      // no url
		{`{"msg":"started","url":"http://127.0.0.1:9"}`, ""},  // another message
		{`{"msg":"listening","url":"ftp://127.0.0.1:9"}`, ""}, // not HTTP
		{`{"msg":"listening","url":"http://127.0.0.1:9"`, ""}, // not JSON
		{"", ""},
	} {
		url, ok := Announcement([]byte(tt.line))
		if url != tt.url || ok != (tt.url != "") {
			t.Errorf("Announcement(%q) = %q, %v; want %q", tt.line, url, ok, tt.url)
		}
	}
}

// TestStartLearnsURL: Start returns the URL the child announces in
// either form, the child listens there (on the port LISTEN_ADDRESS
// 127.0.0.1:0 let the system pick), and Stop's SIGINT ends it.
func TestStartLearnsURL(t *testing.T) {
	for _, role := range []string{"plain", "json"} {
		t.Run(role, func(t *testing.T) {
			p := start(t, role)
			if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`).MatchString(p.URL) || strings.HasSuffix(p.URL, ":0") {
				t.Errorf("URL %q, want http://127.0.0.1:PORT", p.URL)
			}
			if err := p.Ready(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			if out := p.Output(); !strings.HasPrefix(out, "starting\n") || !strings.Contains(out, p.URL) {
				t.Errorf("output %q, want the start line and the announcement", out)
			}
			p.Stop(10 * time.Second)
			if err := p.Err(); err != nil {
				t.Errorf("exit after SIGINT: %v, want status 0 (not killed)", err)
			}
		})
	}
}

func TestStartFailsWhenChildExits(t *testing.T) {
	_, err := Start(t.Context(), options(t, "exit"))
	if err == nil || !strings.Contains(err.Error(), "exited before it listened") || !strings.Contains(err.Error(), "to stderr") {
		t.Errorf("Start: %v, want the exit and the child's output", err)
	}
}

func TestStartTimeout(t *testing.T) {
	o := options(t, "silent")
	o.Timeout = 50 * time.Millisecond
	_, err := Start(t.Context(), o)
	if err == nil || !strings.Contains(err.Error(), "did not announce its URL within 50ms") {
		t.Errorf("Start: %v, want the timeout", err)
	}
}

func TestStartCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Start(ctx, options(t, "silent")); !errors.Is(err, context.Canceled) {
		t.Errorf("Start: %v, want context.Canceled", err)
	}
}

// TestReadyTimeout: a child that never becomes ready fails Ready, which
// names the path, and is left running.
func TestReadyTimeout(t *testing.T) {
	p := start(t, "unready")
	err := p.Ready(100 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "/health/readiness") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ready: %v, want a deadline error naming the path", err)
	}
	select {
	case <-p.Exited():
		t.Errorf("the child exited: %v", p.Err())
	default:
	}
}

// TestStopKillsAfterGrace: a child that ignores SIGINT is killed once the
// grace period is over.
func TestStopKillsAfterGrace(t *testing.T) {
	p := start(t, "stubborn")
	p.Stop(50 * time.Millisecond)
	var exit *exec.ExitError
	if err := p.Err(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("exit: %v, want killed", err)
	}
}

// TestRun: Run returns the whole output, stdout and stderr, and the exit
// status, and sets LISTEN_ADDRESS only when the caller did not.
func TestRun(t *testing.T) {
	out, err := Run(t.Context(), options(t, "exit"))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("Run: %v, want exit status 3", err)
	}
	if out != "to stdout\nto stderr\n" {
		t.Errorf("output %q", out)
	}
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{nil, "LISTEN_ADDRESS=127.0.0.1:0\n"},
		{[]string{"LISTEN_ADDRESS=127.0.0.1:8123"}, "LISTEN_ADDRESS=127.0.0.1:8123\n"},
	} {
		if out, err := Run(t.Context(), options(t, "env", tt.env...)); err != nil || out != tt.want {
			t.Errorf("env %v: %q, %v; want %q", tt.env, out, err, tt.want)
		}
	}
}

// TestRunCanceled: a child still running when ctx ends is killed, and the
// error says so.
func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Run(ctx, options(t, "silent")); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Run: %v, want a canceled run", err)
	}
}
