package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	aev1 "github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	"github.com/argoproj/argo-events/pkg/sensors/dependencies"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

var updateFixtures = flag.Bool("update", false, "rewrite the rendered notification fixtures")

// The manual-rollback watch (deploy/argo-events): the ReplicaSet resource
// EventSource, its RBAC and the Sensor that forwards the revision rises.
const (
	rsEventSourceFile = "argo-events/eventsource-replicasets.yaml"
	rsRBACFile        = "argo-events/rbac-replicasets.yaml"
	rsSensorFile      = "argo-events/sensor-rollbacks.yaml"
	rsDependency      = "replicaset-revision-rise"
)

// replicaSetFixtures are the ReplicaSet events as the controllers write
// them (testdata/fixtures), with whether each is a rollback.
var replicaSetFixtures = map[string]bool{
	"replicaset-rollout-new-add.json":          false, // a normal rollout's new ReplicaSet
	"replicaset-rollout-scale-up.json":         false, // ... scaled up
	"replicaset-scale-down.json":               false, // the old one scaled down
	"replicaset-resync.json":                   false, // annotation copy: history grows, revision stays
	"replicaset-deployment-undo.json":          true,  // kubectl rollout undo
	"replicaset-rollout-undo-after-abort.json": true,  // the stable template restored after an abort
}

func TestReplicaSetWatchManifests(t *testing.T) {
	es := loadEventSource(t, rsEventSourceFile)
	src, ok := es.Spec.Resource["replicasets"]
	if !ok || len(es.Spec.Resource) != 1 {
		t.Fatalf("resources %v: want one event named replicasets", es.Spec.Resource)
	}
	if src.Group != "apps" || src.Version != "v1" || src.Resource != "replicasets" || src.Namespace != "" {
		t.Errorf("watches %s/%s %s in %q, want apps/v1 replicasets in every namespace", src.Group, src.Version, src.Resource, src.Namespace)
	}
	// Only UPDATEs can show a revision rise (the function ignores the rest;
	// sending them would only load the bus).
	if !slices.Equal(src.EventTypes, []aev1.ResourceEventType{aev1.UPDATE}) {
		t.Errorf("event types %v, want [UPDATE]", src.EventTypes)
	}

	// The opt-in label, as the EventSource's informer selects (sources/
	// resource LabelSelector: one requirement per entry, "=" by default):
	// the fixtures' ReplicaSets carry it (from their pod template), a
	// ReplicaSet without it is not watched.
	if src.Filter == nil || len(src.Filter.Labels) == 0 {
		t.Fatal("no label filter: every ReplicaSet of the cluster would be watched")
	}
	sel := labels.NewSelector()
	for _, l := range src.Filter.Labels {
		if l.Operation != "" && l.Operation != "=" && l.Operation != "==" {
			t.Fatalf("label filter %+v: only equality is expected", l)
		}
		req, err := labels.NewRequirement(l.Key, selection.Equals, []string{l.Value})
		if err != nil {
			t.Fatalf("label filter %+v: %v", l, err)
		}
		sel = sel.Add(*req)
	}
	for name := range replicaSetFixtures {
		var ev struct {
			Body struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
			} `json:"body"`
		}
		if err := json.Unmarshal(readFixture(t, name), &ev); err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(labels.Set(ev.Body.Metadata.Labels)) {
			t.Errorf("%s: labels %v do not match the watch's selector %s", name, ev.Body.Metadata.Labels, sel)
		}
		delete(ev.Body.Metadata.Labels, "rollback-incident/enabled")
		if sel.Matches(labels.Set(ev.Body.Metadata.Labels)) {
			t.Errorf("selector %s matches a ReplicaSet that did not opt in", sel)
		}
	}

	// RBAC: the EventSource's ServiceAccount may list and watch ReplicaSets.
	var (
		sa      corev1.ServiceAccount
		role    rbacv1.ClusterRole
		binding rbacv1.ClusterRoleBinding
	)
	docs := yamlDocs(t, rsRBACFile)
	if len(docs) != 3 {
		t.Fatalf("%s: %d documents, want ServiceAccount, ClusterRole, ClusterRoleBinding", rsRBACFile, len(docs))
	}
	mustStrict(t, rsRBACFile, docs[0], &sa)
	mustStrict(t, rsRBACFile, docs[1], &role)
	mustStrict(t, rsRBACFile, docs[2], &binding)
	if es.Spec.Template == nil || es.Spec.Template.ServiceAccountName != sa.Name {
		t.Errorf("the EventSource does not run as %s", sa.Name)
	}
	var verbs []string
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, "apps") && slices.Contains(r.Resources, "replicasets") {
			verbs = append(verbs, r.Verbs...)
		}
	}
	for _, v := range []string{"get", "list", "watch"} {
		if !slices.Contains(verbs, v) {
			t.Errorf("ClusterRole %s lacks %s on apps/replicasets (has %v)", role.Name, v, verbs)
		}
	}
	if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != role.Name ||
		len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" || binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != "argo-events" {
		t.Errorf("binding %+v does not give %s to argo-events/%s", binding, role.Name, sa.Name)
	}

	// The Sensor depends on this EventSource, one trigger for it.
	sensor := loadRollbackSensor(t)
	if len(sensor.Spec.Dependencies) != 1 {
		t.Fatalf("dependencies %v", sensor.Spec.Dependencies)
	}
	if d := sensor.Spec.Dependencies[0]; d.Name != rsDependency || d.EventSourceName != es.Name || d.EventName != "replicasets" {
		t.Errorf("dependency %+v does not name %s/replicasets", d, es.Name)
	}

	// And kubectl apply -k deploy/ applies all of it in argo-events.
	ns := map[string]string{}
	for _, o := range builtObjects(t, ".") {
		switch o := o.(type) {
		case *aev1.EventSource:
			ns["EventSource/"+o.Name] = o.Namespace
		case *aev1.Sensor:
			ns["Sensor/"+o.Name] = o.Namespace
		case *corev1.ServiceAccount:
			ns["ServiceAccount/"+o.Name] = o.Namespace
		case *rbacv1.ClusterRoleBinding:
			if len(o.Subjects) > 0 {
				ns["ClusterRoleBinding/"+o.Name] = o.Subjects[0].Namespace
			}
		}
	}
	for _, k := range []string{"EventSource/" + es.Name, "Sensor/" + sensor.Name, "ServiceAccount/" + sa.Name, "ClusterRoleBinding/" + binding.Name} {
		if ns[k] != "argo-events" {
			t.Errorf("%s: namespace %q in the root build, want argo-events", k, ns[k])
		}
	}
}

