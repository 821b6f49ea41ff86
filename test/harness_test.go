// Package test holds the end-to-end tests: the function built as a real
// process (func-go in HTTP mode, as the func scaffolding runs it), real HTTP
// from a client or the CloudEvents SDK, and real HTTP from the function to
// the Atlassian emulator.
package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"function/internal/emulator"
)

// binary is the function built once for all tests.
var binary string

func TestMain(m *testing.M) {
	// The fault matrix's cases mostly wait (backoff, Retry-After); run more
	// of them at once than there are cores, unless -parallel was given.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}
	dir, err := os.MkdirTemp("", "rollback-incident-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "rollback-incident")
	build := exec.Command("go", "build", "-o", binary, "./cmd/rollback-incident")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build function:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testToken   = "e2e-bearer-token-3f1c"
	testCluster = "prod-eu-1"
)

// env is one running function process with its own emulator.
type env struct {
	t      *testing.T
	emu    *emulator.Emulator
	emuTS  *httptest.Server
	url    string // the function's base URL
	logs   *syncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// kill ends the process at once (SIGKILL), as an OOM kill or a node loss
// would, and waits for it to be gone.
func (e *env) kill() {
	e.t.Helper()
	_ = e.cmd.Process.Kill()
	<-e.exited
}

// start runs a function process against a fresh emulator. extra overrides
// or adds environment variables ("KEY=" removes one).
func start(t *testing.T, extra ...string) *env {
	t.Helper()
	emu, ts := newEmulator(t)
	return startWith(t, emu, ts, extra...)
}

func newEmulator(t *testing.T) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	return newEmulatorWith(t, emulator.Options{})
}

// newEmulatorWith starts an emulator with the test projects and opts.
func newEmulatorWith(t *testing.T, opts emulator.Options) (*emulator.Emulator, *httptest.Server) {
	t.Helper()
	opts.Projects = map[string][]string{"OPS": {"Incident", "Task", "Bug"}, "SRE": {"Incident"}, "SECRET": {"Incident"}}
	if opts.BearerToken == "" {
		opts.BearerToken = dcToken
	}
	emu := emulator.New(opts)
	ts := httptest.NewServer(emu)
	emu.SetBaseURL(ts.URL)
	t.Cleanup(ts.Close)
	return emu, ts
}

// startWith runs a function process against an existing emulator, e.g. a
// second replica, or a restarted process, and waits until it is ready.
func startWith(t *testing.T, emu *emulator.Emulator, ts *httptest.Server, extra ...string) *env {
	t.Helper()
	e := launch(t, emu, ts, extra...)
	waitReady(t, e, 20*time.Second)
	return e
}

// startWithoutWaiting runs a process and waits only until it serves (it
// may not be ready).
func startWithoutWaiting(t *testing.T, emu *emulator.Emulator, ts *httptest.Server, extra ...string) *env {
	t.Helper()
	e := launch(t, emu, ts, extra...)
	waitHealth(t, e, "/health/liveness", 20*time.Second)
	return e
}

func waitReady(t *testing.T, e *env, d time.Duration) {
	t.Helper()
	waitHealth(t, e, "/health/readiness", d)
}

func waitHealth(t *testing.T, e *env, path string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(e.url + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-e.exited:
			t.Fatalf("function exited:\n%s", e.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s not 200 within %v:\n%s", path, d, e.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launch starts a function process and waits until it serves. The port
// is picked by listening on :0 and closing; another process may take it
// in between, so a start that fails to bind is repeated on a new port.
func launch(t *testing.T, emu *emulator.Emulator, ts *httptest.Server, extra ...string) *env {
	t.Helper()
retry:
	for try := 1; ; try++ {
		e := launchOnce(t, emu, ts, extra...)
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get(e.url + "/health/liveness")
			if err == nil {
				resp.Body.Close()
				return e
			}
			select {
			case <-e.exited:
				if try < 5 && strings.Contains(e.logs.String(), "address already in use") {
					continue retry
				}
				t.Fatalf("function exited:\n%s", e.logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("function not serving within 20 s:\n%s", e.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func launchOnce(t *testing.T, emu *emulator.Emulator, ts *httptest.Server, extra ...string) *env {
	t.Helper()
	addr := freeAddr(t)
	vars := map[string]string{
		"JIRA_URL":              ts.URL,
		"ATLASSIAN_EMAIL":       emulator.DefaultEmail,
		"ATLASSIAN_API_TOKEN":   emulator.DefaultAPIToken,
		"AUTH_TOKEN":            testToken,
		"CLUSTER_NAME":          testCluster,
		"JIRA_ALLOWED_PROJECTS": "OPS,SRE",
		"LISTEN_ADDRESS":        addr,
		"ATLASSIAN_TIMEOUT":     "3s",
		"REQUEST_DEADLINE":      "8s",
	}
	if dataCenter() {
		// The same tests against Jira Data Center and Confluence v1: see
		// TestDataCenterSuite.
		delete(vars, "ATLASSIAN_EMAIL")
		delete(vars, "ATLASSIAN_API_TOKEN")
		vars["ATLASSIAN_DEPLOYMENT"] = "datacenter"
		vars["ATLASSIAN_BEARER_TOKEN"] = dcToken
		vars["CONFLUENCE_URL"] = ts.URL
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			delete(vars, k)
		} else {
			vars[k] = v
		}
	}
	e := &env{t: t, emu: emu, emuTS: ts, url: "http://" + addr, logs: &syncBuffer{}}
	e.cmd = exec.Command(binary)
	e.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range vars {
		e.cmd.Env = append(e.cmd.Env, k+"="+v)
	}
	e.cmd.Stdout, e.cmd.Stderr = e.logs, e.logs
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	e.exited = exited
	go func() { _ = e.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = e.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = e.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("function output:\n%s", e.logs.String())
		}
	})
	return e
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// reply mirrors the function's JSON reply.
type reply struct {
	Status           string `json:"status"`
	Reason           string `json:"reason"`
	Fingerprint      string `json:"fingerprint"`
	JiraKey          string `json:"jiraKey"`
	JiraURL          string `json:"jiraUrl"`
	ConfluencePageID string `json:"confluencePageId"`
	ConfluenceURL    string `json:"confluenceUrl"`
}

type result struct {
	status int
	header http.Header
	body   []byte
	reply  reply
}

// post sends body with headers (Authorization added unless given).
func (e *env) post(body []byte, headers map[string]string) result {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) result {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.reply)
	return r
}

// postmortems returns the emulator's postmortem pages (not the homepages).
func (e *env) postmortems() []emulator.Page {
	var out []emulator.Page
	for _, p := range e.emu.Pages() {
		if strings.HasPrefix(p.Title, "Postmortem ") {
			out = append(out, p)
		}
	}
	return out
}

// logLines returns the function's JSON log lines.
func (e *env) logLines() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../testdata/fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// postQuiet is post for goroutines: it never calls t.Fatal, and reports a
// transport error as status 0.
func (e *env) postQuiet(body []byte, headers map[string]string) result {
	req, err := http.NewRequest(http.MethodPost, e.url+"/", bytes.NewReader(body))
	if err != nil {
		return result{body: []byte(err.Error())}
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.reply)
	return r
}

// dataCenter reports whether this run targets the Data Center variants.
func dataCenter() bool { return os.Getenv("RBI_TEST_DEPLOYMENT") == "datacenter" }

// description is the issue's description in whichever format it has.
func description(is emulator.Issue) string {
	if is.DescriptionWiki != "" {
		return is.DescriptionWiki
	}
	return string(is.Description)
}

// route names an emulator route (for faults and call counts) in the
// deployment under test.
func route(op string) string {
	cloud := map[string]string{
		"create issue": "POST /rest/api/3/issue",
		"create page":  "POST /wiki/api/v2/pages",
		"remote link":  "POST /rest/api/3/issue/{issueIdOrKey}/remotelink",
	}
	dc := map[string]string{
		"create issue": "POST /rest/api/2/issue",
		"create page":  "POST /rest/api/content",
		"remote link":  "POST /rest/api/2/issue/{issueIdOrKey}/remotelink",
	}
	if dataCenter() {
		return dc[op]
	}
	return cloud[op]
}
