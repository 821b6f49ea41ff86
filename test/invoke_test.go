package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"gopkg.in/yaml.v3"

	"function/internal/emulator"
)

// The func CLI's invoke code (knative.dev/func pkg/functions/invoke.go)
// cannot be imported here: the module brings in Kubernetes, container and
// buildpack libraries. So these tests send exactly the requests it sends,
// from func v0.49.2 (the same in v0.50.1, which only adds CloudEvent
// extensions):
//
//   - format http (func.yaml's `invoke: http`), sendHttp: POST to the
//     instance's route with the data as the body and one header of its own,
//     Content-Type (--content-type, default application/json), through a
//     plain http.Client. --file's content is sent as it is; without --file
//     and --data the body is {"message":"Hello World"}. --id, --source and
//     --type are not sent. There is no way to add a header: no
//     Authorization.
//   - format cloudevent (-f cloudevent), sendEvent: the CloudEvents SDK
//     (sdk-go v2.16.2 in func v0.49.2, as here) sends a binary-mode event:
//     source /boson/fn, type boson.fn, the id of --id (default "", so the
//     SDK client puts a UUID), data the same bytes with datacontenttype
//     --content-type.
//
// The route of a `func run` instance is http://localhost:<port>/
// (pkg/functions/instances.go).
const (
	funcInvokeSource      = "/boson/fn"
	funcInvokeType        = "boson.fn"
	funcInvokeContentType = "application/json"
	funcInvokeDefaultData = `{"message":"Hello World"}`
)

// funcInvokeHTTP sends what `func invoke --file F` sends to an `invoke:
// http` function (func's sendHttp) and returns the status and body.
func funcInvokeHTTP(t *testing.T, route string, data []byte) (int, []byte) {
	t.Helper()
	client := http.Client{Timeout: time.Minute}
	req, err := http.NewRequestWithContext(context.Background(), "POST", route, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Content-Type", funcInvokeContentType)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("func invoke: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// funcInvokeCloudEvent sends what `func invoke -f cloudevent --file F`
// sends (func's sendEvent) and returns the reply event, if any, and the
// SDK's result.
func funcInvokeCloudEvent(t *testing.T, route string, data []byte) (*cloudevents.Event, cloudevents.Result) {
	t.Helper()
	event := cloudevents.NewEvent()
	event.SetID("") // func invoke's --id default
	event.SetSource(funcInvokeSource)
	event.SetType(funcInvokeType)
	if err := event.SetData(funcInvokeContentType, data); err != nil {
		t.Fatal(err)
	}
	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(route), cloudevents.WithRoundTripper(http.DefaultTransport))
	if err != nil {
		t.Fatal(err)
	}
	return c.Request(cloudevents.ContextWithTarget(context.Background(), route), event)
}

// localProfile runs scripts/func-run-local.sh (the README's local profile)
// with a stand-in for the func CLI that records its arguments, and returns
// the environment that `func run` would give the function: func.yaml's
// run.envs with the script's -e additions and removals, interpolated.
func localProfile(t *testing.T, emulatorURL string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "func-args")
	stub := filepath.Join(dir, "func")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$FUNC_ARGS\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "../scripts/func-run-local.sh")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "FUNC=" + stub, "FUNC_ARGS=" + argsFile, "EMULATOR_URL=" + emulatorURL}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/func-run-local.sh: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatalf("the script did not run func: %v", err)
	}
	args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if len(args) < 2 || args[0] != "run" || !slices.Contains(args, "--builder=host") {
		t.Fatalf("the script runs func %q, want func run --builder=host …", args)
	}
	var flags []string
	for i := 1; i < len(args); i++ {
		if args[i] == "-e" && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return funcRunEnv(t, flags)
}