func loadRollbackSensor(t *testing.T) *aev1.Sensor {
	t.Helper()
	var s aev1.Sensor
	loadOne(t, rsSensorFile, &s)
	return &s
}

// The Sensor's filter, run by the Argo Events v1.9.6 filter code, passes
// exactly the rollbacks: scale-ups, scale-downs, annotation copies and new
// ReplicaSets stay in the cluster.
func TestRollbackSensorPassesOnlyRevisionRises(t *testing.T) {
	sensor := loadRollbackSensor(t)
	dep := sensor.Spec.Dependencies[0]
	if dep.Filters == nil || dep.Filters.Script == "" {
		t.Fatal("no filter: every ReplicaSet UPDATE would reach the function")
	}
	check := func(name string, data []byte, want bool) {
		t.Helper()
		ev := convertEvent(esEvent(t, "replicasets-resource", "replicasets", "resource", data))
		pass, err := dependencies.Filter(ev, dep.Filters, dep.FiltersLogicalOperator)
		if err != nil {
			t.Errorf("%s: filter error (the Sensor would log it for every event): %v", name, err)
		}
		if pass != want {
			t.Errorf("%s: passed %v, want %v", name, pass, want)
		}
	}
	for name, rollback := range replicaSetFixtures {
		check(name, readFixture(t, name), rollback)
	}
	// The Rollout watch's events and a ReplicaSet without annotations go
	// through the script without an error.
	check("a Rollout UPDATE", readFixture(t, "argo-events-resource-rollout-degraded.json"), false)
	check("a ReplicaSet without annotations", []byte(`{"type":"UPDATE","body":{"metadata":{"name":"x"}},"oldBody":{"metadata":{}},"group":"apps","version":"v1","resource":"replicasets"}`), false)
}

// The rollback's event through the Sensor's trigger (Argo Events v1.9.6
// code) to the function: a binary CloudEvent carrying body and oldBody, one
// incident; the replay (a redelivery) is the same incident.
func TestRollbackSensorTriggersTheFunction(t *testing.T) {
	s := startStack(t)
	useSensorSecret(t)
	sensor := loadRollbackSensor(t)
	event := esEvent(t, "replicasets-resource", "replicasets", "resource", readFixture(t, "replicaset-deployment-undo.json"))
	r := runSensorTrigger(t, sensor, rsDependency, event)
	if r.err != nil || r.attempts != 1 {
		t.Fatalf("undo: %v after %d attempts\n%s", r.err, r.attempts, s.fn.Output())
	}
	checkCloudEventRequest(t, r, "argo-events/replicasets-resource/replicasets", "io.argoproj.events.resource", "shop/inventory-7c9d8f6b54", "created")
	issue := s.requireOneIncident()
	if !strings.Contains(issue.Summary, "shop/inventory") {
		t.Errorf("summary %q does not name the Deployment", issue.Summary)
	}

	r = runSensorTrigger(t, sensor, rsDependency, event)
	if r.err != nil {
		t.Fatal(r.err)
	}
	checkCloudEventRequest(t, r, "argo-events/replicasets-resource/replicasets", "io.argoproj.events.resource", "shop/inventory-7c9d8f6b54", "existing")
	s.requireOneIncident()

	// A scale-down never reaches the function.
	r = runSensorTrigger(t, sensor, rsDependency, esEvent(t, "replicasets-resource", "replicasets", "resource", readFixture(t, "replicaset-scale-down.json")))
	if !errors.Is(r.err, errFiltered) || r.attempts != 0 {
		t.Errorf("scale-down: %v after %d attempts, want filtered", r.err, r.attempts)
	}
	if n := len(clusterProxy.take(functionHost)); n != 0 {
		t.Errorf("the function got %d requests for a scale-down", n)
	}
}

