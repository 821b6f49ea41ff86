package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	aev1 "github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	"github.com/argoproj/argo-events/pkg/sensors/dependencies"
	"github.com/argoproj/argo-events/pkg/sensors/triggers"
	aehttp "github.com/argoproj/argo-events/pkg/sensors/triggers/http"
	aelog "github.com/argoproj/argo-events/pkg/sensors/triggers/log"
	sharedutil "github.com/argoproj/argo-events/pkg/shared/util"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func loadSensor(t *testing.T) *aev1.Sensor {
	t.Helper()
	var s aev1.Sensor
	loadOne(t, "argo-events/sensor.yaml", &s)
	return &s
}

func loadEventSource(t *testing.T, path string) *aev1.EventSource {
	t.Helper()
	var es aev1.EventSource
	loadOne(t, path, &es)
	return &es
}

// esEvent is the CloudEvent an EventSource publishes for data
// (pkg/eventsources/eventing.go: 32-hex id, type = event source type,
// source = EventSource name, subject = event name, JSON data).
func esEvent(t *testing.T, source, subject, typ string, data []byte) cloudevents.Event {
	t.Helper()
	id := uuid.New()
	e := cloudevents.NewEvent()
	e.SetID(fmt.Sprintf("%x", id[:]))
	e.SetType(typ)
	e.SetSource(source)
	e.SetSubject(subject)
	e.SetTime(time.Now())
	if err := e.SetData(cloudevents.ApplicationJSON, compactJSON(t, data)); err != nil {
		t.Fatal(err)
	}
	return e
}

// convertEvent is pkg/sensors/listener.go convertEvent.
func convertEvent(event cloudevents.Event) *aev1.Event {
	return &aev1.Event{
		Context: &aev1.EventContext{
			DataContentType: event.Context.GetDataContentType(),
			Source:          event.Context.GetSource(),
			SpecVersion:     event.Context.GetSpecVersion(),
			Type:            event.Context.GetType(),
			Time:            metav1.Time{Time: event.Context.GetTime()},
			ID:              event.Context.GetID(),
			Subject:         event.Context.GetSubject(),
		},
		Data: event.Data(),
	}
}

// useSensorSecret provides the secureHeaders value where the trigger code
// reads it: the Argo Events controller mounts every Secret a Sensor
// references at /argo-events/secrets/<name>/<key>, a path hard-coded in
// pkg/shared/util GetSecretFromVolume. The value is what
// deploy/secrets/create-secrets.sh stores: "Bearer <token>".
func useSensorSecret(t *testing.T) {
	t.Helper()
	s := loadSensor(t)
	ref := s.Spec.Triggers[0].Template.HTTP.SecureHeaders[0].ValueFrom.SecretKeyRef
	path, err := sharedutil.GetSecretVolumePath(ref)
	if err != nil {
		t.Fatal(err)
	}
	var created []string
	for d := filepath.Dir(path); d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatalf("cannot create %s (the Argo Events trigger reads secureHeaders from this fixed mount path; run the deployment tests as root): %v", path, err)
	}
	old, hadOld := os.ReadFile(path)
	if err := os.WriteFile(path, []byte("Bearer "+testToken+"\n"), 0o600); err != nil {
		t.Fatalf("cannot write %s: %v", path, err)
	}
	t.Cleanup(func() {
		if hadOld == nil {
			_ = os.WriteFile(path, old, 0o600)
		} else {
			_ = os.Remove(path)
		}
		for _, d := range created {
			_ = os.Remove(d)
		}
	})
}

// triggerResult is the outcome of one run of a trigger with its retries.
type triggerResult struct {
	event    cloudevents.Event
	err      error // what the listener's retry loop saw (nil: the message is acked as done)
	failed   error // the last attempt's error, also when the listener does not wait for it
	attempts int
	status   int
	header   http.Header
	body     []byte
	// deadLetters counts runs of the dlqTrigger (the Sensor's log line for
	// a manual replay).
	deadLetters int
}

