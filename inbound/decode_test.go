package inbound

import (
	"bufio"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"function/incident"
)

const fixtures = "../testdata/fixtures"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rolloutRev7 is the fingerprint every source of the checkout-api rollback
// must agree on.
func rolloutRev7() string {
	in := incident.Incident{Cluster: "prod-eu-1", Kind: incident.KindRollout, Namespace: "payments", Name: "checkout-api", Revision: "7"}
	return in.Fingerprint()
}

func TestDecodeFixtures(t *testing.T) {
	d := NewDecoder("prod-eu-1", DefaultLimits())
	tests := []struct {
		file        string
		shape       string
		kind        string
		subject     string
		revision    string
		phase       string
		reason      string
		fingerprint string
		check       func(t *testing.T, in *incident.Incident)
	}{
		{
			file: "rollout-notification-webhook.json", shape: "rollouts-notification",
			kind: "Rollout", subject: "payments/checkout-api", revision: "7", phase: "Degraded", reason: "RolloutAborted",
			fingerprint: rolloutRev7(),
			check: func(t *testing.T, in *incident.Incident) {
				if in.RequestedProject != "OPS" || in.RequestedIssueType != "Incident" {
					t.Errorf("requested project/type = %q/%q", in.RequestedProject, in.RequestedIssueType)
				}
				if want := time.Date(2025, 6, 12, 14, 3, 28, 0, time.UTC); !in.Time.Equal(want) {
					t.Errorf("time = %v, want %v", in.Time, want)
				}
			},
		},
		{
			file: "argo-events-webhook-event.json", shape: "argo-events-webhook/rollouts-notification",
			kind: "Rollout", subject: "payments/checkout-api", revision: "7", phase: "Degraded", reason: "RolloutAborted",
			fingerprint: rolloutRev7(),
		},
		{
			file: "argo-events-sensor-event-view.json", shape: "sensor-context/argo-events-webhook/rollouts-notification",
			kind: "Rollout", subject: "payments/checkout-api", revision: "7", phase: "Degraded", reason: "RolloutAborted",
			fingerprint: rolloutRev7(),
			check: func(t *testing.T, in *incident.Incident) {
				if in.EventID != "b9f52cd6a6d24370ade43339db15a3ab" {
					t.Errorf("event id from sensor context = %q", in.EventID)
				}
			},
		},
		{
			file: "argo-events-resource-rollout-degraded.json", shape: "argo-events-resource/object.Rollout",
			kind: "Rollout", subject: "payments/checkout-api", revision: "7", phase: "Degraded", reason: "RolloutAborted",
			fingerprint: rolloutRev7(),
			check: func(t *testing.T, in *incident.Incident) {
				if in.PodHash != "6f9c7b8d5" || in.StableRS != "5d8f9c6b7" || in.Strategy != "canary" {
					t.Errorf("pod hash/stable/strategy = %q/%q/%q", in.PodHash, in.StableRS, in.Strategy)
				}
				if len(in.Images) != 1 || in.Images[0].Image != "registry.example.com/payments/checkout-api:1.42.0" {
					t.Errorf("images = %+v", in.Images)
				}
				if len(in.Analysis) != 1 || in.Analysis[0].Run != "checkout-api-6f9c7b8d5-7-2" || in.Analysis[0].Phase != "Failed" {
					t.Errorf("analysis = %+v", in.Analysis)
				}
				if in.Source != "Argo Events resource event (UPDATE Rollout)" {
					t.Errorf("source = %q", in.Source)
				}
			},
		},
		{
			file: "rollout-aborted-object.json", shape: "object.Rollout",
			kind: "Rollout", subject: "payments/checkout-api", revision: "7", phase: "Degraded", reason: "RolloutAborted",
			fingerprint: rolloutRev7(),
		},
		{
			file: "analysisrun-failed.json", shape: "object.AnalysisRun",
			kind: "Rollout", subject: "payments/checkout-api", revision: "7", phase: "Failed", reason: "AnalysisRunFailed",
			fingerprint: rolloutRev7(),
			check: func(t *testing.T, in *incident.Incident) {
				if len(in.Analysis) != 1 {
					t.Fatalf("analysis = %+v", in.Analysis)
				}
				a := in.Analysis[0]
				if a.Metric != "success-rate" || a.Provider != "prometheus" || a.FailureLimit != "2" || a.Failed != 3 || a.Count != 4 {
					t.Errorf("analysis = %+v", a)
				}
				if strings.Join(a.Values, ",") != "[0.9871],[0.9123],[0.8740],[0.8512]" {
					t.Errorf("values = %v", a.Values)
				}
				if in.Step != "step 2" || in.PodHash != "6f9c7b8d5" {
					t.Errorf("step/pod hash = %q/%q", in.Step, in.PodHash)
				}
			},
		},
		{
			// The application is degraded because its Rollout aborted:
			// the incident is the Rollout's, one rollback, one incident.
			file: "argocd-app-health-degraded.json", shape: "argocd-notification",
			kind: "Rollout", subject: "payments/checkout-api", revision: "7",
			phase: "Degraded", reason: "RolloutAborted", fingerprint: rolloutRev7(),
			check: func(t *testing.T, in *incident.Incident) {
				if in.Application != "argocd/checkout-api-prod" || in.SyncRevision != "9f3c2e1a7b4d5c6e8f90a1b2c3d4e5f6a7b8c9d0" || in.Project != "payments" {
					t.Errorf("application facts %q %q %q", in.Application, in.SyncRevision, in.Project)
				}
				if len(in.Resources) != 1 || in.Resources[0].Kind != "Rollout" || in.Resources[0].Name != "checkout-api" {
					t.Errorf("resources = %+v", in.Resources)
				}
				if !strings.HasPrefix(in.Message, "RolloutAborted: Rollout aborted update to revision 7") {
					t.Errorf("message = %q", in.Message)
				}
				if len(in.Links) != 1 || in.Links[0].URL != "https://argocd.example.com/applications/checkout-api-prod" {
					t.Errorf("links = %+v", in.Links)
				}
				if in.RepoURL != "https://git.example.com/platform/deployments.git" || in.DestinationNS != "payments" {
					t.Errorf("repo/destination = %q/%q", in.RepoURL, in.DestinationNS)
				}
			},
		},
		{
			file: "argocd-app-resource.json", shape: "object.Application",
			kind: "Rollout", subject: "payments/checkout-api", revision: "7",
			phase: "Degraded", reason: "RolloutAborted", fingerprint: rolloutRev7(),
			check: func(t *testing.T, in *incident.Incident) {
				if in.TargetRevision != "main" || in.Project != "payments" || len(in.Images) != 1 {
					t.Errorf("target/project/images = %q/%q/%v", in.TargetRevision, in.Project, in.Images)
				}
			},
		},
		{
			file: "workflow-failed.json", shape: "object.Workflow",
			kind: "Workflow", subject: "payments/db-migrate-x7k2p", revision: "0b6f3a2e-4d1c-4e8b-9a7f-6c5d4e3b2a10",
			phase: "Failed", reason: "WorkflowFailed",
			check: func(t *testing.T, in *incident.Incident) {
				if in.FailedNode != "migrate: Error (exit code 1): migration 0042_add_index failed" {
					t.Errorf("failed node = %q", in.FailedNode)
				}
				if len(in.Images) != 1 || in.Images[0].Image != "registry.example.com/payments/migrator:2.3.1" {
					t.Errorf("images = %+v", in.Images)
				}
			},
		},
	}
	appFP := ""
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			dec, err := d.Decode(readFixture(t, tc.file), Meta{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if dec.Incident == nil {
				t.Fatalf("ignored: %s", dec.Ignored)
			}
			in := dec.Incident
			if dec.Shape != tc.shape {
				t.Errorf("shape = %q, want %q", dec.Shape, tc.shape)
			}
			if in.Kind != tc.kind || in.Subject() != tc.subject || in.Revision != tc.revision {
				t.Errorf("kind/subject/revision = %q %q %q, want %q %q %q", in.Kind, in.Subject(), in.Revision, tc.kind, tc.subject, tc.revision)
			}
			if in.Phase != tc.phase || in.Reason != tc.reason {
				t.Errorf("phase/reason = %q/%q, want %q/%q", in.Phase, in.Reason, tc.phase, tc.reason)
			}
			if in.Cluster != "prod-eu-1" {
				t.Errorf("cluster = %q", in.Cluster)
			}
			if tc.fingerprint != "" && in.Fingerprint() != tc.fingerprint {
				t.Errorf("fingerprint = %s, want %s", in.Fingerprint(), tc.fingerprint)
			}
			if in.Application != "" {
				// Both Argo CD shapes of one degraded sync are one incident.
				if appFP == "" {
					appFP = in.Fingerprint()
				} else if in.Fingerprint() != appFP {
					t.Errorf("Argo CD fingerprints differ: %s vs %s", in.Fingerprint(), appFP)
				}
			}
			if in.Message == "" {
				t.Error("message is empty")
			}
			if tc.check != nil {
				tc.check(t, in)
			}
		})
	}
}

