// Package deploy holds the tests of the deployment configuration in deploy/:
// every manifest is decoded strictly into the upstream Go API types, the
// kustomizations are built, func.yaml is validated against the func schema,
// and the notification templates and the Sensor trigger are executed by the
// real Argo code (notifications-engine v0.5.0, Argo Events v1.9.6) against
// the function running as a process next to the Atlassian emulator.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"function/internal/proc"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// repoRoot is the function project (the root module); deploy/ is this
// module's directory.
const repoRoot = ".."

// functionSource is where the function and the emulator are built from:
// the root module, or $DEPLOY_TEST_FUNCTION_SRC (e.g. a clean checkout of
// another revision of the function).
func functionSource() string {
	if d := os.Getenv("DEPLOY_TEST_FUNCTION_SRC"); d != "" {
		return d
	}
	return repoRoot
}

// Addresses the manifests call, as they are written (never rewritten by the
// tests): the forward proxy below maps them to local processes.
const (
	functionHost     = "rollback-incident.rollback-incident.svc.cluster.local"
	webhookEventHost = "rollouts-webhook-eventsource-svc.argo-events.svc:12000"
)

// ---- strict YAML ---------------------------------------------------------

// yamlDocs splits a (multi-document) YAML file into its documents, skipping
// empty ones.
func yamlDocs(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return splitYAML(t, path, b)
}

func splitYAML(t *testing.T, name string, b []byte) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var probe any
		if err := yaml.Unmarshal(d, &probe); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if probe != nil {
			docs = append(docs, d)
		}
	}
}

// strictDecode converts YAML (or JSON) to JSON the way kubectl does
// (sigs.k8s.io/yaml) and decodes it into v rejecting unknown fields,
// duplicate keys and trailing data.
func strictDecode(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the document")
	}
	return nil
}

func mustStrict(t *testing.T, name string, doc []byte, v any) {
	t.Helper()
	if err := strictDecode(doc, v); err != nil {
		t.Fatalf("%s: strict decode into %T: %v", name, v, err)
	}
}

// loadOne strictly decodes the single document of a file.
func loadOne(t *testing.T, path string, v any) {
	t.Helper()
	docs := yamlDocs(t, path)
	if len(docs) != 1 {
		t.Fatalf("%s: want 1 document, got %d", path, len(docs))
	}
	mustStrict(t, path, docs[0], v)
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func compactJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ---- the function and the emulator as processes ---------------------------

var (
	buildOnce     sync.Once
	buildDir      string
	fnBin, emuBin string
	buildErr      error
)

// binaries builds cmd/rollback-incident (the func-go HTTP entry, as the func
// scaffolding runs it) and cmd/atlassian-emulator from the root module once.
func binaries(t *testing.T) (function, emulator string) {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "deploy-test-bin"); buildErr != nil {
			return
		}
		ctx := context.Background()
		if fnBin, buildErr = proc.Build(ctx, functionSource(), buildDir, "./cmd/rollback-incident"); buildErr != nil {
			return
		}
		emuBin, buildErr = proc.Build(ctx, functionSource(), buildDir, "./cmd/atlassian-emulator")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return fnBin, emuBin
}

const testToken = "deploy-test-token-7c1e0b5d"

// stack is one emulator process and one function process using it.
type stack struct {
	t        *testing.T
	emuURL   string
	fnURL    string
	fn       *proc.Process
	requests int
}

// startStack runs the Atlassian emulator and the function as processes and
// routes the function's cluster-local host (as written in the manifests) to
// it through the test proxy.
func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackWith(t, stackOptions{})
}

// stackOptions adds emulator flags (e.g. its Backstage catalog) and
// function environment variables (e.g. BACKSTAGE_URL) to a stack.
type stackOptions struct {
	emulatorArgs []string
	functionEnv  []string
}

func startStackWith(t *testing.T, o stackOptions) *stack {
	t.Helper()
	fnBin, emuBin := binaries(t)
	emu := startProcess(t, "emulator", proc.Options{Path: emuBin,
		Args: append([]string{"-listen", "127.0.0.1:0"}, o.emulatorArgs...), Env: []string{"PATH=" + os.Getenv("PATH")}})
	s := &stack{t: t, emuURL: emu.URL}
	s.fn = startProcess(t, "function", proc.Options{Path: fnBin, Dir: t.TempDir(), Env: append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"JIRA_URL=" + s.emuURL,
		"ATLASSIAN_EMAIL=bot@example.com",
		"ATLASSIAN_API_TOKEN=emulator-token",
		"AUTH_TOKEN=" + testToken,
		"CLUSTER_NAME=deploy-test",
		"ATLASSIAN_TIMEOUT=2s",
		"REQUEST_DEADLINE=4s",
		"LOG_LEVEL=debug",
	}, o.functionEnv...)})
	s.fnURL = s.fn.URL
	if err := s.fn.Ready(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	clusterProxy.route(t, functionHost, s.fnURL)
	return s
}