var httpClients = sharedutil.NewStringKeyedMap[*http.Client]()

// runSensorTrigger delivers one event to a Sensor the way
// pkg/sensors/listener.go does: the dependency's filters
// (dependencies.Filter), then actionFunc: DoWithRetry(retryStrategy, or one
// step without it, triggerActions); triggerActions waits for the trigger
// only with atLeastOnce (without it the trigger runs in a goroutine, its
// error is only logged, and the retry loop sees success); triggerOne:
// ApplyTemplateParameters, the HTTP trigger's FetchResource,
// ApplyResourceParameters, Execute and ApplyPolicy; after failed retries,
// the dlqTrigger. Everything but this sequencing is the Argo Events v1.9.6
// code.
func runSensorTrigger(t *testing.T, sensor *aev1.Sensor, depName string, ce cloudevents.Event) triggerResult {
	t.Helper()
	res := triggerResult{event: ce}
	var dep *aev1.EventDependency
	for i := range sensor.Spec.Dependencies {
		if sensor.Spec.Dependencies[i].Name == depName {
			dep = &sensor.Spec.Dependencies[i]
		}
	}
	if dep == nil {
		t.Fatalf("no dependency %s", depName)
	}
	event := convertEvent(ce)
	pass, err := dependencies.Filter(event, dep.Filters, dep.FiltersLogicalOperator)
	if err != nil || !pass {
		res.err = fmt.Errorf("event filtered out (pass %v): %w", pass, errors.Join(err, errFiltered))
		return res
	}
	var trigger *aev1.Trigger
	for i := range sensor.Spec.Triggers {
		if sensor.Spec.Triggers[i].Template.Conditions == depName {
			trigger = &sensor.Spec.Triggers[i]
		}
	}
	if trigger == nil {
		t.Fatalf("no trigger with conditions %q: a trigger without conditions waits for every dependency", depName)
	}
	events := map[string]*aev1.Event{depName: event}
	logger := zap.NewNop().Sugar()
	retry := trigger.RetryStrategy
	if retry == nil {
		retry = &aev1.Backoff{Steps: 1}
	}
	res.err = sharedutil.DoWithRetry(retry, func() error {
		res.attempts++
		res.failed = triggerOne(sensor, trigger, events, logger, &res)
		if !trigger.AtLeastOnce {
			return nil // listener.go: go func() { … logger.Errorw("Failed to execute a trigger") }()
		}
		return res.failed
	})
	if res.err != nil && trigger.DlqTrigger != nil {
		res.deadLetters++
		core, logs := observer.New(zap.InfoLevel)
		lt, err := aelog.NewLogTrigger(sensor, trigger.DlqTrigger, zap.New(core).Sugar())
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := lt.FetchResource(context.Background())
		if _, err := lt.Execute(context.Background(), events, obj); err != nil {
			t.Fatalf("dlqTrigger: %v", err)
		}
		if logs.Len() == 0 || !strings.Contains(fmt.Sprint(logs.All()[0].ContextMap()), ce.ID()) {
			t.Errorf("the dead-letter log trigger did not log event %s: %v", ce.ID(), logs.All())
		}
	}
	return res
}

// triggerOne is pkg/sensors/listener.go triggerOne for an HTTP trigger.
func triggerOne(sensor *aev1.Sensor, trigger *aev1.Trigger, events map[string]*aev1.Event, logger *zap.SugaredLogger, res *triggerResult) error {
	tr := trigger.DeepCopy()
	if err := triggers.ApplyTemplateParameters(events, tr); err != nil {
		return err
	}
	ht, err := aehttp.NewHTTPTrigger(httpClients, sensor, tr, logger)
	if err != nil {
		return err
	}
	obj, err := ht.FetchResource(context.Background())
	if err != nil {
		return err
	}
	upd, err := ht.ApplyResourceParameters(events, obj)
	if err != nil {
		return err
	}
	out, err := ht.Execute(context.Background(), events, upd)
	if err != nil {
		return fmt.Errorf("failed to execute trigger, %w", err)
	}
	resp := out.(*http.Response)
	res.status, res.header = resp.StatusCode, resp.Header
	res.body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	return ht.ApplyPolicy(context.Background(), resp)
}

