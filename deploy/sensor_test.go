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
	"strings"
	"sync"
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
		t.Skipf("cannot create %s (the Argo Events trigger reads secureHeaders from this fixed mount path; run as root): %v", path, err)
	}
	old, hadOld := os.ReadFile(path)
	if err := os.WriteFile(path, []byte("Bearer "+testToken+"\n"), 0o600); err != nil {
		t.Skipf("cannot write %s: %v", path, err)
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
	err      error
	attempts int
	status   int
	header   http.Header
	body     []byte
}

var httpClients = sharedutil.NewStringKeyedMap[*http.Client]()

// runSensorTrigger delivers one event to the Sensor of deploy/argo-events
// the way pkg/sensors/listener.go does: the dependency's filters
// (dependencies.Filter), then actionFunc: DoWithRetry(retryStrategy,
// triggerActions) where atLeastOnce makes triggerActions synchronous, and
// triggerOne: ApplyTemplateParameters, the HTTP trigger's FetchResource,
// ApplyResourceParameters, Execute and ApplyPolicy; after the retries, the
// dlqTrigger. Everything but this sequencing is the Argo Events v1.9.6 code.
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
	if !trigger.AtLeastOnce {
		t.Fatalf("trigger %s: without atLeastOnce the listener runs it in a goroutine and retryStrategy never retries", trigger.Template.Name)
	}
	events := map[string]*aev1.Event{depName: event}
	logger := zap.NewNop().Sugar()
	retry := trigger.RetryStrategy
	if retry == nil {
		retry = &aev1.Backoff{Steps: 1}
	}
	res.err = sharedutil.DoWithRetry(retry, func() error {
		res.attempts++
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
	})
	if res.err != nil && trigger.DlqTrigger != nil {
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
		t.Fatalf("webhook event: %v after %d attempts\n%s", r.err, r.attempts, s.fnLogs.String())
	}
	checkCloudEventRequest(t, r, "argo-events/rollouts-webhook/rollout", "io.argoproj.events.webhook", "payments/checkout-api", "created")
	s.requireOneIncident()

	// Method B: resource EventSource data {type, body, oldBody, ...} for the
	// same rollback.
	r = runSensorTrigger(t, sensor, "rollout-degraded",
		esEvent(t, res.Name, "rollouts", "resource", readFixture(t, "argo-events-resource-rollout-degraded.json")))
	if r.err != nil || r.attempts != 1 {
		t.Fatalf("resource event: %v after %d attempts\n%s", r.err, r.attempts, s.fnLogs.String())
	}
	checkCloudEventRequest(t, r, "argo-events/rollouts-resource/rollouts", "io.argoproj.events.resource", "payments/checkout-api", "existing")
	s.requireOneIncident()
	if !strings.Contains(s.fnLogs.String(), r.event.ID()) {
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

// A 5xx from the function fails the trigger (policy.status.allow) and the
// retryStrategy delivers it again once the function recovers; without the
// policy the same 5xx would count as success.
func TestSensorRetriesWhenTheFunctionFails(t *testing.T) {
	s := startStack(t)
	useSensorSecret(t)
	sensor := loadSensor(t)
	event := func() cloudevents.Event {
		return esEvent(t, "rollouts-resource", "rollouts", "resource", readFixture(t, "argo-events-resource-rollout-degraded.json"))
	}

	// Jira down until the function has answered one 5xx.
	s.admin(http.MethodPost, "/_emulator/outage", `{"status":503}`)
	var once sync.Once
	clusterProxy.setOnResponse(func(e exchange) {
		if e.Host == functionHost && e.Status >= 500 {
			once.Do(func() { s.admin(http.MethodDelete, "/_emulator/outage", "") })
		}
	})
	r := runSensorTrigger(t, sensor, "rollout-degraded", event())
	clusterProxy.setOnResponse(nil)
	ex := clusterProxy.take(functionHost)
	if r.err != nil || r.attempts < 2 || len(ex) != r.attempts || ex[0].Status < 500 || ex[len(ex)-1].Status != 200 {
		var st []int
		for _, e := range ex {
			st = append(st, e.Status)
		}
		t.Fatalf("err %v after %d attempts, statuses %v\n%s", r.err, r.attempts, st, s.fnLogs.String())
	}
	for _, e := range ex[1:] {
		if e.Header.Get("Ce-Id") != ex[0].Header.Get("Ce-Id") {
			t.Error("a retry changed the CloudEvent id")
		}
	}
	s.requireOneIncident()

	// The trap: the same trigger without policy.status.allow counts a 503 as
	// success (no retry, no error, the event is gone).
	s.admin(http.MethodPost, "/_emulator/outage", `{"status":503}`)
	defer s.admin(http.MethodDelete, "/_emulator/outage", "")
	noPolicy := sensor.DeepCopy()
	for i := range noPolicy.Spec.Triggers {
		noPolicy.Spec.Triggers[i].Policy = nil
	}
	ev := event()
	ev.SetData(cloudevents.ApplicationJSON, bytes.Replace(ev.Data(), []byte(`"rollout.argoproj.io/revision":"7"`), []byte(`"rollout.argoproj.io/revision":"8"`), 1))
	r = runSensorTrigger(t, noPolicy, "rollout-degraded", ev)
	if r.err != nil || r.attempts != 1 || r.status < 500 {
		t.Fatalf("without policy: err %v, %d attempts, status %d; want success after one 5xx", r.err, r.attempts, r.status)
	}
	clusterProxy.take(functionHost)

	// And with the policy, a function that keeps failing ends in the
	// dead-letter trigger after the retries (shortened here).
	fast := sensor.DeepCopy()
	for i := range fast.Spec.Triggers {
		fast.Spec.Triggers[i].RetryStrategy = &aev1.Backoff{Steps: 2, Duration: ptrTo(aev1.FromString("10ms"))}
	}
	r = runSensorTrigger(t, fast, "rollout-degraded", ev)
	if r.err == nil || r.attempts != 2 || !strings.Contains(r.err.Error(), "is not allowed") {
		t.Fatalf("permanent 5xx: err %v after %d attempts", r.err, r.attempts)
	}
	clusterProxy.take(functionHost)
}

func ptrTo[T any](v T) *T { return &v }