// rollbackApplication is the Application after Argo CD's rollback
// completed (the body of the fixture's UPDATE), with the subscriptions of
// deploy/argocd/application-subscription.yaml.
func rollbackApplication(t *testing.T, which string) map[string]any {
	t.Helper()
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(readFixture(t, "argocd-app-rollback.json"), &ev); err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(ev[which], &obj); err != nil {
		t.Fatal(err)
	}
	var sub metadataPatch
	loadOne(t, "argocd/application-subscription.yaml", &sub)
	ann := obj["metadata"].(map[string]any)["annotations"].(map[string]any)
	for k := range ann {
		delete(ann, k)
	}
	for k, v := range sub.Metadata.Annotations {
		ann[k] = v
	}
	return obj
}

// The on-rollback trigger and template of deploy/argocd, run by
// notifications-engine v0.5.0 as Argo CD runs them: it fires once for the
// completed rollback (not while it runs, not for a degraded application,
// not for a sync of the current or a new revision) and the function opens
// the rollback's incident from the body.
func TestArgoCDRollbackNotification(t *testing.T) {
	var cm corev1.ConfigMap
	loadOne(t, "argocd/argocd-notifications-cm.yaml", &cm)
	s := startStack(t)
	secret := &corev1.Secret{Data: map[string][]byte{"rollback-incident-token": []byte(testToken)}}
	n := newAPI(t, &cm, secret, argocdGetVars(t, &cm, secret))
	const trigger = "on-rollback-rollback-incident"

	notFired := map[string]map[string]any{
		"the rollback still running":          rollbackApplication(t, "oldBody"),
		"an application degraded by an abort": applicationFixture(t),
	}
	resync := rollbackApplication(t, "body")
	h := resync["status"].(map[string]any)["history"].([]any)
	h[len(h)-1].(map[string]any)["revision"] = h[len(h)-2].(map[string]any)["revision"]
	notFired["a sync of the current revision again"] = resync
	newRev := rollbackApplication(t, "body")
	h = newRev["status"].(map[string]any)["history"].([]any)
	h[len(h)-1].(map[string]any)["revision"] = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
	notFired["a sync of a new revision"] = newRev
	dry := rollbackApplication(t, "body")
	h = dry["status"].(map[string]any)["history"].([]any)
	h[len(h)-1].(map[string]any)["deployStartedAt"] = "2025-06-12T14:00:00Z" // the entry is an earlier operation's
	notFired["an operation that added no history entry"] = dry
	for name, app := range notFired {
		if trig, errs := argocdSend(t, n, app, trigger); trig || len(errs) > 0 {
			t.Errorf("%s: triggered %v, errors %v", name, trig, errs)
		}
	}
	if ex := clusterProxy.take(functionHost); len(ex) != 0 {
		t.Fatalf("the function got %d requests before the rollback completed", len(ex))
	}

	app := rollbackApplication(t, "body")
	res, err := n.RunTrigger(trigger, app)
	if err != nil || len(res) != 1 || !res[0].Triggered || res[0].OncePer != "42" {
		t.Fatalf("RunTrigger: %v %+v; want triggered once per history entry 42", err, res)
	}
	if trig, errs := argocdSend(t, n, app, trigger); !trig || len(errs) > 0 {
		t.Fatalf("rollback: triggered %v, errors %v", trig, errs)
	}
	ex := clusterProxy.take(functionHost)
	if len(ex) != 1 {
		t.Fatalf("function got %d requests", len(ex))
	}
	var r functionReply
	_ = json.Unmarshal(ex[0].RBody, &r)
	if ex[0].Status != 200 || r.Status != "created" {
		t.Fatalf("function answered %d %s to %s", ex[0].Status, ex[0].RBody, ex[0].Body)
	}
	issue := s.requireOneIncident()
	if !strings.Contains(issue.Summary, "argocd/checkout-api-prod") {
		t.Errorf("summary %q does not name the application", issue.Summary)
	}

	// The rendered body is the fixture the function's own tests decode.
	fixture := filepath.Join(repoRoot, "testdata", "fixtures", "argocd-app-rollback-notification.json")
	if *updateFixtures {
		if err := os.WriteFile(fixture, ex[0].Body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, ex[0].Body) {
		t.Errorf("the template renders a body other than %s (go test -run %s -update rewrites it):\n%s", fixture, t.Name(), ex[0].Body)
	}
}