// TestDecodeCapturedSensorRequests replays every request a real Argo Events
// v1.9.6 Sensor and notifications-engine v0.5.0 sent in the captures.
func TestDecodeCapturedSensorRequests(t *testing.T) {
	d := NewDecoder("prod-eu-1", DefaultLimits())
	type want struct{ outcome, detail string }
	for _, file := range []string{"captured/e2e-capture.jsonl", "captured/e2e-resource-capture.jsonl"} {
		f, err := os.Open(filepath.Join(fixtures, file))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			var req struct {
				URL     string              `json:"url"`
				Headers map[string][]string `json:"headers"`
				Body    string              `json:"body"`
			}
			if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
				t.Fatal(err)
			}
			n++
			dec, err := d.Decode([]byte(req.Body), Meta{ID: first(req.Headers["Ce-Id"])})
			got := want{}
			switch {
			case err != nil:
				got = want{"error", err.Error()}
			case dec.Incident != nil:
				got = want{"incident", dec.Incident.Fingerprint()}
			default:
				got = want{"ignored", dec.Ignored}
			}
			// The second input of the capture run was form-encoded (values
			// as arrays, no namespace); the whole-event trigger hides it
			// in base64, so recognise it by its event id too.
			form := strings.Contains(req.Body, `"phase":["Degraded"]`) || strings.Contains(req.Body, `[\"checkout-api\"]`) ||
				strings.Contains(req.Body, "0ee4dc7e609b4bb0a558d119bb932c0b")
			var exp string
			switch {
			case req.URL == "/t5-no-payload":
				exp = "error" // empty body
			case strings.HasPrefix(req.URL, "/fail-t"):
				exp = "error" // {"rolloutName": …} only: no namespace
			case form:
				exp = "error" // form-encoded input lacks the namespace
			case req.URL == "/resource-all" && strings.Contains(req.Body, `"type":"ADD"`):
				exp = "ignored" // ADD of a Progressing rollout
			default:
				exp = "incident"
			}
			if got.outcome != exp {
				t.Errorf("%s #%d %s: got %s (%s), want %s", file, n, req.URL, got.outcome, got.detail, exp)
				continue
			}
			if exp == "incident" && got.detail != rolloutRev7() {
				t.Errorf("%s #%d %s: fingerprint %s, want the checkout-api rev 7 one", file, n, req.URL, got.detail)
			}
			if exp == "error" && len(got.detail) > 300 {
				t.Errorf("%s #%d: error message too long to be clear: %q", file, n, got.detail)
			}
		}
		f.Close()
		if n == 0 {
			t.Fatalf("%s: no requests", file)
		}
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func TestDecodeJetStreamMessage(t *testing.T) {
	// Structured CloudEvent with data_base64, as the EventSource publishes
	// it on the bus; a replay tool may post it as plain JSON.
	raw, err := os.ReadFile(filepath.Join(fixtures, "captured/jetstream-stream-dump.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("want 3 messages, got %d", len(lines))
	}
	d := NewDecoder("prod-eu-1", DefaultLimits())
	dec, err := d.Decode([]byte(lines[0]), Meta{})
	if err != nil || dec.Incident == nil {
		t.Fatalf("message 1: %v %+v", err, dec)
	}
	if dec.Incident.EventID != "b9f52cd6a6d24370ade43339db15a3ab" || dec.Incident.Fingerprint() != rolloutRev7() {
		t.Errorf("message 1: id %q fp %s", dec.Incident.EventID, dec.Incident.Fingerprint())
	}
	if _, err := d.Decode([]byte(lines[1]), Meta{}); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("message 2 (form-encoded, no namespace): err = %v", err)
	}
}

