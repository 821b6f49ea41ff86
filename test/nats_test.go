package test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"function/internal/emulator"
	"function/internal/tcpproxy"
)

// jetStream runs a real NATS server with JetStream, embedded in the test,
// and returns its client URL.
func jetStream(t *testing.T) (*server.Server, string) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns, ns.ClientURL()
}

// replicas starts n function processes that share one emulator and one
// JetStream bucket, as n Knative replicas would.
func (d deployment) replicas(t *testing.T, n int, extra ...string) (*emulator.Emulator, []*env) {
	t.Helper()
	_, url := jetStream(t)
	emu, ts := newEmulator(t)
	var envs []*env
	for range n {
		envs = append(envs, d.startWith(t, emu, ts, append([]string{"NATS_URL=" + url}, extra...)...))
	}
	return emu, envs
}

// TestStormAcrossReplicas: the 500-delivery storm spread over three
// processes sharing one JetStream opens exactly one incident.
func TestStormAcrossReplicas(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		emu, envs := d.replicas(t, 3)
		checkStorm(t, emu, storm(t, envs, 500))
		for _, e := range envs {
			if strings.Contains(e.output(), "duplicates") {
				t.Errorf("with NATS the start-up log must not warn about duplicates:\n%s", e.output())
			}
		}
	})
}

// TestSearchLagNoDuplicate: Jira's search hides new issues for 60 s; the
// shared record, not the search, keeps the replicas from duplicating.
func TestSearchLagNoDuplicate(t *testing.T) {
	t.Parallel()
	emu, envs := cloud.replicas(t, 3, "REQUEST_DEADLINE=4s", "FINISH_BUDGET=3500ms")
	emu.SetSearchLag(60 * time.Second)
	checkStorm(t, emu, storm(t, envs, 150))

	// A replica killed after creating the issue, while the page is being
	// made: the redelivery to another replica finds the issue in the shared
	// record although search cannot see it yet.
	body := fixture(t, "workflow-failed.json")
	emu.InjectFault("POST /wiki/api/v2/pages", emulator.Fault{Delay: 30 * time.Second}, 1)
	go func() { envs[0].postQuiet(body, nil) }()
	waitFor(t, func() bool { return emu.Calls()["POST /wiki/api/v2/pages"] == 2 })
	envs[0].kill()
	emu.ClearFaults()
	// The dead replica's work is pending in the shared record: the other
	// replicas finish it (its lock lapses after REQUEST_DEADLINE + 5 s),
	// finding the issue in the record although search cannot see it yet.
	waitUntil(t, time.Minute, func() bool { return envs[1].opened(2) })
	r := envs[1].post(body, nil)
	if r.status != http.StatusOK || r.reply.Status != "existing" {
		t.Fatalf("redelivery: %d %s", r.status, r.body)
	}
	if n := len(emu.Issues()); n != 2 {
		t.Errorf("%d issues, want 2 (the storm's and the workflow's)", n)
	}
}

// TestStoreUnavailableFailsClosed: with the shared store down, the function
// answers 503 (the sender retries) and opens nothing, rather than risk a
// duplicate.
func TestStoreUnavailableFailsClosed(t *testing.T) {
	t.Parallel()
	ns, url := jetStream(t)
	e := start(t, "NATS_URL="+url)
	ns.Shutdown()
	r := e.post(fixture(t, "rollout-notification-webhook.json"), nil)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("%d %s", r.status, r.body)
	}
	if n := len(e.emu.Issues()); n != 0 {
		t.Errorf("%d issues opened without the store", n)
	}
}

// TestInterruptedCreateWaitsForIndex: a replica dies after Jira created the
// issue but before it learned the key; search hides the new issue. The
// other replica must not create a second issue: the rollback stays pending,
// a delivery is answered 202 waiting for the index, and once search shows
// the issue the function completes the incident by itself.
func TestInterruptedCreateWaitsForIndex(t *testing.T) {
	t.Parallel()
	emu, envs := cloud.replicas(t, 2, "REQUEST_DEADLINE=4s", "FINISH_BUDGET=3500ms")
	emu.SetSearchLag(60 * time.Second)
	body := fixture(t, "argocd-app-health-degraded.json")
	emu.InjectFault("POST /rest/api/3/issue", emulator.Fault{DelayAfter: 30 * time.Second}, 1)
	go func() { envs[0].postQuiet(body, nil) }()
	waitFor(t, func() bool { return len(emu.Issues()) == 1 })
	envs[0].kill()
	emu.ClearFaults()

	var r result
	waitUntil(t, 30*time.Second, func() bool { // until the dead replica's lock lapses
		r = envs[1].post(body, nil)
		return strings.Contains(r.reply.Reason, "search index")
	})
	if r.status != http.StatusAccepted {
		t.Errorf("%d %s, want 202 waiting for the search index", r.status, r.body)
	}
	if n := len(emu.Issues()); n != 1 {
		t.Errorf("%d issues, want 1", n)
	}
	// Once search shows the issue, the function completes the incident.
	emu.SetSearchLag(0)
	waitUntil(t, 30*time.Second, func() bool { return len(emu.Pages()) == 1 })
	if n := len(emu.Issues()); n != 1 {
		t.Errorf("%d issues, want 1", n)
	}
}

// TestStartWithNATSDown: NATS unreachable at start (an EventBus blip during
// a cold start) is no crash: the process serves, is not ready, refuses to
// take custody (503: nothing kept), and becomes ready and opens incidents
// once NATS answers.
func TestStartWithNATSDown(t *testing.T) {
	t.Parallel()
	g := tcpproxy.New(t) // refuses until NATS is up behind it
	emu, ts := newEmulator(t)
	e := cloud.launch(t, emu, ts, "NATS_URL=nats://"+g.Addr())
	body := fixture(t, "rollout-notification-webhook.json")
	if r := e.post(body, nil); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("before NATS: %d %s, want 503 with Retry-After", r.status, r.body)
	}
	resp, err := http.Get(e.url + "/health/readiness")
	if err != nil || resp.StatusCode == http.StatusOK {
		t.Fatalf("ready without NATS: %v %v", err, resp)
	}
	resp.Body.Close()
	_, natsURL := jetStream(t)
	g.SetTarget(strings.TrimPrefix(natsURL, "nats://"))
	if err := e.p.Ready(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r := e.post(body, nil); r.status != http.StatusOK || r.reply.Status != "created" {
		t.Errorf("after NATS came up: %d %s", r.status, r.body)
	}
	select {
	case <-e.p.Exited():
		t.Fatal("the function exited")
	default:
	}
}