var errFiltered = errors.New("filtered")

// checkCloudEventRequest asserts the last request the function received is
// a valid binary-mode CloudEvent built from the event, and that the function
// answered it as one.
func checkCloudEventRequest(t *testing.T, res triggerResult, source, typ, subject, status string) {
	t.Helper()
	ex := clusterProxy.take(functionHost)
	if len(ex) == 0 {
		t.Fatal("the function got no request")
	}
	e := ex[len(ex)-1]
	req, _ := http.NewRequest(e.Method, "http://"+e.Host+e.Path, bytes.NewReader(e.Body))
	req.Header = e.Header
	ce, err := cehttp.NewEventFromHTTPRequest(req)
	if err != nil {
		t.Fatalf("not a CloudEvent: %v (headers %v)", err, e.Header)
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("invalid CloudEvent: %v", err)
	}
	for what, got := range map[string][2]string{
		"id":          {ce.ID(), res.event.ID()},
		"source":      {ce.Source(), source},
		"type":        {ce.Type(), typ},
		"subject":     {ce.Subject(), subject},
		"specversion": {ce.SpecVersion(), "1.0"},
		"time":        {ce.Time().UTC().Format(time.RFC3339), res.event.Time().UTC().Format(time.RFC3339)},
		"content":     {e.Header.Get("Content-Type"), "application/json"},
		"auth":        {e.Header.Get("Authorization"), "Bearer " + testToken},
	} {
		if got[0] != got[1] {
			t.Errorf("CloudEvent %s = %q, want %q", what, got[0], got[1])
		}
	}
	// The CloudEvent data: {"context": {...}, "data": <the whole event data>}.
	var data struct {
		Context aev1.EventContext `json:"context"`
		Data    json.RawMessage   `json:"data"`
	}
	if err := json.Unmarshal(ce.Data(), &data); err != nil {
		t.Fatalf("data: %v", err)
	}
	if data.Context.ID != res.event.ID() || !bytes.Equal(compactJSON(t, data.Data), compactJSON(t, res.event.Data())) {
		t.Errorf("the event data did not arrive whole:\n got %s\nwant %s", data.Data, res.event.Data())
	}
	// The function answers a CloudEvent request with a CloudEvent.
	var r functionReply
	_ = json.Unmarshal(res.body, &r)
	if res.status != 200 || r.Status != status || res.header.Get("Ce-Type") != "dev.rollback-incident.result" {
		t.Errorf("function answered %d %s (Ce-Type %q), want 200 %s as a CloudEvent", res.status, res.body, res.header.Get("Ce-Type"), status)
	}
}