// A structured CloudEvent posted as plain JSON is read as the handler reads
// one sent as application/cloudevents+json: its attributes describe the
// delivery, and data under any JSON media type (+json too) is the event.
func TestDecodeStructuredCloudEvent(t *testing.T) {
	d := NewDecoder("c", DefaultLimits())
	for _, dct := range []string{"", "application/json", "application/json; charset=utf-8", "text/json", "application/vnd.argo.rollout+json", "application/problem+json; charset=utf-8"} {
		t.Run(cmp.Or(dct, "none"), func(t *testing.T) {
			attr := ""
			if dct != "" {
				attr = `"datacontenttype":"` + dct + `",`
			}
			body := `{"specversion":"1.0","id":"e1","source":"argo","type":"t",` + attr +
				`"data":{"rolloutName":"a","namespace":"b","phase":"Degraded","message":"RolloutAborted"}}`
			dec, err := d.Decode([]byte(body), Meta{})
			if err != nil || dec.Incident == nil {
				t.Fatalf("%v %+v", err, dec)
			}
			in := dec.Incident
			if in.Namespace != "b" || in.Name != "a" || in.EventID != "e1" || dec.Shape != "cloudevent-json/rollouts-notification" {
				t.Errorf("incident %s/%s event %q shape %q", in.Namespace, in.Name, in.EventID, dec.Shape)
			}
		})
	}
}
func TestDecodeIgnored(t *testing.T) {
	d := NewDecoder("c", DefaultLimits())
	resource := readFixture(t, "argo-events-resource-rollout-degraded.json")
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(resource, &ev); err != nil {
		t.Fatal(err)
	}
	withType := func(typ string, body json.RawMessage) string {
		return `{"type":"` + typ + `","body":` + string(body) + `,"oldBody":null,"group":"argoproj.io","version":"v1alpha1","resource":"rollouts"}`
	}
	tests := []struct {
		name, body, contains string
	}{
		{"healthy notification", `{"rolloutName":"a","namespace":"b","phase":"Healthy","message":""}`, "Healthy"},
		{"progressing notification", `{"rolloutName":"a","namespace":"b","phase":"Progressing"}`, "Progressing"},
		{"ADD of progressing rollout", withType("ADD", ev["oldBody"]), "Progressing"},
		{"DELETE of degraded rollout", withType("DELETE", ev["body"]), "deleted"},
		{"argocd healthy", `{"source":"argocd","app":"x","appNamespace":"argocd","healthStatus":"Healthy","operationPhase":"Succeeded"}`, "Healthy"},
		{"workflow succeeded", `{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"w","namespace":"n"},"status":{"phase":"Succeeded"}}`, "Succeeded"},
		{"analysis successful", `{"apiVersion":"argoproj.io/v1alpha1","kind":"AnalysisRun","metadata":{"name":"r","namespace":"n"},"status":{"phase":"Successful"}}`, "Successful"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := d.Decode([]byte(tc.body), Meta{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if dec.Incident != nil || !strings.Contains(dec.Ignored, tc.contains) {
				t.Errorf("decision = %+v, want ignored containing %q", dec, tc.contains)
			}
		})
	}
	// An ADD of an already degraded rollout is an incident: the function may
	// have been down when it failed.
	dec, err := d.Decode([]byte(withType("ADD", ev["body"])), Meta{})
	if err != nil || dec.Incident == nil {
		t.Errorf("ADD of degraded rollout: %v %+v", err, dec)
	}
}

func TestDecodeErrors(t *testing.T) {
	d := NewDecoder("c", Limits{MaxDepth: 8, MaxStringLength: 64})
	// Within the limits as a string (under 64 bytes, even in base64),
	// beyond them once decoded: 9 levels.
	deep := `{"a":` + strings.Repeat(`[`, 8) + "1" + strings.Repeat("]", 8) + "}"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct{ name, body, contains string }{
		{"empty", "", "empty body"},
		{"spaces", "  \n", "empty body"},
		{"array", `[1,2]`, "expected a JSON object, got an array"},
		{"string", `"x"`, "expected a JSON object, got a string"},
		{"truncated", `{"rolloutName":"a"`, "not valid JSON"},
		{"garbage", `rollout checkout-api aborted`, "not valid JSON"},
		{"too deep", strings.Repeat(`{"a":`, 9) + "1" + strings.Repeat("}", 9), "nested deeper"},
		{"long string", `{"rolloutName":"` + strings.Repeat("a", 65) + `"}`, "longer than 64"},
		{"unknown shape", `{"hello":"world"}`, `unrecognised event`},
		{"no namespace", `{"rolloutName":"checkout-api"}`, "namespace is missing"},
		{"bad name", `{"rolloutName":"[\"checkout-api\"]","namespace":"p","phase":"Degraded"}`, "not a valid Kubernetes name"},
		{"bad namespace", `{"rolloutName":"a","namespace":"P Q","phase":"Degraded"}`, "not a valid Kubernetes namespace"},
		{"no phase", `{"rolloutName":"a","namespace":"b"}`, "no phase"},
		{"unsupported kind", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n"}}`, "unsupported object kind"},
		{"orphan analysis", `{"apiVersion":"argoproj.io/v1alpha1","kind":"AnalysisRun","metadata":{"name":"r","namespace":"n"},"status":{"phase":"Failed"}}`, "owner"},
		// Found by FuzzDecode: the owner reference names the incident.
		{"analysis owner not a name", `{"apiVersion":"argoproj.io/v1alpha1","kind":"AnalysisRun","metadata":{"name":"r","namespace":"n","ownerReferences":[{"kind":"Rollout","name":"A"}]},"status":{"phase":"Failed"}}`, "ownerReferences.name \"A\" is not a valid Kubernetes name"},
		{"bad base64", `{"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":"!!"}`, "base64"},
		{"data_base64 not a string", `{"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":1}`, "data_base64 is not a string"},
		{"cloudevent without data", `{"specversion":"1.0","id":"x","source":"s","type":"t","data":null}`, "has no data"},
		// The CloudEvents SDK reads a structured event without its media
		// type as the handler reads one with it, so both are held to the
		// spec: a known specversion, the required id, source and type, an
		// RFC 3339 time. The hand-written reader took any of these.
		{"unknown specversion", `{"specversion":"2.0","id":"x","source":"s","type":"t","data":{}}`, "invalid CloudEvent: specversion"},
		{"cloudevent without type", `{"specversion":"1.0","id":"x","source":"s","data":{}}`, "invalid CloudEvent: type"},
		{"cloudevent bad time", `{"specversion":"1.0","id":"x","source":"s","type":"t","time":"yesterday","data":{}}`, "invalid CloudEvent: cannot convert"},
		// Documents inside strings (base64, or JSON as a string) escape the
		// first pass over the body: each is held to the limits when read.
		// (Their strings cannot be longer than the string holding them.)
		{"too deep in data_base64", `{"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":"` + b64(deep) + `"}`, "nested deeper"},
		{"too deep in a Sensor event string", `{"event":"{\"context\":{},\"data\":\"` + b64(deep) + `\"}"}`, "nested deeper"},
		{"invalid JSON in data_base64", `{"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":"` + b64(`{"a":`) + `"}`, "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Decode([]byte(tc.body), Meta{})
			if err == nil {
				t.Fatal("want an error")
			}
			if !IsInputError(err) {
				t.Errorf("error %v is not an input error", err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error = %q, want it to contain %q", err, tc.contains)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	d := NewDecoder("c", DefaultLimits())
	body := `{"rolloutName":"a","namespace":"b","phase":"Degraded","message":"bad\u0000\u0007 text \u202Eevil\r\nline2","rolloutURL":"javascript:alert(1)","dashboardURL":"https://ok.example/x"}`
	dec, err := d.Decode([]byte(body), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	in := dec.Incident
	if in.Message != "bad text evil\nline2" {
		t.Errorf("message = %q", in.Message)
	}
	if len(in.Links) != 1 || in.Links[0].URL != "https://ok.example/x" {
		t.Errorf("links = %+v (javascript: must be dropped)", in.Links)
	}
}

func TestDNSNames(t *testing.T) {
	for s, want := range map[string][2]bool{ // subdomain, label
		"checkout-api": {true, true}, "a": {true, true}, "a.b": {true, false}, "-a": {false, false}, "a-": {false, false},
		"A": {false, false}, "": {false, false}, "a_b": {false, false}, `["x"]`: {false, false},
		strings.Repeat("a", 63): {true, true}, strings.Repeat("a", 64): {true, false}, strings.Repeat("a", 254): {false, false},
	} {
		if got := [2]bool{dns1123Subdomain.MatchString(s), dns1123Label.MatchString(s)}; got != want {
			t.Errorf("%q: %v, want %v", s, got, want)
		}
	}
}

// TestApplicationStaysOwnIncident: an application degraded for another
// reason than one aborted Rollout (here two, and a sync failure) keeps its
// own incident.
func TestApplicationStaysOwnIncident(t *testing.T) {
	d := NewDecoder("c", DefaultLimits())
	for name, body := range map[string]string{
		"two rollouts": `{"source":"argocd","app":"shop","appNamespace":"argocd","healthStatus":"Degraded","syncRevision":"abc","degradedResources":[
			{"kind":"Rollout","namespace":"p","name":"a","healthStatus":"Degraded","healthMessage":"RolloutAborted: Rollout aborted update to revision 3"},
			{"kind":"Rollout","namespace":"p","name":"b","healthStatus":"Degraded","healthMessage":"RolloutAborted: Rollout aborted update to revision 5"}]}`,
		"no revision": `{"source":"argocd","app":"shop","appNamespace":"argocd","healthStatus":"Degraded","syncRevision":"abc","degradedResources":[
			{"kind":"Rollout","namespace":"p","name":"a","healthStatus":"Degraded","healthMessage":"ProgressDeadlineExceeded: ReplicaSet \"a-1\" has timed out progressing."}]}`,
		"sync failed": `{"source":"argocd","app":"shop","appNamespace":"argocd","healthStatus":"Degraded","operationPhase":"Failed","operationMessage":"one or more objects failed to apply","operationRevision":"abc","degradedResources":[
			{"kind":"Rollout","namespace":"p","name":"a","healthStatus":"Degraded","healthMessage":"RolloutAborted: Rollout aborted update to revision 3"}]}`,
	} {
		dec, err := d.Decode([]byte(body), Meta{})
		if err != nil || dec.Incident == nil {
			t.Fatalf("%s: %v %+v", name, err, dec)
		}
		if in := dec.Incident; in.Kind != incident.KindApplication || in.Subject() != "argocd/shop" || in.Revision != "abc" {
			t.Errorf("%s: %s %s %s", name, in.Kind, in.Subject(), in.Revision)
		}
	}
}

func TestOwnerFromAnnotation(t *testing.T) {
	body := `{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"a","namespace":"b","annotations":{"backstage.io/entity-ref":"group:default/payments-team","rollout.argoproj.io/revision":"2"}},"status":{"phase":"Degraded","message":"RolloutAborted: x"}}`
	dec, err := NewDecoder("c", DefaultLimits()).Decode([]byte(body), Meta{})
	if err != nil || dec.Incident == nil || dec.Incident.Owner != "group:default/payments-team" {
		t.Fatalf("%v %+v", err, dec)
	}
}

// TestDecodeRecovery: the events that say a failed object is healthy again
// stay ignored (no incident of their own) and carry the recovery the
// opener uses to end the object's incident.
func TestDecodeRecovery(t *testing.T) {
	d := NewDecoder("prod-eu-1", DefaultLimits())
	appObject := func(t *testing.T, edit func(st map[string]any)) []byte {
		var app map[string]any
		if err := json.Unmarshal(readFixture(t, "argocd-app-resource.json"), &app); err != nil {
			t.Fatal(err)
		}
		edit(app["status"].(map[string]any))
		b, _ := json.Marshal(app)
		return b
	}
	healthyApp := func(st map[string]any) {
		st["health"] = map[string]any{"status": "Healthy", "lastTransitionTime": "2025-06-12T14:21:09Z"}
		st["sync"].(map[string]any)["revision"] = "4b7e9d2c1a0f8e6d5c4b3a29180f7e6d5c4b3a21"
		st["operationState"].(map[string]any)["syncResult"].(map[string]any)["revision"] = "4b7e9d2c1a0f8e6d5c4b3a29180f7e6d5c4b3a21"
		for _, r := range st["resources"].([]any) {
			if h, ok := r.(map[string]any)["health"].(map[string]any); ok {
				h["status"], h["message"] = "Healthy", ""
			}
		}
	}
	tests := []struct {
		name    string
		body    []byte
		meta    Meta
		want    *incident.Recovery // nil: ignored without a recovery
		ignored string
	}{{
		name: "Rollout Healthy at the next revision (resource UPDATE)",
		body: readFixture(t, "argo-events-resource-rollout-healthy.json"),
		want: &incident.Recovery{Cluster: "prod-eu-1", Kind: "Rollout", Namespace: "payments", Name: "checkout-api", Revision: "8", State: "Healthy",
			At: time.Date(2025, 6, 12, 14, 21, 4, 0, time.UTC), Source: "Argo Events resource event (UPDATE Rollout)"},
		ignored: "is Healthy",
	}, {
		name: "Argo CD application Healthy and Synced (on-deployed notification)",
		body: readFixture(t, "argocd-app-healthy-synced.json"),
		meta: Meta{Time: time.Date(2025, 6, 12, 14, 21, 10, 0, time.UTC)},
		want: &incident.Recovery{Cluster: "prod-eu-1", Kind: "Application", Namespace: "argocd", Name: "checkout-api-prod",
			Revision: "4b7e9d2c1a0f8e6d5c4b3a29180f7e6d5c4b3a21", State: "Healthy and Synced",
			// The template carries no health time: the delivery's time stands in.
			At: time.Date(2025, 6, 12, 14, 21, 10, 0, time.UTC), Source: "Argo CD notification"},
		ignored: "Healthy and Synced",
	}, {
		name: "Argo CD Application object Healthy and Synced",
		body: appObject(t, healthyApp),
		want: &incident.Recovery{Cluster: "prod-eu-1", Kind: "Application", Namespace: "argocd", Name: "checkout-api-prod",
			Revision: "4b7e9d2c1a0f8e6d5c4b3a29180f7e6d5c4b3a21", State: "Healthy and Synced",
			At: time.Date(2025, 6, 12, 14, 21, 9, 0, time.UTC), Source: "Application object"},
		ignored: "Healthy",
	}, {
		name: "Argo CD Application Healthy but OutOfSync is no recovery",
		body: appObject(t, func(st map[string]any) { healthyApp(st); st["sync"].(map[string]any)["status"] = "OutOfSync" }),
	}, {
		name: "Workflow Succeeded on retry (same uid)",
		body: readFixture(t, "workflow-succeeded-retry.json"),
		want: &incident.Recovery{Cluster: "prod-eu-1", Kind: "Workflow", Namespace: "payments", Name: "db-migrate-x7k2p",
			Revision: "0b6f3a2e-4d1c-4e8b-9a7f-6c5d4e3b2a10", State: "Succeeded",
			At: time.Date(2025, 6, 12, 14, 12, 40, 0, time.UTC), Source: "Workflow object"},
		ignored: "Succeeded",
	}, {
		name: "Rollouts notification Healthy (on-rollout-completed)",
		body: []byte(`{"rolloutName":"checkout-api","namespace":"payments","phase":"Healthy","message":"","timestamp":"2025-06-12T14:21:05Z"}`),
		want: &incident.Recovery{Cluster: "prod-eu-1", Kind: "Rollout", Namespace: "payments", Name: "checkout-api", State: "Healthy",
			At: time.Date(2025, 6, 12, 14, 21, 5, 0, time.UTC), Source: "Argo Rollouts notification"},
		ignored: "Healthy",
	}, {
		name: "Progressing rollout is no recovery",
		body: []byte(`{"type":"UPDATE","body":` + string(mustField(t, readFixture(t, "argo-events-resource-rollout-healthy.json"), "oldBody")) + `}`),
	}, {
		name: "DELETE of a healthy rollout is no recovery",
		body: []byte(`{"type":"DELETE","body":` + string(mustField(t, readFixture(t, "argo-events-resource-rollout-healthy.json"), "body")) + `}`),
	}, {
		name: "successful analysis is no recovery (the rollout may still fail)",
		body: []byte(`{"apiVersion":"argoproj.io/v1alpha1","kind":"AnalysisRun","metadata":{"name":"r","namespace":"n"},"status":{"phase":"Successful"}}`),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec, err := d.Decode(tt.body, tt.meta)
			if err != nil {
				t.Fatal(err)
			}
			if dec.Incident != nil || dec.Ignored == "" {
				t.Fatalf("want ignored, got %+v", dec)
			}
			if !strings.Contains(dec.Ignored, tt.ignored) {
				t.Errorf("ignored %q, want it to contain %q", dec.Ignored, tt.ignored)
			}
			switch {
			case tt.want == nil && dec.Recovery != nil:
				t.Errorf("unexpected recovery %+v", dec.Recovery)
			case tt.want != nil && dec.Recovery == nil:
				t.Fatal("no recovery")
			case tt.want != nil && *dec.Recovery != *tt.want:
				t.Errorf("recovery\n got %+v\nwant %+v", *dec.Recovery, *tt.want)
			}
		})
	}

	// The healthy Rollout ends the incident of revision 7 that the failure
	// fixtures open, and the Argo CD recovery ends it through its
	// application; the Workflow's retry ends the Workflow's.
	failed := func(name string) *incident.Incident {
		dec, err := d.Decode(readFixture(t, name), Meta{})
		if err != nil || dec.Incident == nil {
			t.Fatalf("%s: %v %+v", name, err, dec)
		}
		return dec.Incident
	}
	for _, c := range []struct{ failure, recovery string }{
		{"argo-events-resource-rollout-degraded.json", "argo-events-resource-rollout-healthy.json"},
		{"argocd-app-health-degraded.json", "argocd-app-healthy-synced.json"},
		{"workflow-failed.json", "workflow-succeeded-retry.json"},
	} {
		in := failed(c.failure)
		dec, err := d.Decode(readFixture(t, c.recovery), Meta{Time: time.Date(2025, 6, 12, 14, 21, 10, 0, time.UTC)})
		if err != nil || dec.Recovery == nil {
			t.Fatalf("%s: %v %+v", c.recovery, err, dec)
		}
		if !dec.Recovery.Ends(in) {
			t.Errorf("%s does not end the incident of %s", c.recovery, c.failure)
		}
	}
}

func mustField(t *testing.T, doc []byte, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil || m[key] == nil {
		t.Fatalf("field %s: %v", key, err)
	}
	return m[key]
}

// TestDecodeFacts: the facts the later events of a rollback carry.
func TestDecodeFacts(t *testing.T) {
	d := NewDecoder("c", DefaultLimits())
	decode := func(t *testing.T, body []byte) *incident.Incident {
		t.Helper()
		dec, err := d.Decode(body, Meta{})
		if err != nil || dec.Incident == nil {
			t.Fatalf("%v %+v", err, dec)
		}
		return dec.Incident
	}
	t.Run("the thin notification's message names the failed metric", func(t *testing.T) {
		in := decode(t, readFixture(t, "rollout-notification-webhook.json"))
		want := incident.Analysis{Metric: "success-rate", Phase: "Failed", Failed: 3, FailureLimit: "2", Assessment: "failed (3) > failureLimit (2)"}
		if len(in.Analysis) != 1 || !equalAnalysis(in.Analysis[0], want) {
			t.Errorf("analysis %+v", in.Analysis)
		}
	})
	t.Run("the Rollout's analysis status names the run and, in its message, the metric", func(t *testing.T) {
		in := decode(t, readFixture(t, "rollout-aborted-object.json"))
		want := incident.Analysis{Run: "checkout-api-6f9c7b8d5-7-2", Metric: "success-rate", Phase: "Failed", Failed: 3, FailureLimit: "2",
			Assessment: "failed (3) > failureLimit (2)", Message: `Metric "success-rate" assessed Failed due to failed (3) > failureLimit (2)`}
		if len(in.Analysis) != 1 || !equalAnalysis(in.Analysis[0], want) {
			t.Errorf("analysis %+v", in.Analysis)
		}
	})
	t.Run("an error metric: its limit, no failure limit, the provider's error", func(t *testing.T) {
		in := decode(t, []byte(`{"apiVersion":"argoproj.io/v1alpha1","kind":"AnalysisRun",
			"metadata":{"name":"r","namespace":"n","ownerReferences":[{"kind":"Rollout","name":"x"}]},
			"spec":{"metrics":[{"name":"latency","provider":{"datadog":{"query":"q"}}}]},
			"status":{"phase":"Error","message":"Metric \"latency\" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): \"Error Message: 403 Forbidden\"",
			"metricResults":[{"name":"latency","phase":"Error","count":5,"error":5,"measurements":[{"phase":"Error","message":"403 Forbidden"}]}]}}`))
		a := in.Analysis[0]
		if a.Provider != "datadog" || a.FailureLimit != "0" || a.Assessment != "consecutiveErrors (5) > consecutiveErrorLimit (4)" || a.Message != "403 Forbidden" {
			t.Errorf("%+v", a)
		}
	})
	t.Run("owner and priority annotations; the rollback-incident one wins", func(t *testing.T) {
		in := decode(t, []byte(`{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","metadata":{"name":"a","namespace":"b","annotations":{
			"rollback-incident/owner":"group:default/payments","backstage.io/entity-ref":"component:default/a","rollback-incident/priority":" High ","rollout.argoproj.io/revision":"2"}},
			"status":{"phase":"Degraded","message":"RolloutAborted: x"}}`))
		if in.Owner != "group:default/payments" || in.RequestedPriority != "High" {
			t.Errorf("owner %q priority %q", in.Owner, in.RequestedPriority)
		}
	})
	t.Run("notification owner and priority", func(t *testing.T) {
		in := decode(t, []byte(`{"rolloutName":"a","namespace":"b","phase":"Degraded","owner":"group:default/x","priority":"Highest"}`))
		if in.Owner != "group:default/x" || in.RequestedPriority != "Highest" {
			t.Errorf("owner %q priority %q", in.Owner, in.RequestedPriority)
		}
	})
	t.Run("Argo CD: the sync's end is the lead-up, not the failure", func(t *testing.T) {
		in := decode(t, readFixture(t, "argocd-app-health-degraded.json"))
		if !in.Time.IsZero() || !in.SyncedAt.Equal(time.Date(2025, 6, 12, 13, 55, 42, 0, time.UTC)) {
			t.Errorf("time %v synced at %v", in.Time, in.SyncedAt)
		}
		if len(in.Analysis) != 1 || in.Analysis[0].Metric != "success-rate" {
			t.Errorf("analysis from the Rollout's health message: %+v", in.Analysis)
		}
		in = decode(t, readFixture(t, "argocd-app-resource.json"))
		if !in.Time.Equal(time.Date(2025, 6, 12, 14, 3, 29, 0, time.UTC)) || !in.SyncedAt.Equal(time.Date(2025, 6, 12, 13, 55, 42, 0, time.UTC)) {
			t.Errorf("object: time %v synced at %v", in.Time, in.SyncedAt)
		}
	})
	t.Run("Argo CD: a sync failure happened when the operation ended", func(t *testing.T) {
		in := decode(t, []byte(`{"source":"argocd","app":"shop","appNamespace":"argocd","healthStatus":"Healthy","operationPhase":"Failed","operationMessage":"one or more objects failed to apply","operationRevision":"abc","finishedAt":"2025-06-12T10:00:00Z"}`))
		if !in.Time.Equal(time.Date(2025, 6, 12, 10, 0, 0, 0, time.UTC)) || !in.SyncedAt.IsZero() {
			t.Errorf("time %v synced at %v", in.Time, in.SyncedAt)
		}
	})
	t.Run("Application object external URLs are links", func(t *testing.T) {
		var app map[string]any
		_ = json.Unmarshal(readFixture(t, "argocd-app-resource.json"), &app)
		app["status"].(map[string]any)["summary"] = map[string]any{"externalURLs": []string{"https://shop.example.com/", "javascript:alert(1)"}}
		b, _ := json.Marshal(app)
		in := decode(t, b)
		if len(in.Links) != 1 || in.Links[0].URL != "https://shop.example.com/" {
			t.Errorf("links %+v", in.Links)
		}
	})
}

func equalAnalysis(a, b incident.Analysis) bool {
	return a.Run == b.Run && a.Metric == b.Metric && a.Phase == b.Phase && a.Failed == b.Failed && a.Count == b.Count &&
		a.FailureLimit == b.FailureLimit && a.Assessment == b.Assessment && a.Provider == b.Provider && a.Message == b.Message &&
		strings.Join(a.Values, ",") == strings.Join(b.Values, ",")
}
