// Package test holds the end-to-end tests: the function built as a real
// process (func-go in HTTP mode, as the func scaffolding runs it), real HTTP
// from a client or the CloudEvents SDK, and real HTTP from the function to
// the Atlassian emulator.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"function/internal/adfschema"
	"function/internal/emulator"
	"function/internal/proc"
)

// binary is the function built once for all tests.
var binary string

func TestMain(m *testing.M) {
	// Most tests wait (outages, backoff, Retry-After) on their own function
	// process and emulator: run more of them at once than there are cores,
	// unless -parallel was given.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "6")
	}
	// The emulators of all tests run in this process under the race
	// detector; collecting garbage less often leaves them more CPU on a
	// 2-core machine (the heap stays small either way).
	debug.SetGCPercent(400)
	dir, err := os.MkdirTemp("", "rollback-incident-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = proc.Build(context.Background(), "", dir, "./cmd/rollback-incident")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testToken   = "e2e-bearer-token-3f1c"
	testCluster = "prod-eu-1"
	dcToken     = "dc-personal-access-token"
)

// deployment is the Atlassian flavour a test runs against: Cloud (REST v3,
// ADF, Confluence v2, email and API token) or Data Center (REST v2, wiki
// markup, the Confluence v1 content API without /wiki, a personal access
// token). The emulator speaks both.
type deployment struct {
	name       string
	dataCenter bool
}

var (
	cloud       = deployment{name: "cloud"}
	dataCenter  = deployment{name: "datacenter", dataCenter: true}
	deployments = []deployment{cloud, dataCenter}
)

// eachDeployment runs f as a parallel subtest per deployment.
func eachDeployment(t *testing.T, f func(t *testing.T, d deployment)) {
	t.Helper()
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// env is one running function process with its own emulator.
type env struct {
	t     *testing.T
	d     deployment
	emu   *emulator.Emulator
	emuTS *httptest.Server
	url   string // the function's base URL
	p     *proc.Process
}

// output is what the process has written so far.
func (e *env) output() string { return e.p.Output() }

// kill ends the process at once (SIGKILL), as an OOM kill or a node loss
// would, and waits for it to be gone.
func (e *env) kill() { e.p.Kill() }

// interrupt sends SIGINT and waits for the process to exit: its log is
// complete then.
func (e *env) interrupt() {
	_ = e.p.Signal(os.Interrupt)
	<-e.p.Exited()
}

// start runs a Cloud function process against a fresh emulator. extra
// overrides or adds environment variables ("KEY=" removes one).
func start(t *testing.T, extra ...string) *env { return cloud.start(t, extra...) }

func (d deployment) start(t *testing.T, extra ...string) *env {
	t.Helper()
	emu, ts := newEmulator(t)
	return d.startWith(t, emu, ts, extra...)
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

// startWith runs a Cloud function process against an existing emulator,
// e.g. a second replica or a restarted process, and waits until it is
// ready.
func startWith(t *testing.T, emu *emulator.Emulator, ts *httptest.Server, extra ...string) *env {
	t.Helper()
	return cloud.startWith(t, emu, ts, extra...)
}

func (d deployment) startWith(t *testing.T, emu *emulator.Emulator, ts *httptest.Server, extra ...string) *env {
	t.Helper()
	e := d.launch(t, emu, ts, extra...)
	if err := e.p.Ready(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	return e
}

// launch starts a function process; it serves when launch returns (it may
// not be ready).
func (d deployment) launch(t *testing.T, emu *emulator.Emulator, ts *httptest.Server, extra ...string) *env {
	t.Helper()
	vars := map[string]string{
		"JIRA_URL":              ts.URL,
		"ATLASSIAN_EMAIL":       emulator.DefaultEmail,
		"ATLASSIAN_API_TOKEN":   emulator.DefaultAPIToken,
		"AUTH_TOKEN":            testToken,
		"CLUSTER_NAME":          testCluster,
		"JIRA_ALLOWED_PROJECTS": "OPS,SRE",
		"ATLASSIAN_TIMEOUT":     "3s",
		"REQUEST_DEADLINE":      "20s", // FINISH_BUDGET 10 s: a loaded 2-core machine still answers 200
	}
	if d.dataCenter {
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
	envv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range vars {
		envv = append(envv, k+"="+v)
	}
	p, err := proc.Start(context.Background(), proc.Options{Path: binary, Env: envv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("function output:\n%s", p.Output())
		}
	})
	return &env{t: t, d: d, emu: emu, emuTS: ts, url: p.URL, p: p}
}

// runToExit runs the function with only env (entries "KEY=" left out) and
// waits up to 10 s for it to stop, returning its output and exit error.
func runToExit(t *testing.T, env ...string) (string, error) {
	t.Helper()
	vars := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for _, kv := range env {
		if !strings.HasSuffix(kv, "=") {
			vars = append(vars, kv)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := proc.Run(ctx, proc.Options{Path: binary, Env: vars})
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v:\n%s", err, out)
	}
	return out, err
}

// closedURL is an address where nothing listens: a socket bound to a port
// but not listening refuses connections, and unlike a listen-and-close
// pick the port stays this test's until it ends.
func closedURL(t *testing.T, scheme string) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, sa.(*syscall.SockaddrInet4).Port)
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
	sc := bufio.NewScanner(strings.NewReader(e.output()))
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

// description is the issue's description in whichever format it has.
func description(is emulator.Issue) string {
	if is.DescriptionWiki != "" {
		return is.DescriptionWiki
	}
	return string(is.Description)
}

// route names an emulator route (for faults and call counts) in the
// deployment d.
func (d deployment) route(op string) string {
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
	if d.dataCenter {
		return dc[op]
	}
	return cloud[op]
}

// pageURL is the address of page p in the emulator at base, as the
// function names it (reply, remote link): Cloud's /wiki + webui; on Data
// Center viewpage.action, since a postmortem's title has a colon, which
// Confluence keeps out of /display/ links.
func (d deployment) pageURL(base string, p emulator.Page) string {
	if d.dataCenter {
		return base + "/pages/viewpage.action?pageId=" + p.ID
	}
	return base + "/wiki" + p.WebUI
}

// checkDescription checks an issue's description in the deployment's
// rich-text format: ADF valid against Atlassian's schema on Cloud; on Data
// Center wiki markup only, with the facts table.
func (d deployment) checkDescription(t *testing.T, is emulator.Issue) {
	t.Helper()
	if !d.dataCenter {
		if err := adfschema.ValidateJSON(is.Description); err != nil {
			t.Errorf("%s description: %v", is.Key, err)
		}
		return
	}
	if is.DescriptionWiki == "" || len(is.Description) != 0 {
		t.Errorf("%s: want a wiki-markup description only", is.Key)
	}
	if !strings.Contains(is.DescriptionWiki, "h3. Facts") || !strings.Contains(is.DescriptionWiki, "||Cluster|prod\\-eu\\-1|") {
		t.Errorf("%s description lacks the facts:\n%s", is.Key, is.DescriptionWiki)
	}
}
