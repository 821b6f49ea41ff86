package harness

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Delivery is one HTTP request to the function.
type Delivery struct {
	Name    string
	Body    []byte
	Headers map[string]string
}

// Event is one event as Argo emits it, before any Sensor: a Rollouts
// notification received by the webhook EventSource, or a Rollout change
// seen by the resource EventSource.
type Event struct {
	Name string
	// Source is "webhook" (Argo Rollouts notification → webhook
	// EventSource) or "resource" (resource EventSource watching Rollouts).
	Source string
	ID     string    // the EventSource's CloudEvent id
	Time   time.Time // the EventSource's CloudEvent time
	// Notification is the body Argo Rollouts posts (Source "webhook").
	Notification []byte
	// Data is the EventSource's event data: {header, body, metadata} for
	// the webhook EventSource, {type, body, oldBody, group, version,
	// resource} for the resource EventSource.
	Data []byte
}

// Context is the CloudEvent context the EventSource gives the event, as a
// Sensor sees it.
func (e Event) Context() map[string]string {
	subject, typ, source := "rollout", "webhook", "rollouts-webhook"
	if e.Source == "resource" {
		subject, typ, source = "rollouts", "resource", "rollouts-resource"
	}
	return map[string]string{
		"id": e.ID, "source": source, "specversion": "1.0", "type": typ,
		"datacontenttype": "application/json", "subject": subject, "time": e.Time.UTC().Format(time.RFC3339),
	}
}

// ToFunction returns the delivery the function receives for e in the
// project's deployment, or ok=false when that deployment drops it:
//   - a notification is posted by Argo Rollouts' webhook service straight
//     to the function (deploy/argo-rollouts), plain JSON;
//   - a resource event goes through the project's Sensor
//     (deploy/argo-events/sensor.yaml), whose dependency filter passes only
//     body.status.phase == "Degraded", as a binary-mode CloudEvent whose
//     body is {"context": …, "data": …}.
func (e Event) ToFunction() (Delivery, bool) {
	if e.Source == "webhook" {
		return Delivery{Name: e.Name, Body: e.Notification, Headers: map[string]string{"Content-Type": "application/json"}}, true
	}
	var data struct {
		Body struct {
			Metadata struct{ Name, Namespace string }
			Status   struct{ Phase string }
		}
	}
	if json.Unmarshal(e.Data, &data) != nil || data.Body.Status.Phase != "Degraded" {
		return Delivery{}, false
	}
	ctx := e.Context()
	ctxJSON, _ := json.Marshal(ctx)
	body := fmt.Sprintf(`{"context":%s,"data":%s}`, ctxJSON, e.Data)
	return Delivery{Name: e.Name, Body: []byte(body), Headers: map[string]string{
		"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": e.ID,
		"Ce-Source": "argo-events/" + ctx["source"] + "/" + ctx["subject"], "Ce-Type": "io.argoproj.events." + ctx["type"],
		"Ce-Time": ctx["time"], "Ce-Subject": data.Body.Metadata.Namespace + "/" + data.Body.Metadata.Name,
	}}, true
}

// RollbackBurst is what one canary rollback of payments/checkout-api
// (revision 7, analysis failed → aborted) emits, built from the fixtures in
// testdata/fixtures, in the order Argo emits it:
//
//	1 resource UPDATE   analysis run Failed recorded, phase still Progressing
//	2 notification      on-analysis-run-failed  (reason AnalysisRunFailed)
//	3 notification      on-rollout-aborted      (reason RolloutAborted)
//	4 resource UPDATE   abort: phase Degraded, message RolloutAborted…
//	5 notification      retry of 3 (same body: the webhook got no answer in time)
//	6 resource UPDATE   canary ReplicaSet scaled down, still Degraded
//	7 resource UPDATE   conditions/replica counts settle, still Degraded
//
// Both notifications render the Rollout's status as the captured fixture
// does (phase Degraded, message "RolloutAborted: …"); their body is the
// project's notification template (deploy/argo-rollouts), a superset of
// the source article's (rolloutName, namespace, phase, message,
// timestamp, jiraProject "OPS", jiraIssueType "Incident").
func RollbackBurst() ([]Event, error) {
	return RollbackBurstFor("checkout-api")
}

