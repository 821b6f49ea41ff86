// Package harness holds what the benchmarks (bench/) and the load driver
// (cmd/loadgen) share: the function binary run as a process (through
// internal/proc, as the end-to-end tests run it) and its memory and CPU
// readings, the Atlassian emulator and the Secrets Manager fake behind
// httptest servers, the deliveries of a rollback, and statistics.
//
// Nothing here is used by the function itself.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"function/internal/awsfake"
	"function/internal/emulator"
	"function/internal/proc"
)

// Test credentials used by every scenario.
const (
	AuthToken  = "bench-caller-token-7d2e"
	Cluster    = "prod-eu-1"
	SecretName = "prod/rollback-incident/atlassian"
	awsKeyID   = "AKIAEXAMPLE0000000001"
	awsSecret  = "bench-aws-secret-key"
	awsRegion  = "eu-west-1"
)

// Fixture reads testdata/fixtures/name.
func Fixture(name string) ([]byte, error) {
	root, err := proc.ModuleRoot()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(root, "testdata", "fixtures", name))
}

// Emulator is the Atlassian emulator behind an httptest server.
type Emulator struct {
	*emulator.Emulator
	Server *httptest.Server
	URL    string
	served atomic.Int64 // nanoseconds spent serving requests
}

// NewEmulator starts an emulator with the OPS project and the INCIDENTS
// space (the function's defaults) and no added latency.
func NewEmulator() *Emulator {
	emu := emulator.New(emulator.Options{Projects: map[string][]string{"OPS": {"Incident", "Task", "Bug"}}})
	e := &Emulator{Emulator: emu}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		emu.ServeHTTP(w, r)
		e.served.Add(int64(time.Since(start)))
	}))
	e.URL = e.Server.URL
	emu.SetBaseURL(e.URL)
	return e
}

// ServiceTime is the time requests have spent inside the emulator so far,
// summed over requests: the Atlassian side of the round trips, including
// any added latency and the emulator's own work (its ADF schema check of
// an issue create is the largest: tens of ms).
func (e *Emulator) ServiceTime() time.Duration { return time.Duration(e.served.Load()) }

// Close stops the server.
func (e *Emulator) Close() { e.Server.Close() }

// AddLatency holds every API call d before serving it, for the next
// 1<<30 calls: a realistic Atlassian Cloud round trip.
func (e *Emulator) AddLatency(d time.Duration) {
	e.InjectFault(emulator.AnyRoute, emulator.Fault{Delay: d}, 1<<30)
}

// Total is the number of API calls the emulator has counted.
func (e *Emulator) Total() int { return Sum(e.Calls()) }

