package inbound

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"function/incident"
)

// withEvent rewrites a resource EventSource fixture: f changes the decoded
// envelope ({type, body, oldBody, …}).
func withEvent(t *testing.T, name string, f func(ev map[string]any)) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(readFixture(t, name), &ev); err != nil {
		t.Fatal(err)
	}
	f(ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dig(t *testing.T, v any, path ...string) map[string]any {
	t.Helper()
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("no %s in %v", p, path)
		}
		v = m[p]
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", path)
	}
	return m
}

func fingerprint(kind, ns, name, rev string) string {
	in := incident.Incident{Cluster: "prod-eu-1", Kind: kind, Namespace: ns, Name: name, Revision: rev}
	return in.Fingerprint()
}

// TestRollbackDecision: only a rollback opens an incident. The ReplicaSets
// and Applications are as the Kubernetes deployment controller, the Argo
// Rollouts controller and the Argo CD application controller write them,
// in the resource EventSource's envelope.
func TestRollbackDecision(t *testing.T) {
	d := NewDecoder("prod-eu-1", DefaultLimits())
	type want struct {
		ignored string // the reason contains this; "" = an incident
		check   func(t *testing.T, in *incident.Incident)
	}
	tests := []struct {
		name string
		body []byte
		want want
	}{
		// A normal rollout: the new ReplicaSet appears with its revision
		// (ADD), then only its size changes.
		{"normal rollout: new ReplicaSet (ADD)", readFixture(t, "replicaset-rollout-new-add.json"), want{ignored: "carries no previous state"}},
		{"normal rollout: scale-up", readFixture(t, "replicaset-rollout-scale-up.json"), want{ignored: "stays at revision 4"}},
		{"scale-down of the old ReplicaSet", readFixture(t, "replicaset-scale-down.json"), want{ignored: "stays at revision 3"}},
		// Argo Rollouts appends to revision-history on a mere annotation
		// copy: the history grows, the revision does not.
		{"resync copying a Rollout annotation", readFixture(t, "replicaset-resync.json"), want{ignored: "stays at revision 6"}},
		// An informer resync: the same object twice (the v1.9.6 EventSource
		// drops these itself; a replay may not).
		{"resync with an identical object", withEvent(t, "replicaset-scale-down.json", func(ev map[string]any) { ev["oldBody"] = ev["body"] }), want{ignored: "stays at revision 3"}},
		{"DELETE", withEvent(t, "replicaset-deployment-undo.json", func(ev map[string]any) { ev["type"] = "DELETE"; ev["oldBody"] = nil }), want{ignored: "deleted"}},
		{"a lone ReplicaSet object", func() []byte {
			var ev map[string]json.RawMessage
			_ = json.Unmarshal(readFixture(t, "replicaset-deployment-undo.json"), &ev)
			return ev["body"]
		}(), want{ignored: "a lone object carries no previous state"}},
		{"adopted: no revision before", withEvent(t, "replicaset-deployment-undo.json", func(ev map[string]any) {
			delete(dig(t, ev, "oldBody", "metadata", "annotations"), "deployment.kubernetes.io/revision")
		}), want{ignored: "had no revision before"}},
		{"not owned by a Deployment or Rollout", withEvent(t, "replicaset-deployment-undo.json", func(ev map[string]any) {
			dig(t, ev, "body", "metadata")["ownerReferences"] = []any{}
		}), want{ignored: "not controlled by a Rollout or a Deployment"}},
		{"owner reference that is not the controller", withEvent(t, "replicaset-deployment-undo.json", func(ev map[string]any) {
			dig(t, ev, "body", "metadata")["ownerReferences"].([]any)[0].(map[string]any)["controller"] = false
		}), want{ignored: "not controlled"}},

		// `kubectl rollout undo`: ReplicaSet inventory-7c9d8f6b54 served
		// revision 3 and is current again as revision 5.
		{"manual undo of a Deployment", readFixture(t, "replicaset-deployment-undo.json"), want{check: func(t *testing.T, in *incident.Incident) {
			if in.Kind != incident.KindDeployment || in.Subject() != "shop/inventory" {
				t.Errorf("object = %s %s", in.Kind, in.Subject())
			}
			if in.Revision != "5" || in.RevertedFrom != "4" || in.RevertedTo != "3" {
				t.Errorf("revision %s, reverted from %s to %s; want 5, 4 → 3", in.Revision, in.RevertedFrom, in.RevertedTo)
			}
			if in.Fingerprint() != fingerprint("Deployment", "shop", "inventory", "5") {
				t.Error("fingerprint is not per object and restored revision")
			}
			if in.Joins != "" {
				t.Errorf("a Deployment has no earlier incident to join, got %s", in.Joins)
			}
			if len(in.Images) != 1 || in.Images[0] != (incident.Image{Container: "inventory", Image: "registry.example.com/shop/inventory:2.7.4"}) {
				t.Errorf("images = %+v", in.Images)
			}
			if len(in.ReplicaSets) != 1 || in.ReplicaSets[0] != "inventory-7c9d8f6b54 (revision 5, earlier 3)" {
				t.Errorf("replica sets = %q", in.ReplicaSets)
			}
			if in.PodHash != "7c9d8f6b54" {
				t.Errorf("pod hash = %q", in.PodHash)
			}
			if want := time.Date(2025, 6, 18, 10, 41, 17, 0, time.UTC); !in.Time.Equal(want) {
				t.Errorf("time = %v, want the controller's write %v", in.Time, want)
			}
			if in.Source != "Argo Events resource event (UPDATE ReplicaSet)" {
				t.Errorf("source = %q", in.Source)
			}
			if !strings.Contains(in.Message, "Deployment shop/inventory reverted from revision 4 to revision 3") ||
				!strings.Contains(in.Message, "inventory=registry.example.com/shop/inventory:2.7.4") {
				t.Errorf("message = %q", in.Message)
			}
		}}},
		// The stable ReplicaSet made current again after the abort of
		// revision 7: joins the abort's incident when there is one.
		{"rollback after an abort", readFixture(t, "replicaset-rollout-undo-after-abort.json"), want{check: func(t *testing.T, in *incident.Incident) {
			if in.Kind != incident.KindRollout || in.Subject() != "payments/checkout-api" {
				t.Errorf("object = %s %s", in.Kind, in.Subject())
			}
			if in.Revision != "8" || in.RevertedFrom != "7" || in.RevertedTo != "6" {
				t.Errorf("revision %s, reverted from %s to %s; want 8, 7 → 6", in.Revision, in.RevertedFrom, in.RevertedTo)
			}
			if in.Joins != rolloutRev7() {
				t.Errorf("joins %q, want the abort's incident %s", in.Joins, rolloutRev7())
			}
			if in.Fingerprint() == rolloutRev7() {
				t.Error("the rollback's own fingerprint must differ from the abort's")
			}
			// History "6,6": the controller appended 6 once for an
			// annotation copy and once for this rollback.
			if len(in.ReplicaSets) != 1 || in.ReplicaSets[0] != "checkout-api-5d8f9c6b7 (revision 8, earlier 6)" {
				t.Errorf("replica sets = %q", in.ReplicaSets)
			}
			if len(in.Images) != 1 || in.Images[0].Image != "registry.example.com/payments/checkout-api:1.41.3" {
				t.Errorf("images = %+v", in.Images)
			}
			if in.PodHash != "5d8f9c6b7" || in.Phase != "RolledBack" || in.Reason != incident.ReasonManualRollback {
				t.Errorf("pod hash/phase/reason = %q/%q/%q", in.PodHash, in.Phase, in.Reason)
			}
		}}},

		// Argo CD: the rollback sync completes (history entry 42 goes back
		// to entry 40's revision).
		{"Argo CD rollback", readFixture(t, "argocd-app-rollback.json"), want{check: func(t *testing.T, in *incident.Incident) {
			if in.Kind != incident.KindApplication || in.Subject() != "argocd/checkout-api-prod" {
				t.Errorf("object = %s %s", in.Kind, in.Subject())
			}
			if in.RevertedFrom != "9f3c2e1a7b4d5c6e8f90a1b2c3d4e5f6a7b8c9d0" || in.RevertedTo != "4b1e8d27c6a95f3e0d2b7a1c8e4f6d9b2a5c7e31" || in.Revision != in.RevertedTo {
				t.Errorf("reverted from %s to %s (revision %s)", in.RevertedFrom, in.RevertedTo, in.Revision)
			}
			if in.InitiatedBy != "alice@example.com" {
				t.Errorf("initiated by %q", in.InitiatedBy)
			}
			// The application still shows the aborted Rollout: the
			// rollback joins the abort's incident, like the ReplicaSet.
			if in.Joins != rolloutRev7() {
				t.Errorf("joins %q, want the Rollout abort's %s", in.Joins, rolloutRev7())
			}
			if want := time.Date(2025, 6, 12, 14, 19, 58, 0, time.UTC); !in.Time.Equal(want) {
				t.Errorf("time = %v", in.Time)
			}
			if !strings.Contains(in.Message, "(history 41)") || !strings.Contains(in.Message, "(history 40)") || !strings.Contains(in.Message, "history 42 by alice@example.com") {
				t.Errorf("message = %q", in.Message)
			}
			if in.Project != "payments" || in.TargetRevision != "main" || in.DestinationNS != "payments" {
				t.Errorf("project/target/destination = %q/%q/%q", in.Project, in.TargetRevision, in.DestinationNS)
			}
		}}},
		{"Argo CD rollback whose Rollout is healthy again", withEvent(t, "argocd-app-rollback.json", func(ev map[string]any) {
			for _, r := range dig(t, ev, "body", "status")["resources"].([]any) {
				if h, ok := r.(map[string]any)["health"].(map[string]any); ok {
					h["status"], h["message"] = "Healthy", ""
				}
			}
		}), want{check: func(t *testing.T, in *incident.Incident) {
			if want := fingerprint("Application", "argocd", "checkout-api-prod", "9f3c2e1a7b4d5c6e8f90a1b2c3d4e5f6a7b8c9d0"); in.Joins != want {
				t.Errorf("joins %q, want the application's incident at the revision it left", in.Joins)
			}
		}}},
		// Still the rollback's state, but a later UPDATE (e.g. health): it
		// was reported when the sync completed; the health decides.
		{"Argo CD: later update of a rolled-back application", withEvent(t, "argocd-app-rollback.json", func(ev map[string]any) {
			ev["oldBody"] = ev["body"]
		}), want{check: func(t *testing.T, in *incident.Incident) {
			if in.Reason == incident.ReasonManualRollback {
				t.Error("the same rollback reported again by a later update")
			}
		}}},
		{"Argo CD: ADD of a rolled-back application (watch restart)", withEvent(t, "argocd-app-rollback.json", func(ev map[string]any) {
			ev["type"], ev["oldBody"] = "ADD", nil
		}), want{check: func(t *testing.T, in *incident.Incident) {
			if in.Reason == incident.ReasonManualRollback {
				t.Error("an ADD replayed the rollback")
			}
		}}},
		{"Argo CD: sync of a new revision", withEvent(t, "argocd-app-rollback.json", func(ev map[string]any) {
			for _, k := range []string{"body", "oldBody"} {
				h := dig(t, ev, k, "status")["history"].([]any)
				h[len(h)-1].(map[string]any)["revision"] = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
			}
			healthy(t, ev)
		}), want{ignored: "Healthy"}},
		{"Argo CD: sync of the current revision again", withEvent(t, "argocd-app-rollback.json", func(ev map[string]any) {
			for _, k := range []string{"body", "oldBody"} {
				h := dig(t, ev, k, "status")["history"].([]any)
				h[len(h)-1].(map[string]any)["revision"] = "9f3c2e1a7b4d5c6e8f90a1b2c3d4e5f6a7b8c9d0"
			}
			healthy(t, ev)
		}), want{ignored: "Healthy"}},
		{"Argo CD: dry run", withEvent(t, "argocd-app-rollback.json", func(ev map[string]any) {
			dig(t, ev, "body", "status", "operationState", "operation", "sync")["dryRun"] = true
			healthy(t, ev)
		}), want{ignored: "Healthy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := d.Decode(tc.body, Meta{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if tc.want.ignored != "" {
				if dec.Incident != nil {
					t.Fatalf("opened an incident (%s %s, %s): %s", dec.Incident.Kind, dec.Incident.Subject(), dec.Incident.Reason, dec.Incident.Message)
				}
				if !strings.Contains(dec.Ignored, tc.want.ignored) {
					t.Errorf("ignored %q, want it to say %q", dec.Ignored, tc.want.ignored)
				}
				return
			}
			if dec.Incident == nil {
				t.Fatalf("ignored: %s", dec.Ignored)
			}
			tc.want.check(t, dec.Incident)
		})
	}
}