// Both EventSources' event shapes, from the project's fixtures, through the
// Sensor of deploy/argo-events to one running function: one incident.
func TestSensorTriggersBothEventShapes(t *testing.T) {
	s := startStack(t)
	useSensorSecret(t)
	sensor := loadSensor(t)
	wes := loadEventSource(t, "argo-events/eventsource-webhook.yaml")
	res := loadEventSource(t, "argo-events/eventsource-resource.yaml")
	for _, d := range sensor.Spec.Dependencies {
		switch d.EventSourceName {
		case wes.Name:
			if _, ok := wes.Spec.Webhook[d.EventName]; !ok {
				t.Errorf("dependency %s: no webhook event %q in %s", d.Name, d.EventName, wes.Name)
			}
		case res.Name:
			if _, ok := res.Spec.Resource[d.EventName]; !ok {
				t.Errorf("dependency %s: no resource event %q in %s", d.Name, d.EventName, res.Name)
			}
		default:
			t.Errorf("dependency %s: unknown EventSource %s", d.Name, d.EventSourceName)
		}
	}

	// Method A: webhook EventSource data {header, body, metadata}.
	r := runSensorTrigger(t, sensor, "rollout-notification",
		esEvent(t, wes.Name, "rollout", "webhook", readFixture(t, "argo-events-webhook-event.json")))
	if r.err != nil || r.attempts != 1 {
		t.Fatalf("webhook event: %v after %d attempts\n%s", r.err, r.attempts, s.fn.Output())
	}
	checkCloudEventRequest(t, r, "argo-events/rollouts-webhook/rollout", "io.argoproj.events.webhook", "payments/checkout-api", "created")
	s.requireOneIncident()

	// Method B: resource EventSource data {type, body, oldBody, ...} for the
	// same rollback.
	r = runSensorTrigger(t, sensor, "rollout-degraded",
		esEvent(t, res.Name, "rollouts", "resource", readFixture(t, "argo-events-resource-rollout-degraded.json")))
	if r.err != nil || r.attempts != 1 {
		t.Fatalf("resource event: %v after %d attempts\n%s", r.err, r.attempts, s.fn.Output())
	}
	checkCloudEventRequest(t, r, "argo-events/rollouts-resource/rollouts", "io.argoproj.events.resource", "payments/checkout-api", "existing")
	s.requireOneIncident()
	if !strings.Contains(s.fn.Output(), r.event.ID()) {
		t.Errorf("the function log does not name CloudEvent %s", r.event.ID())
	}

	// A healthy Rollout's UPDATE stays in the cluster (the Sensor's filter).
	var upd map[string]any
	_ = json.Unmarshal(readFixture(t, "argo-events-resource-rollout-degraded.json"), &upd)
	upd["body"] = upd["oldBody"]
	b, _ := json.Marshal(upd)
	r = runSensorTrigger(t, sensor, "rollout-degraded", esEvent(t, res.Name, "rollouts", "resource", b))
	if !errors.Is(r.err, errFiltered) || r.attempts != 0 {
		t.Errorf("a Progressing rollout passed the filter: %v", r.err)
	}
	if n := len(clusterProxy.take(functionHost)); n != 0 {
		t.Errorf("the function got %d requests for a healthy rollout", n)
	}
}