// RollbackBurstFor is RollbackBurst for the Rollout payments/<name>.
func RollbackBurstFor(name string) ([]Event, error) {
	raw, err := Fixture("argo-events-resource-rollout-degraded.json")
	if err != nil {
		return nil, err
	}
	var fx map[string]any
	if err := json.Unmarshal(raw, &fx); err != nil {
		return nil, err
	}
	degraded := fx["body"].(map[string]any)
	progressing := fx["oldBody"].(map[string]any)
	rename := func(obj map[string]any) {
		md := obj["metadata"].(map[string]any)
		md["name"] = name
	}
	rename(degraded)
	rename(progressing)

	t0 := time.Date(2025, 6, 12, 14, 3, 26, 0, time.UTC)
	set := func(obj map[string]any, path string, v any) {
		parts := strings.Split(path, ".")
		m := obj
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = v
	}
	clone := func(obj map[string]any) map[string]any {
		b, _ := json.Marshal(obj)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return out
	}
	resource := func(i int, label string, body, old map[string]any) Event {
		d, _ := json.Marshal(map[string]any{
			"type": "UPDATE", "body": body, "oldBody": old,
			"group": "argoproj.io", "version": "v1alpha1", "resource": "rollouts",
		})
		return Event{Name: label, Source: "resource", ID: fmt.Sprintf("%s-res-%d", name, i), Time: t0.Add(time.Duration(i) * time.Second), Data: d}
	}

	// 1: the analysis run's failure reaches the Rollout's status before
	// the abort does.
	u1 := clone(progressing)
	set(u1, "metadata.resourceVersion", "48213350")
	set(u1, "status.canary.currentStepAnalysisRunStatus", map[string]any{
		"name": "checkout-api-6f9c7b8d5-7-2", "status": "Failed",
		"message": `Metric "success-rate" assessed Failed due to failed (3) > failureLimit (2)`,
	})
	// 4: the abort (the fixture).
	u4 := clone(degraded)
	// 6: the canary ReplicaSet is scaled down.
	u6 := clone(u4)
	set(u6, "metadata.resourceVersion", "48213391")
	set(u6, "status.HPAReplicas", 5.0)
	set(u6, "status.updatedReplicas", 0.0)
	// 7: replica counts and conditions settle.
	u7 := clone(u6)
	set(u7, "metadata.resourceVersion", "48213404")
	set(u7, "status.readyReplicas", 5.0)
	set(u7, "status.availableReplicas", 5.0)

	notification := func(i int, label, reason string) (Event, error) {
		st := degraded["status"].(map[string]any)
		md := degraded["metadata"].(map[string]any)
		var images []map[string]string
		for _, c := range degraded["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any) {
			cm := c.(map[string]any)
			images = append(images, map[string]string{"container": cm["name"].(string), "image": cm["image"].(string)})
		}
		at := t0.Add(time.Second)
		body, err := json.Marshal(map[string]any{
			"reason": reason, "rolloutName": name, "namespace": md["namespace"],
			"phase": st["phase"], "message": st["message"],
			"revision": md["annotations"].(map[string]any)["rollout.argoproj.io/revision"],
			"podHash":  st["currentPodHash"], "stableRS": st["stableRS"], "strategy": "canary", "images": images,
			"abortedAt": st["abortedAt"], "timestamp": at.Format(time.RFC3339),
			"jiraProject": "OPS", "jiraIssueType": "Incident",
		})
		if err != nil {
			return Event{}, err
		}
		data := fmt.Sprintf(`{"header":{"Content-Type":["application/json"],"User-Agent":["Go-http-client/1.1"]},"body":%s,"metadata":{"origin":"argo-rollouts-notifications"}}`, body)
		return Event{Name: label, Source: "webhook", ID: fmt.Sprintf("%s-ntf-%d", name, i), Time: t0.Add(time.Duration(i) * time.Second),
			Notification: body, Data: []byte(data)}, nil
	}
	n2, err := notification(2, "notification on-analysis-run-failed", "AnalysisRunFailed")
	if err != nil {
		return nil, err
	}
	n3, err := notification(3, "notification on-rollout-aborted", "RolloutAborted")
	if err != nil {
		return nil, err
	}
	n5 := n3
	n5.Name, n5.ID, n5.Time = "notification on-rollout-aborted (retry)", name+"-ntf-5", t0.Add(5*time.Second)
	return []Event{
		resource(1, "resource UPDATE analysis failed (Progressing)", u1, progressing),
		n2, n3,
		resource(4, "resource UPDATE aborted (Degraded)", u4, progressing),
		n5,
		resource(6, "resource UPDATE scale-down (Degraded)", u6, u4),
		resource(7, "resource UPDATE settled (Degraded)", u7, u6),
	}, nil
}

