package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMain serves the function when the quick start starts this test
// binary as its function process (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "function" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestPhases: the quick start says what it is doing as it goes, each step
// with the seconds since it started, and ends with the incident it opened.
func TestPhases(t *testing.T) {
	t.Setenv("LOG_LEVEL", "error") // the function's own lines would only clutter the test's output
	for _, k := range []string{"JIRA_URL", "ATLASSIAN_EMAIL", "ATLASSIAN_API_TOKEN", "CLUSTER_NAME", "LISTEN_ADDRESS",
		"AUTH_TOKEN", "ALLOW_UNAUTHENTICATED", "ATLASSIAN_SECRET_ID", "NATS_URL"} {
		t.Setenv(k, "") // run sets its defaults only where the user set nothing
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := start
	var out bytes.Buffer
	p := progress{w: &out, start: start, now: func() time.Time { clock = clock.Add(300 * time.Millisecond); return clock }}
	if err := run(context.Background(), p, "127.0.0.1:0", "127.0.0.1:0", true); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := []string{
		`[  0.3s] Atlassian emulator (Jira and Confluence) listening on http://127.0.0.1:`,
		`[  0.6s] note: no AUTH_TOKEN set, so this local run accepts unauthenticated callers (ALLOW_UNAUTHENTICATED=true)`,
		`[  0.9s] starting the function with the func-go runtime in its own process`,
		`[  1.2s] function listening on http://127.0.0.1:`,
		`[  1.5s] function ready`,
		`[  1.8s] sending the sample rollback the way an Argo Events Sensor does`,
		`[  2.1s] incident created: Jira issue OPS-1, postmortem page, linked`,
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < len(want) {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want %q…", i+1, lines[i], w)
		}
	}
	if !regexp.MustCompile(`(?m)^  Jira issue: +OPS-1 +http://127\.0\.0\.1:\d+/browse/OPS-1$`).MatchString(out.String()) {
		t.Errorf("no Jira key and URL in:\n%s", out.String())
	}
}

// TestAddressInUse: a port already taken (most often by a quick start
// still running) is named with the way out.
func TestAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out bytes.Buffer
	err = run(context.Background(), progress{w: &out, start: time.Now(), now: time.Now}, "127.0.0.1:0", l.Addr().String(), true)
	if err == nil || !strings.Contains(err.Error(), "address already in use (another quick start still running? stop it, or pick another address with -emulator)") {
		t.Errorf("run with the emulator's port taken: %v", err)
	}
	err = run(context.Background(), progress{w: &out, start: time.Now(), now: time.Now}, l.Addr().String(), "127.0.0.1:0", true)
	if err == nil || !strings.Contains(err.Error(), "(another quick start still running? stop it, or pick another address with -listen)") {
		t.Errorf("run with the function's port taken: %v", err)
	}
}