// funcRunEnv is what func v0.49.2 gives a host-run function from func.yaml
// and `func run -e` flags: cmd/deploy.go applyEnvs (knative client
// util.OrderedMapAndRemovalListFromArray: NAME=VALUE sets, replacing an
// entry of that name in place; NAME- removes one and fails if there is
// none), then pkg/functions Interpolate ({{ env:X }} from func's own
// environment, an error if X is unset; anything else, {{ secret:… }}
// included, literally). The shell's own environment, LISTEN_ADDRESS and PWD
// come on top (runner.go buildRunnerEnv); the test's shell exports nothing
// else.
func funcRunEnv(t *testing.T, flags []string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../func.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Run struct {
			Envs []funcEnv `yaml:"envs"`
		} `yaml:"run"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("func.yaml: %v", err)
	}
	envs := f.Run.Envs
	for _, flag := range flags {
		name, value, set := strings.Cut(flag, "=")
		i := slices.IndexFunc(envs, func(e funcEnv) bool {
			return e.Name == strings.TrimSuffix(name, "-") && (set || strings.HasSuffix(name, "-"))
		})
		switch {
		case set && i >= 0:
			envs[i].Value = &value
		case set:
			envs = append(envs, funcEnv{name, &value})
		case !strings.HasSuffix(name, "-"):
			t.Fatalf("func run -e %q: func wants NAME=VALUE or NAME-", flag)
		case i < 0:
			t.Fatalf("func run -e %q: func fails, there is no %s in func.yaml to remove", flag, strings.TrimSuffix(name, "-"))
		default:
			envs = slices.Delete(envs, i, i+1)
		}
	}
	out := map[string]string{}
	for _, e := range envs {
		if e.Value == nil {
			continue
		}
		v := *e.Value
		if ref, ok := strings.CutPrefix(v, "{{"); ok {
			kind, name, _ := strings.Cut(strings.TrimSpace(strings.TrimSuffix(ref, "}}")), ":")
			if strings.TrimSpace(kind) == "env" {
				t.Fatalf("func run: %s=%s needs %s exported in the shell; the local profile must not", e.Name, v, strings.TrimSpace(name))
			}
		}
		out[e.Name] = v
	}
	return out
}

// funcEnv is one entry of func.yaml's run.envs; a nil Value is left out.
type funcEnv struct {
	Name  string  `yaml:"name"`
	Value *string `yaml:"value"`
}

// harnessDefaults are the variables launch sets unless told otherwise;
// func run sets none of them, so the local profile's process must not have
// them either.
var harnessDefaults = []string{"JIRA_URL", "ATLASSIAN_EMAIL", "ATLASSIAN_API_TOKEN", "AUTH_TOKEN", "CLUSTER_NAME",
	"JIRA_ALLOWED_PROJECTS", "ATLASSIAN_TIMEOUT", "REQUEST_DEADLINE"}

// startLocalProfile starts the function with exactly the environment
// `scripts/func-run-local.sh` gives it through func run.
func startLocalProfile(t *testing.T) *env {
	t.Helper()
	emu, ts := newEmulator(t)
	profile := localProfile(t, ts.URL)
	var extra []string
	for _, k := range harnessDefaults {
		if _, ok := profile[k]; !ok {
			extra = append(extra, k+"=")
		}
	}
	for k, v := range profile {
		extra = append(extra, k+"="+v)
	}
	return startWith(t, emu, ts, extra...)
}

// funcRoute is the route func invoke uses for a local instance.
func funcRoute(t *testing.T, e *env) string {
	t.Helper()
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + net.JoinHostPort("localhost", u.Port()) + "/"
}

// TestFuncInvokeLocalProfile: with the local profile of the README
// (scripts/func-run-local.sh), `func invoke --file <fixture>` opens an
// incident in the emulator, `func invoke -f cloudevent --file <fixture>`
// too and prints the reply event, and func's default test data gets a 400
// that says what is expected.
func TestFuncInvokeLocalProfile(t *testing.T) {
	t.Parallel()
	e := startLocalProfile(t)
	route := funcRoute(t, e)

	// func invoke --file testdata/fixtures/rollout-notification-webhook.json
	status, body := funcInvokeHTTP(t, route, fixture(t, "rollout-notification-webhook.json"))
	var r reply
	if err := json.Unmarshal(body, &r); err != nil || status != http.StatusOK || r.Status != "created" || r.JiraKey == "" {
		t.Fatalf("func invoke --file rollout-notification-webhook.json: %d %s (func invoke fails on anything above 299)", status, body)
	}
	is := findIssue(t, e, r.JiraKey)
	if !strings.Contains(is.Summary, "payments/checkout-api") || is.Project != "OPS" {
		t.Errorf("issue %s: project %s, summary %q; want OPS and the rollout payments/checkout-api", is.Key, is.Project, is.Summary)
	}
	if len(e.postmortems()) != 1 || len(e.emu.RemoteLinks(r.JiraKey)) != 1 {
		t.Errorf("emulator: %d postmortems, %d remote links on %s; want 1 each", len(e.postmortems()), len(e.emu.RemoteLinks(r.JiraKey)), r.JiraKey)
	}

	// func invoke -f cloudevent --file testdata/fixtures/workflow-failed.json
	ev, res := funcInvokeCloudEvent(t, route, fixture(t, "workflow-failed.json"))
	if cloudevents.IsUndelivered(res) || !cloudevents.IsACK(res) || ev == nil {
		t.Fatalf("func invoke -f cloudevent: %v, reply event %v", res, ev)
	}
	var ce reply
	if err := json.Unmarshal(ev.Data(), &ce); err != nil || ce.Status != "created" || ce.JiraKey == "" || ce.JiraKey == r.JiraKey {
		t.Fatalf("func invoke -f cloudevent: reply %s, want a second incident", ev.Data())
	}
	if ev.Type() != "dev.rollback-incident.result" {
		t.Errorf("reply event type %q", ev.Type())
	}
	findIssue(t, e, ce.JiraKey)

	// func invoke, with func's default data: not an event. func shows
	// nothing of an error reply, so the answer is a 2xx saying what to send.
	status, body = funcInvokeHTTP(t, route, []byte(funcInvokeDefaultData))
	var def reply
	_ = json.Unmarshal(body, &def)
	if status != http.StatusOK || def.Status != "ignored" || !strings.Contains(def.Reason, "func invoke --file") {
		t.Errorf("func invoke (default data): %d %s; want 200 ignored saying what to send", status, body)
	}
	// func invoke -f cloudevent, default data: acknowledged, and func
	// prints the reply event, which says the same.
	_, res = funcInvokeCloudEvent(t, route, []byte(funcInvokeDefaultData))
	if !cloudevents.IsACK(res) {
		t.Errorf("func invoke -f cloudevent (default data): %v, want acknowledged", res)
	}
	if n := len(e.emu.Issues()); n != 2 {
		t.Errorf("%d issues, want 2", n)
	}

	// The log is complete once the process has exited.
	e.interrupt()
	if !logged(e, "event ignored", def.Reason) {
		t.Errorf("the function's log does not say what func's default data is:\n%s", e.output())
	}
	if !logged(e, "ALLOW_UNAUTHENTICATED=true: anyone who can reach this function can open incidents", "") {
		t.Errorf("the local profile runs unauthenticated without saying so:\n%s", e.output())
	}
}

// TestFuncInvokeNeedsLocalProfile: the deployed configuration (AUTH_TOKEN
// set) refuses func invoke's request, which has no Authorization header:
// this is why the local profile turns authentication off.
func TestFuncInvokeNeedsLocalProfile(t *testing.T) {
	t.Parallel()
	e := start(t)
	status, body := funcInvokeHTTP(t, funcRoute(t, e), fixture(t, "rollout-notification-webhook.json"))
	if status != http.StatusUnauthorized {
		t.Errorf("func invoke against an AUTH_TOKEN function: %d %s, want 401", status, body)
	}
	if n := len(e.emu.Issues()); n != 0 {
		t.Errorf("%d issues opened by an unauthenticated request", n)
	}
}

// TestOneLogFormat: everything the function process writes, func-go's own
// lines included, is one JSON object per line with slog's keys (time in RFC
// 3339, level, msg), at LOG_LEVEL.
func TestOneLogFormat(t *testing.T) {
	t.Parallel()
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			e := start(t, "LOG_LEVEL="+level)
			e.post(fixture(t, "rollout-notification-webhook.json"), nil)
			e.interrupt()
			funcGo := 0
			for _, line := range strings.Split(strings.TrimSpace(e.output()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Errorf("not a JSON line: %q", line)
					continue
				}
				ts, _ := m["time"].(string)
				if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
					t.Errorf("time %v is not RFC 3339: %s", m["time"], line)
				}
				lvl, _ := m["level"].(string)
				if !slices.Contains([]string{"DEBUG", "INFO", "WARN", "ERROR"}, lvl) || (level == "info" && lvl == "DEBUG") {
					t.Errorf("level %v at LOG_LEVEL=%s: %s", m["level"], level, line)
				}
				msg, _ := m["msg"].(string)
				if msg == "" || m["message"] != nil {
					t.Errorf("no msg: %s", line)
				}
				if strings.HasPrefix(msg, "Function implements ") || msg == "function starting" || msg == "function stopping" {
					funcGo++
				}
			}
			// func-go v0.22.0 logs four "Function implements …" lines at
			// info, and "function starting" / "function stopping" at debug.
			if want := map[string]int{"info": 4, "debug": 6}[level]; funcGo != want {
				t.Errorf("%d of func-go's lines at LOG_LEVEL=%s, want %d:\n%s", funcGo, level, want, e.output())
			}
		})
	}
}

// TestConfigurationErrorOnce: a configuration error is printed once (by
// main, as the func scaffolding's main does), not also as func-go's
// "function error" line.
func TestConfigurationErrorOnce(t *testing.T) {
	t.Parallel()
	out, err := runToExit(t, "LISTEN_ADDRESS=127.0.0.1:0")
	if err == nil {
		t.Fatalf("started without JIRA_URL:\n%s", out)
	}
	if n := strings.Count(out, "JIRA_URL: is required"); n != 1 {
		t.Errorf("the configuration error is printed %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, `"function error"`) {
		t.Errorf("func-go's copy of the error is still printed:\n%s", out)
	}
}

func findIssue(t *testing.T, e *env, key string) (is emulator.Issue) {
	t.Helper()
	for _, i := range e.emu.Issues() {
		if i.Key == key {
			return i
		}
	}
	t.Fatalf("issue %s is not in the emulator", key)
	return is
}

// logged reports whether the function logged msg (with reason, if given).
func logged(e *env, msg, reason string) bool {
	for _, l := range e.logLines() {
		if l["msg"] == msg && (reason == "" || l["reason"] == reason) {
			return true
		}
	}
	return false
}