// startProcess runs a process until the test ends (SIGINT, then SIGKILL
// after 10 s), showing its output if the test failed.
func startProcess(t *testing.T, name string, o proc.Options) *proc.Process {
	t.Helper()
	p, err := proc.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// emuIssue is the part of the emulator's issue view the tests read.
type emuIssue struct {
	Key     string   `json:"key"`
	Project string   `json:"project"`
	Summary string   `json:"summary"`
	Labels  []string `json:"labels"`
}

type emuPage struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// state reads GET /_emulator/state.
func (s *stack) state() (issues []emuIssue, pages []emuPage) {
	s.t.Helper()
	resp, err := http.Get(s.emuURL + "/_emulator/state")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Issues []emuIssue `json:"issues"`
		Pages  []emuPage  `json:"pages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		s.t.Fatal(err)
	}
	return v.Issues, v.Pages
}

// requireOneIncident asserts the emulator holds exactly one issue and one
// postmortem page, and returns the issue.
func (s *stack) requireOneIncident() emuIssue {
	s.t.Helper()
	issues, all := s.state()
	var pages []emuPage // the space homepage is not a postmortem
	for _, p := range all {
		if strings.HasPrefix(p.Title, "Postmortem") {
			pages = append(pages, p)
		}
	}
	if len(issues) != 1 || len(pages) != 1 {
		s.t.Fatalf("want exactly 1 issue and 1 page, got %d issues %+v and %d pages %+v\nfunction log:\n%s",
			len(issues), issues, len(pages), pages, s.fn.Output())
	}
	return issues[0]
}

// admin calls the emulator's admin API (outages).
func (s *stack) admin(method, path, body string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.emuURL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		s.t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
}

// metric reads one series of the function's GET /metrics (Prometheus text
// format), named with its labels as exposed, e.g.
// `rollback_incident_attempts_total{outcome="done"}`; absent is 0.
func (s *stack) metric(series string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.fnURL + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				s.t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	if err := sc.Err(); err != nil {
		s.t.Fatal(err)
	}
	return 0
}

// functionReply is the function's JSON reply.
type functionReply struct {
	Status      string `json:"status"`
	Reason      string `json:"reason"`
	Fingerprint string `json:"fingerprint"`
	JiraKey     string `json:"jiraKey"`
}

// ---- the cluster proxy ------------------------------------------------------

// proxy is an HTTP forward proxy standing in for cluster DNS: the Argo code
// under test calls the URLs exactly as the manifests write them
// (http://rollback-incident.rollback-incident.svc.cluster.local, the
// EventSource Service), Go's ProxyFromEnvironment sends those requests here,
// and the proxy forwards them to the local process registered for the host.
// An unknown host is a 502 and fails the test that caused it.
type proxy struct {
	srv *httptest.Server

	mu       sync.Mutex
	routes   map[string]string
	exchange []exchange
	unknown  []string
	// failing answers the next requests to a host with a status of its own,
	// without forwarding them: what Knative's activator answers while no
	// pod of the revision becomes ready.
	failing map[string]failure
}

type failure struct {
	status, left int
}

// exchange is one proxied request and its response.
type exchange struct {
	Host    string
	Method  string
	Path    string
	Header  http.Header
	Body    []byte
	Status  int
	RHeader http.Header
	RBody   []byte
}

var clusterProxy = &proxy{routes: map[string]string{}}

func (p *proxy) start() {
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
}

// route maps a cluster host (host or host:port) to a local base URL for the
// rest of the test.
func (p *proxy) route(t *testing.T, host, target string) {
	p.mu.Lock()
	p.routes[host] = target
	p.mu.Unlock()
	t.Cleanup(func() {
		p.mu.Lock()
		delete(p.routes, host)
		delete(p.failing, host)
		p.mu.Unlock()
	})
}

// takeFailure returns the status to answer this request to host with
// instead of forwarding it, or 0.
func (p *proxy) takeFailure(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	host = strings.TrimSuffix(host, ":80")
	f := p.failing[host]
	if f.left <= 0 {
		return 0
	}
	f.left--
	p.failing[host] = f
	return f.status
}

// fail answers the next n requests to host with status.
func (p *proxy) fail(host string, status, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing == nil {
		p.failing = map[string]failure{}
	}
	p.failing[host] = failure{status: status, left: n}
}

// take returns and forgets the exchanges seen so far for host.
func (p *proxy) take(host string) []exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out, keep []exchange
	for _, e := range p.exchange {
		if e.Host == host {
			out = append(out, e)
		} else {
			keep = append(keep, e)
		}
	}
	p.exchange = keep
	return out
}

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	host := r.URL.Host
	p.mu.Lock()
	target, ok := p.routes[host]
	if !ok {
		target, ok = p.routes[strings.TrimSuffix(host, ":80")]
	}
	if !ok {
		p.unknown = append(p.unknown, host)
	}
	p.mu.Unlock()
	if !ok || r.URL.Scheme != "http" {
		http.Error(w, "test proxy: no route for "+r.URL.String(), http.StatusBadGateway)
		return
	}
	body, _ := io.ReadAll(r.Body)
	rec := httptest.NewRecorder()
	if status := p.takeFailure(host); status != 0 {
		http.Error(rec, http.StatusText(status), status)
	} else {
		u, _ := url.Parse(target)
		rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = host
		}}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(rec, r)
	}
	ex := exchange{Host: host, Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body,
		Status: rec.Code, RHeader: rec.Header().Clone(), RBody: rec.Body.Bytes()}
	p.mu.Lock()
	p.exchange = append(p.exchange, ex)
	p.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func TestMain(m *testing.M) {
	clusterProxy.start()
	// Both the notifications-engine webhook transport and the Argo Events
	// HTTP trigger client use http.ProxyFromEnvironment; loopback addresses
	// (the emulator's admin API, the processes' health checks) bypass it.
	os.Setenv("HTTP_PROXY", clusterProxy.srv.URL)
	os.Unsetenv("http_proxy")
	os.Unsetenv("NO_PROXY")
	os.Unsetenv("no_proxy")
	code := m.Run()
	clusterProxy.srv.Close()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