// healthy makes the application of an Argo CD fixture healthy, so that
// only a rollback could open an incident.
func healthy(t *testing.T, ev map[string]any) {
	t.Helper()
	st := dig(t, ev, "body", "status")
	st["health"] = map[string]any{"status": "Healthy"}
	st["resources"] = []any{}
}

// TestRollbackReplaysAreOneIncident: every delivery of one rollback, in
// every envelope a Sensor builds, is the same incident.
func TestRollbackReplaysAreOneIncident(t *testing.T) {
	d := NewDecoder("prod-eu-1", DefaultLimits())
	raw := readFixture(t, "replicaset-rollout-undo-after-abort.json")
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{
		"resource event":        raw,
		"sensor context":        []byte(`{"context":{"id":"a1","source":"replicasets-resource","type":"resource","subject":"replicasets","specversion":"1.0","time":"2025-06-12T14:19:56Z"},"data":` + string(raw) + `}`),
		"sensor payload":        []byte(`{"eventType":"UPDATE","body":` + string(ev["body"]) + `,"oldBody":` + string(ev["oldBody"]) + `}`),
		"structured cloudevent": []byte(`{"specversion":"1.0","id":"b2","source":"x","type":"y","data":` + string(raw) + `}`),
	}
	var fp string
	for name, b := range bodies {
		dec, err := d.Decode(b, Meta{})
		if err != nil || dec.Incident == nil {
			t.Fatalf("%s: %v %+v", name, err, dec)
		}
		if fp == "" {
			fp = dec.Incident.Fingerprint()
		} else if dec.Incident.Fingerprint() != fp || dec.Incident.Joins != rolloutRev7() {
			t.Errorf("%s: fingerprint %s joins %s, want %s joins %s", name, dec.Incident.Fingerprint(), dec.Incident.Joins, fp, rolloutRev7())
		}
	}
	// Without oldBody the Sensor payload cannot show the rise.
	dec, err := d.Decode([]byte(`{"eventType":"UPDATE","body":`+string(ev["body"])+`}`), Meta{})
	if err != nil || dec.Incident != nil {
		t.Errorf("payload without oldBody: %v %+v", err, dec)
	}
}

