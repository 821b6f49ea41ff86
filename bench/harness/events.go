package harness

import "fmt"

// Delivery is one HTTP request to the function.
type Delivery struct {
	Name    string
	Body    []byte
	Headers map[string]string
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