// Sum adds up a Calls() map.
func Sum(calls map[string]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

// Diff returns after-before per route, without the zero entries.
func Diff(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// FormatCalls prints a Calls() diff as "POST /rest/api/3/issue×1, …",
// sorted by route.
func FormatCalls(calls map[string]int) string {
	parts := make([]string, 0, len(calls))
	for _, k := range slices.Sorted(maps.Keys(calls)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, calls[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Postmortems counts the function's postmortem pages (its titles start with
// "Postmortem " and carry the Jira key), leaving out the space homepages.
func (e *Emulator) Postmortems() int {
	n := 0
	for _, p := range e.Pages() {
		if strings.HasPrefix(p.Title, "Postmortem ") {
			n++
		}
	}
	return n
}

// SecretsManager is the SigV4-checking Secrets Manager fake holding the
// Atlassian credentials, and the environment that points the function's
// AWS SDK at it.
type SecretsManager struct {
	Fake   *awsfake.Fake
	Server *httptest.Server
}

// NewSecretsManager starts the fake with the emulator's default
// credentials and the callers' token in the secret.
func NewSecretsManager() *SecretsManager {
	fake := awsfake.New(awsfake.Options{AccessKeyID: awsKeyID, SecretAccessKey: awsSecret, Region: awsRegion})
	fake.SetSecret(SecretName, fmt.Sprintf(`{"email":%q,"api_token":%q,"auth_token":%q}`,
		emulator.DefaultEmail, emulator.DefaultAPIToken, AuthToken))
	return &SecretsManager{Fake: fake, Server: httptest.NewServer(fake)}
}

// Close stops the server.
func (s *SecretsManager) Close() { s.Server.Close() }

// Env is the environment that makes the function read its credentials
// from this fake (and no credentials from the environment).
func (s *SecretsManager) Env() map[string]string {
	return map[string]string{
		"ATLASSIAN_SECRET_ID":              SecretName,
		"ATLASSIAN_EMAIL":                  "",
		"ATLASSIAN_API_TOKEN":              "",
		"AUTH_TOKEN":                       "",
		"AWS_REGION":                       awsRegion,
		"AWS_ACCESS_KEY_ID":                awsKeyID,
		"AWS_SECRET_ACCESS_KEY":            awsSecret,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": s.Server.URL,
		"AWS_EC2_METADATA_DISABLED":        "true",
	}
}

// FunctionEnv is the function's environment against an emulator at
// jiraURL with credentials from the environment; overrides replace or
// (with "") remove entries.
func FunctionEnv(jiraURL string, overrides ...map[string]string) map[string]string {
	env := map[string]string{
		"JIRA_URL":            jiraURL,
		"ATLASSIAN_EMAIL":     emulator.DefaultEmail,
		"ATLASSIAN_API_TOKEN": emulator.DefaultAPIToken,
		"AUTH_TOKEN":          AuthToken,
		"CLUSTER_NAME":        Cluster,
	}
	for _, o := range overrides {
		for k, v := range o {
			if v == "" {
				delete(env, k)
			} else {
				env[k] = v
			}
		}
	}
	return env
}

// Launch execs the binary with exactly env (plus PATH and HOME) on a port
// the operating system assigns, and returns once it listens.
func Launch(binary string, env map[string]string) (*proc.Process, error) {
	vars := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	return proc.Start(context.Background(), proc.Options{Path: binary, Env: vars})
}

// WaitOK polls GET path on p every interval until it answers 200, for at
// most timeout, and returns the time since exec.
func WaitOK(p *proc.Process, path string, interval, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.WaitOK(ctx, path, interval)
}

// Memory returns process pid's resident set size now (VmRSS) and its
// high-water mark (VmHWM), in bytes.
func Memory(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, errors.New("no VmRSS/VmHWM in /proc status")
	}
	return rss, peak, nil
}

// CPU returns process pid's user+system CPU time so far.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which is in parentheses and may
	// contain spaces): state is field 3, utime 14, stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// SelfCPU returns this process's user+system CPU time so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Reply mirrors the function's JSON reply.
type Reply struct {
	Status           string `json:"status"`
	Reason           string `json:"reason"`
	Fingerprint      string `json:"fingerprint"`
	JiraKey          string `json:"jiraKey"`
	ConfluencePageID string `json:"confluencePageId"`
}

// Result is one delivery's outcome.
type Result struct {
	Status   int
	Reply    Reply
	Body     []byte
	Duration time.Duration // of the last attempt
	Attempts int
	// RetryAfter is the reply's Retry-After header, if any.
	RetryAfter time.Duration
	Err        error
}

// NewClient returns an HTTP client able to hold n connections to one host
// at once.
func NewClient(n int) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConns: n, MaxIdleConnsPerHost: n, MaxConnsPerHost: 0, IdleConnTimeout: 30 * time.Second,
	}}
}

// Post sends one delivery to url with the callers' bearer token.
func Post(c *http.Client, url string, d Delivery) Result {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.Body))
	if err != nil {
		return Result{Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+AuthToken)
	for k, v := range d.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return Result{Err: err, Duration: time.Since(start), Attempts: 1}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := Result{Status: resp.StatusCode, Body: b, Duration: time.Since(start), Attempts: 1}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		r.RetryAfter = time.Duration(s) * time.Second
	}
	_ = json.Unmarshal(b, &r.Reply)
	return r
}

// Deliver posts like a retrying sender (the Sensor's retryStrategy, the
// Rollouts webhook's retries): a 5xx or a transport error is retried after
// Retry-After (at least 100 ms, at most 5 s), up to attempts times.
func Deliver(c *http.Client, url string, d Delivery, attempts int) Result {
	var r Result
	for i := 1; i <= attempts; i++ {
		r = Post(c, url, d)
		r.Attempts = i
		if r.Err == nil && r.Status < 500 {
			return r
		}
		if i == attempts {
			break
		}
		time.Sleep(min(max(r.RetryAfter, 100*time.Millisecond), 5*time.Second))
	}
	return r
}

// helloMain is the smallest func-go-like process: a net/http server that
// answers its health checks. Its start-up is the floor a Go process
// reaches on this machine.
const helloMain = `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) }
	http.HandleFunc("/health/liveness", ok)
	http.HandleFunc("/health/readiness", ok)
	ln, err := net.Listen("tcp", os.Getenv("LISTEN_ADDRESS"))
	if err != nil {
		os.Exit(1)
	}
	fmt.Println("http://" + ln.Addr().String()) // the announcement internal/proc reads
	if err := http.Serve(ln, nil); err != nil {
		os.Exit(1)
	}
}
`

// BuildHello builds the minimal net/http server (helloMain) into
// dir/hello-server.
func BuildHello(dir string) (string, error) {
	// A module of its own, so the floor links nothing of the function's;
	// the command sits in a directory named like the binary because
	// proc.Build names its output after the package's directory.
	src := filepath.Join(dir, "hello")
	cmd := filepath.Join(src, "hello-server")
	if err := os.MkdirAll(cmd, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(cmd, "main.go"), []byte(helloMain), 0o644); err != nil {
		return "", err
	}
	return proc.Build(context.Background(), src, dir, "./hello-server")
}