// A 5xx fails the trigger (policy.status.allow) and the retryStrategy
// delivers the event again; without the policy the same 5xx would count as
// success; a 5xx that lasts ends in the dead-letter trigger. The 503s come
// from the cluster side here: the test proxy answers as Knative's activator
// does when no pod of the revision becomes ready in time. (The function
// itself answers 503 only when it could not record the rollback, with
// nothing kept; an Atlassian outage is a 202, see
// TestSensorAtlassianOutageLongerThanRetries.)
func TestSensorRetriesWhenTheFunctionFails(t *testing.T) {
	s := startStack(t)
	useSensorSecret(t)
	sensor := loadSensor(t)
	for _, tr := range sensor.Spec.Triggers {
		if !tr.AtLeastOnce || tr.RetryStrategy == nil || tr.DlqTrigger == nil {
			t.Errorf("trigger %s: without atLeastOnce the listener runs it in a goroutine and retryStrategy never retries; want atLeastOnce, retryStrategy and dlqTrigger", tr.Template.Name)
		}
	}
	event := func() cloudevents.Event {
		return esEvent(t, "rollouts-resource", "rollouts", "resource", readFixture(t, "argo-events-resource-rollout-degraded.json"))
	}

	// Two 503s, then the function.
	clusterProxy.fail(functionHost, http.StatusServiceUnavailable, 2)
	r := runSensorTrigger(t, sensor, "rollout-degraded", event())
	ex := clusterProxy.take(functionHost)
	var st []int
	for _, e := range ex {
		st = append(st, e.Status)
	}
	if r.err != nil || r.attempts != 3 || len(ex) != 3 || st[0] != 503 || st[1] != 503 || st[2] != 200 || r.deadLetters != 0 {
		t.Fatalf("err %v after %d attempts, statuses %v, %d dead letters\n%s", r.err, r.attempts, st, r.deadLetters, s.fn.Output())
	}
	for _, e := range ex[1:] {
		if e.Header.Get("Ce-Id") != ex[0].Header.Get("Ce-Id") {
			t.Error("a retry changed the CloudEvent id")
		}
	}
	s.requireOneIncident()

	// The trap: the same trigger without policy.status.allow counts a 503 as
	// success (no retry, no error, the event is gone).
	noPolicy := sensor.DeepCopy()
	for i := range noPolicy.Spec.Triggers {
		noPolicy.Spec.Triggers[i].Policy = nil
	}
	ev := event()
	ev.SetData(cloudevents.ApplicationJSON, bytes.Replace(ev.Data(), []byte(`"rollout.argoproj.io/revision":"7"`), []byte(`"rollout.argoproj.io/revision":"8"`), 1))
	clusterProxy.fail(functionHost, http.StatusServiceUnavailable, 1)
	r = runSensorTrigger(t, noPolicy, "rollout-degraded", ev)
	if r.err != nil || r.attempts != 1 || r.status != http.StatusServiceUnavailable {
		t.Fatalf("without policy: err %v, %d attempts, status %d; want success after one 503", r.err, r.attempts, r.status)
	}
	clusterProxy.take(functionHost)

	// With the policy, a 503 that lasts ends in the dead-letter trigger
	// after the retries (shortened here).
	fast := sensor.DeepCopy()
	for i := range fast.Spec.Triggers {
		fast.Spec.Triggers[i].RetryStrategy = &aev1.Backoff{Steps: 2, Duration: ptrTo(aev1.FromString("10ms"))}
	}
	clusterProxy.fail(functionHost, http.StatusServiceUnavailable, 2)
	r = runSensorTrigger(t, fast, "rollout-degraded", ev)
	if r.err == nil || r.attempts != 2 || r.deadLetters != 1 || !strings.Contains(r.err.Error(), "is not allowed") {
		t.Fatalf("lasting 503: err %v after %d attempts, %d dead letters", r.err, r.attempts, r.deadLetters)
	}
	clusterProxy.take(functionHost)
}

// retryWindow is the longest a trigger's retryStrategy waits between its
// first and its last attempt (every wait with its full jitter), computed
// as k8s.io/apimachinery wait.ExponentialBackoff steps it.
func retryWindow(t *testing.T, rs *aev1.Backoff) time.Duration {
	t.Helper()
	b, err := sharedutil.Convert2WaitBackoff(rs)
	if err != nil {
		t.Fatal(err)
	}
	var total time.Duration
	d := b.Duration
	for range b.Steps - 1 {
		total += time.Duration(float64(d) * (1 + b.Jitter))
		d = time.Duration(float64(d) * b.Factor)
		if b.Cap > 0 && d > b.Cap {
			d = b.Cap
		}
	}
	return total
}