func TestRollbackInputErrors(t *testing.T) {
	d := NewDecoder("c", DefaultLimits())
	for name, body := range map[string][]byte{
		"oldBody of another object": withEvent(t, "replicaset-deployment-undo.json", func(ev map[string]any) {
			dig(t, ev, "oldBody", "metadata")["name"] = "inventory-58d7b9f4c6"
		}),
		"oldBody not an object": withEvent(t, "replicaset-deployment-undo.json", func(ev map[string]any) { ev["oldBody"] = "x" }),
		"bad owner name": withEvent(t, "replicaset-deployment-undo.json", func(ev map[string]any) {
			dig(t, ev, "body", "metadata")["ownerReferences"].([]any)[0].(map[string]any)["name"] = "Inventory!"
		}),
	} {
		if _, err := d.Decode(body, Meta{}); err == nil || !IsInputError(err) {
			t.Errorf("%s: err = %v, want an input error", name, err)
		}
	}
}

// TestRollbackStringsAreCleaned: the new fields pass through sanitize like
// every other.
func TestRollbackStringsAreCleaned(t *testing.T) {
	body := withEvent(t, "replicaset-deployment-undo.json", func(ev map[string]any) {
		c := dig(t, ev, "body", "spec", "template", "spec")["containers"].([]any)[0].(map[string]any)
		c["image"] = "evil\u202e:tag\u0000"
	})
	dec, err := NewDecoder("c", DefaultLimits()).Decode(body, Meta{})
	if err != nil || dec.Incident == nil {
		t.Fatal(err, dec)
	}
	if got := dec.Incident.Images[0].Image; got != "evil:tag" {
		t.Errorf("image = %q", got)
	}
}