// StormDeliveries returns n deliveries of the one checkout-api rollback
// (revision 7) in every shape and envelope a deployment uses, each with its
// own CloudEvent id: the notification body, the webhook EventSource event,
// the Sensor's {context, data} view and the resource UPDATE, each plain,
// as a binary-mode and as a structured CloudEvent.
func StormDeliveries(n int) ([]Delivery, error) {
	var shapes [][]byte
	for _, f := range []string{"rollout-notification-webhook.json", "argo-events-webhook-event.json",
		"argo-events-sensor-event-view.json", "argo-events-resource-rollout-degraded.json"} {
		b, err := Fixture(f)
		if err != nil {
			return nil, err
		}
		shapes = append(shapes, b)
	}
	out := make([]Delivery, n)
	for i := range n {
		data := shapes[i%len(shapes)]
		id := fmt.Sprintf("storm-%d", i)
		switch (i / len(shapes)) % 3 {
		case 0:
			out[i] = Delivery{Name: "plain", Body: data}
		case 1:
			out[i] = Delivery{Name: "binary", Body: data, Headers: map[string]string{
				"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": id,
				"Ce-Source": "argo-events/sensor/rollback-sensor", "Ce-Type": "io.argoproj.rollouts.rollback"}}
		default:
			body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"argo-events/sensor/rollback-sensor","type":"io.argoproj.rollouts.rollback","datacontenttype":"application/json","data":%s}`, id, data)
			out[i] = Delivery{Name: "structured", Body: []byte(body), Headers: map[string]string{"Content-Type": "application/cloudevents+json"}}
		}
	}
	return out, nil
}

// DistinctRollback is the on-rollout-aborted notification of rollback i of
// n distinct ones (Rollout svc-<i>, revision 4), in the project's template.
func DistinctRollback(prefix string, i int) Delivery {
	body := fmt.Sprintf(`{"reason":"RolloutAborted","rolloutName":"%s-%04d","namespace":"payments","phase":"Degraded",`+
		`"message":"RolloutAborted: Rollout aborted update to revision 4: Step-based analysis phase error/failed: Metric \"success-rate\" assessed Failed",`+
		`"revision":"4","podHash":"7c9d8b6f5","stableRS":"5d8f9c6b7","strategy":"canary",`+
		`"images":[{"container":"app","image":"registry.example.com/payments/svc:1.%d.0"}],`+
		`"abortedAt":"2026-11-22T02:00:00Z","timestamp":"2026-11-22T02:00:01Z","jiraProject":"OPS","jiraIssueType":"Incident"}`, prefix, i, i)
	return Delivery{Name: "distinct", Body: []byte(body), Headers: map[string]string{"Content-Type": "application/json"}}
}

// AnalysisRunFailed is the AnalysisRun object of the checkout-api rollback
// (news for its incident: a different reason and message).
func AnalysisRunFailed() (Delivery, error) {
	b, err := Fixture("analysisrun-failed.json")
	return Delivery{Name: "analysisrun", Body: b}, err
}

// Notification is the rollout-notification-webhook.json fixture.
func Notification() (Delivery, error) {
	b, err := Fixture("rollout-notification-webhook.json")
	return Delivery{Name: "notification", Body: b, Headers: map[string]string{"Content-Type": "application/json"}}, err
}

// ResourceUpdate is the argo-events-resource-rollout-degraded.json fixture
// (a 10 KB Rollout object) as a binary-mode CloudEvent.
func ResourceUpdate() (Delivery, error) {
	b, err := Fixture("argo-events-resource-rollout-degraded.json")
	return Delivery{Name: "resource", Body: b, Headers: map[string]string{
		"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "res-1",
		"Ce-Source": "argo-events/rollouts-resource/rollouts", "Ce-Type": "io.argoproj.events.resource"}}, err
}