// Issue 11's acceptance line: an Atlassian outage longer than the shipped
// Sensor's whole retry window. The function takes the rollback into custody
// and answers 202 accepted at once, so the real trigger code sees success
// at its first attempt: no retry, no dead letter. The function keeps
// trying by itself and opens the incident exactly once when Atlassian
// returns; nothing is left in custody afterwards.
func TestSensorAtlassianOutageLongerThanRetries(t *testing.T) {
	s := startStack(t)
	useSensorSecret(t)
	sensor := loadSensor(t)
	var trigger *aev1.Trigger
	for i := range sensor.Spec.Triggers {
		if sensor.Spec.Triggers[i].Template.Conditions == "rollout-degraded" {
			trigger = &sensor.Spec.Triggers[i]
		}
	}
	if trigger == nil || trigger.RetryStrategy == nil || trigger.DlqTrigger == nil {
		t.Fatal("the resource trigger has no retryStrategy or dlqTrigger: the scenario needs both")
	}
	window := retryWindow(t, trigger.RetryStrategy)
	if window < 30*time.Second {
		t.Fatalf("retry window %s: the shipped retryStrategy changed, check this test's premise", window)
	}
	outage := window + 5*time.Second

	s.admin(http.MethodPost, "/_emulator/outage", `{"status":503}`)
	start := time.Now()
	r := runSensorTrigger(t, sensor, "rollout-degraded",
		esEvent(t, "rollouts-resource", "rollouts", "resource", readFixture(t, "argo-events-resource-rollout-degraded.json")))
	var rep functionReply
	_ = json.Unmarshal(r.body, &rep)
	// "At once" is asserted by the answer, not by timing the delivery: the
	// real trigger's HTTP client gives up after the Sensor's timeout (60 s),
	// which would show here as a failed attempt and a retry, and the answer
	// is 202 accepted while Atlassian is still down, so the function did not
	// wait for it. A wall-clock bound would only add a flake on a loaded
	// machine.
	if r.err != nil || r.failed != nil || r.attempts != 1 || r.status != http.StatusAccepted || rep.Status != "accepted" || r.deadLetters != 0 {
		t.Fatalf("during the outage: err %v (last attempt %v), %d attempts, %d dead letters, answer %d %s; want one attempt answered 202 accepted\n%s",
			r.err, r.failed, r.attempts, r.deadLetters, r.status, r.body, s.fn.Output())
	}

	// The outage outlasts the Sensor's retry window, and the function
	// really works the rollback meanwhile (and fails).
	unavailable := `rollback_incident_attempts_total{outcome="unavailable"}`
	pollFunction(t, start.Add(outage+time.Minute), func() (bool, string) {
		n := s.metric(unavailable)
		return time.Since(start) >= outage && n >= 2,
			fmt.Sprintf("the outage to last %s with 2 or more failed attempts by the function (it made %v)", outage, n)
	})
	if issues, _ := s.state(); len(issues) != 0 {
		t.Fatalf("issues during the outage: %+v", issues)
	}
	if n := s.metric("rollback_incident_pending_rollbacks"); n != 1 {
		t.Errorf("pending rollbacks during the outage: %v, want 1", n)
	}
	s.admin(http.MethodDelete, "/_emulator/outage", "")
	ended := time.Now()

	// Atlassian is back: the function's own retry (at most 1 min apart,
	// plus its 30 s probe wait) opens the incident.
	pollFunction(t, ended.Add(2*time.Minute), func() (bool, string) {
		return s.metric(`rollback_incident_attempts_total{outcome="done"}`) >= 1,
			"the function to open the incident once the outage ended"
	})
	t.Logf("outage %s; the incident opened %s after it ended", ended.Sub(start).Round(time.Second), time.Since(ended).Round(time.Second))

	// Exactly once, and nothing left in custody: the wake-up's reconcile
	// finds no pending rollback.
	if n := len(clusterProxy.take(functionHost)); n != 1 {
		t.Errorf("the function got %d deliveries, want the 1 that was answered 202", n)
	}
	wakeup := loadWakeupSensor(t)
	w := runSensorTrigger(t, wakeup, wakeup.Spec.Dependencies[0].Name, calendarEvent(t))
	counts := reconcileCounts(t, w)
	if counts.Pending == nil || *counts.Pending != 0 {
		t.Errorf("reconcile after the outage: %s, want nothing pending", w.body)
	}
	clusterProxy.take(functionHost)
	issue := s.requireOneIncident()
	if !slices.Contains(issue.Labels, "rbk-"+rep.Fingerprint) {
		t.Errorf("issue %s labels %v: not the incident of the accepted rollback %s", issue.Key, issue.Labels, rep.Fingerprint)
	}
}

// pollFunction polls cond every 250 ms until it holds, and fails the test
// once deadline passes, saying what it waited for (cond's description, as
// of the last poll). The function is a separate process on the real clock,
// so its progress can only be polled; its output is logged when the test
// fails (startProcess).
func pollFunction(t *testing.T, deadline time.Time, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, what := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting, at the deadline %s, for %s", deadline.Format(time.TimeOnly), what)
		}
		<-tick.C
	}
}

func ptrTo[T any](v T) *T { return &v }