// TestArgoCDRollbackNotification: the on-rollback notification (the body
// deploy/argocd's template renders from the same Application) is the same
// incident as the Application's UPDATE.
func TestArgoCDRollbackNotification(t *testing.T) {
	d := NewDecoder("prod-eu-1", DefaultLimits())
	obj, err := d.Decode(readFixture(t, "argocd-app-rollback.json"), Meta{})
	if err != nil || obj.Incident == nil {
		t.Fatalf("object: %v %+v", err, obj)
	}
	dec, err := d.Decode(readFixture(t, "argocd-app-rollback-notification.json"), Meta{})
	if err != nil || dec.Incident == nil {
		t.Fatalf("notification: %v %+v", err, dec)
	}
	in := dec.Incident
	if dec.Shape != "argocd-notification" || in.Source != "Argo CD notification (on-rollback)" {
		t.Errorf("shape %q source %q", dec.Shape, in.Source)
	}
	if in.Fingerprint() != obj.Incident.Fingerprint() || in.Joins != obj.Incident.Joins || in.Joins != rolloutRev7() {
		t.Errorf("notification %s joins %s; object %s joins %s", in.Fingerprint(), in.Joins, obj.Incident.Fingerprint(), obj.Incident.Joins)
	}
	if in.RevertedFrom != obj.Incident.RevertedFrom || in.RevertedTo != obj.Incident.RevertedTo || in.InitiatedBy != "alice@example.com" || in.Message != obj.Incident.Message {
		t.Errorf("notification %+v\nobject %+v", in, obj.Incident)
	}
	if len(in.Links) != 1 || in.Links[0].URL != "https://argocd.example.com/applications/checkout-api-prod" {
		t.Errorf("links %+v", in.Links)
	}
	if len(in.Images) != 1 || in.Images[0].Image != "registry.example.com/payments/checkout-api:1.41.3" {
		t.Errorf("images %+v", in.Images)
	}

	// The same body for a sync of a new revision (were the trigger
	// misconfigured): no incident.
	var b map[string]any
	if err := json.Unmarshal(readFixture(t, "argocd-app-rollback-notification.json"), &b); err != nil {
		t.Fatal(err)
	}
	h := b["history"].([]any)
	h[len(h)-1].(map[string]any)["revision"] = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
	raw, _ := json.Marshal(b)
	if dec, err := d.Decode(raw, Meta{}); err != nil || dec.Incident != nil || !strings.Contains(dec.Ignored, "did not go back") {
		t.Errorf("new revision: %v %+v", err, dec)
	}
}
