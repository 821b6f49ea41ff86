package deploy

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/notifications-engine/pkg/api"
	"github.com/argoproj/notifications-engine/pkg/services"
	"github.com/argoproj/notifications-engine/pkg/subscriptions"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// ---- Argo Rollouts v1.9.3 notification sending, as utils/record/record.go does

// rolloutsGetVars is Rollouts' NewAPIFactorySettings InitGetVars (v1.9.3):
// rollout, analysisRuns (those of the rollout's revision), time, secrets.
func rolloutsGetVars(secret *corev1.Secret, analysisRuns any) api.GetVars {
	timeExprs := map[string]any{
		"Parse": func(ts string) time.Time { t, _ := time.Parse(time.RFC3339, ts); return t },
		"Now":   time.Now,
	}
	return func(obj map[string]any, _ services.Destination) map[string]any {
		return map[string]any{"rollout": obj, "analysisRuns": analysisRuns, "time": timeExprs, "secrets": secret.Data}
	}
}

// translateReasonToTrigger is record.go's: "on-" + kebab-case(reason).
func translateReasonToTrigger(reason string) string {
	matchFirstCap := regexp.MustCompile("(.)([A-Z][a-z]+)")
	matchAllCap := regexp.MustCompile("([a-z0-9])([A-Z])")
	trigger := matchFirstCap.ReplaceAllString(reason, "${1}-${2}")
	trigger = matchAllCap.ReplaceAllString(trigger, "${1}-${2}")
	return "on-" + strings.ToLower(trigger)
}

func conditionHash(s string) string {
	h := sha1.New()
	_, _ = h.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// rolloutsSend is record.go sendNotifications for one Kubernetes event
// reason: destinations from the object's subscription annotations, the
// trigger named after the reason, Send for every condition (Rollouts sends
// conditions without `when` unconditionally). It returns how many
// notifications were sent.
func rolloutsSend(t *testing.T, n api.API, obj map[string]any, reason string) (int, []error) {
	t.Helper()
	cfg := n.GetConfig()
	meta := obj["metadata"].(map[string]any)
	labels, annotations := map[string]string{}, map[string]string{}
	for k, v := range asMap(meta["labels"]) {
		labels[k] = v.(string)
	}
	for k, v := range asMap(meta["annotations"]) {
		annotations[k] = v.(string)
	}
	destByTrigger := cfg.GetGlobalDestinations(labels)
	destByTrigger.Merge(subscriptions.NewAnnotations(annotations).GetDestinations(cfg.DefaultTriggers, cfg.ServiceDefaultTriggers))
	trigger := translateReasonToTrigger(reason)
	sent := 0
	var errs []error
	for _, dest := range destByTrigger[trigger] {
		res, err := n.RunTrigger(trigger, obj)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range res {
			s := strings.Split(c.Key, ".")[1]
			if (s != conditionHash("") && c.Triggered) || s == conditionHash("") {
				if err := n.Send(obj, c.Templates, dest); err != nil {
					errs = append(errs, err)
					continue
				}
				sent++
			}
		}
	}
	return sent, errs
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// rolloutFixture is the real aborted Rollout, opted in with the annotations
// and label of deploy/argo-rollouts/rollout-subscription.yaml (its own
// seed-article subscription removed).
func rolloutFixture(t *testing.T) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(readFixture(t, "rollout-aborted-object.json"), &obj); err != nil {
		t.Fatal(err)
	}
	var sub metadataPatch
	loadOne(t, "argo-rollouts/rollout-subscription.yaml", &sub)
	meta := obj["metadata"].(map[string]any)
	ann := asMap(meta["annotations"])
	for k := range ann {
		if strings.HasPrefix(k, "notifications.argoproj.io/") {
			delete(ann, k)
		}
	}
	for k, v := range sub.Metadata.Annotations {
		ann[k] = v
	}
	labels := asMap(meta["labels"])
	for k, v := range sub.Metadata.Labels {
		labels[k] = v
	}
	return obj
}

func rolloutsConfigMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	loadOne(t, "argo-rollouts/base/argo-rollouts-notification-configmap.yaml", &cm)
	return &cm
}

func newAPI(t *testing.T, cm *corev1.ConfigMap, secret *corev1.Secret, getVars api.GetVars) api.API {
	t.Helper()
	cfg, err := api.ParseConfig(cm, secret)
	if err != nil {
		t.Fatalf("notifications-engine ParseConfig: %v", err)
	}
	n, err := api.NewAPI(*cfg, getVars)
	if err != nil {
		t.Fatalf("notifications-engine NewAPI: %v", err)
	}
	return n
}

var rolloutsReasons = []string{"AnalysisRunFailed", "RolloutAborted", "AnalysisRunError"}

// Direct variant: Rollouts notifications straight to the function.
func TestRolloutsNotificationsOpenOneIncident(t *testing.T) {
	s := startStack(t)
	secret := &corev1.Secret{Data: map[string][]byte{"rollback-incident-token": []byte(testToken)}}
	var ar any
	if err := json.Unmarshal([]byte("["+string(readFixture(t, "analysisrun-failed.json"))+"]"), &ar); err != nil {
		t.Fatal(err)
	}
	n := newAPI(t, rolloutsConfigMap(t), secret, rolloutsGetVars(secret, ar))
	obj := rolloutFixture(t)

	for i, reason := range rolloutsReasons {
		sent, errs := rolloutsSend(t, n, obj, reason)
		if len(errs) > 0 || sent != 1 {
			t.Fatalf("%s: sent %d, errors %v", reason, sent, errs)
		}
		ex := clusterProxy.take(functionHost)
		if len(ex) != 1 {
			t.Fatalf("%s: the function got %d requests, want 1", reason, len(ex))
		}
		e := ex[0]
		if e.Method != http.MethodPost || e.Header.Get("Content-Type") != "application/json" ||
			e.Header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("%s: request %s, headers %v", reason, e.Method, e.Header)
		}
		var body map[string]any
		if err := json.Unmarshal(e.Body, &body); err != nil {
			t.Fatalf("%s: the rendered body is not JSON: %v\n%s", reason, err, e.Body)
		}
		for k, want := range map[string]any{
			"reason": reason, "rolloutName": "checkout-api", "namespace": "payments", "phase": "Degraded",
			"revision": "7", "podHash": "6f9c7b8d5", "stableRS": "5d8f9c6b7", "strategy": "canary",
			"abortedAt": "2025-06-12T14:03:27Z", "jiraProject": "", "jiraIssueType": "",
		} {
			if body[k] != want {
				t.Errorf("%s: body %s = %#v, want %#v", reason, k, body[k], want)
			}
		}
		if msg, _ := body["message"].(string); !strings.Contains(msg, `Metric "success-rate" assessed Failed`) {
			t.Errorf("%s: message %q lost its quotes", reason, msg)
		}
		if imgs, _ := json.Marshal(body["images"]); string(imgs) != `[{"container":"checkout-api","image":"registry.example.com/payments/checkout-api:1.42.0"}]` {
			t.Errorf("%s: images %s", reason, imgs)
		}
		if _, err := time.Parse(time.RFC3339, body["timestamp"].(string)); err != nil {
			t.Errorf("%s: timestamp: %v", reason, err)
		}
		var r functionReply
		_ = json.Unmarshal(e.RBody, &r)
		wantStatus := "existing"
		if i == 0 {
			wantStatus = "created"
		}
		if e.Status != http.StatusOK || r.Status != wantStatus {
			t.Errorf("%s: function answered %d %s, want 200 %s", reason, e.Status, e.RBody, wantStatus)
		}
	}
	s.requireOneIncident()

	// A trigger named after no Kubernetes event reason never fires: there is
	// no RolloutDegraded event, so "on-rollout-degraded" (the seed article's
	// trigger) has no destination even when subscribed.
	meta := obj["metadata"].(map[string]any)
	asMap(meta["annotations"])["notifications.argoproj.io/subscribe.on-rollout-degraded.rollback-incident"] = ""
	if got := translateReasonToTrigger("RolloutAborted"); got != "on-rollout-aborted" {
		t.Fatalf("translateReasonToTrigger: %s", got)
	}
	for _, reason := range []string{"RolloutUpdated", "RolloutCompleted", "SkipSteps"} {
		if sent, _ := rolloutsSend(t, n, obj, reason); sent != 0 {
			t.Errorf("%s sent %d notifications to the function", reason, sent)
		}
	}
}

// webhookEventData mirrors Argo Events v1.9.6
// pkg/eventsources/events/event-data.go WebhookEventData (that package
// imports the AWS v1 SDK and Stripe only for other event types).
type webhookEventData struct {
	Header   http.Header       `json:"header"`
	Body     *json.RawMessage  `json:"body"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// fakeWebhookEventSource answers like the webhook EventSource of
// deploy/argo-events (method, endpoint, bearer check, JSON body) and keeps
// the event data it would publish.
func fakeWebhookEventSource(t *testing.T, endpoint, method, token string, metadata map[string]string) (*httptest.Server, *[][]byte) {
	var events [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != endpoint {
			http.NotFound(w, r)
			return
		}
		if r.Method != method {
			http.Error(w, "http method does not match", http.StatusBadRequest)
			return
		}
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "Bearer ") || strings.TrimPrefix(auth, "Bearer ") != token {
			http.Error(w, "Invalid Auth token", http.StatusUnauthorized)
			return
		}
		r.Header.Set("Authorization", "*** Masked Auth Secret ***")
		b, _ := io.ReadAll(r.Body)
		raw := json.RawMessage(b)
		data, err := json.Marshal(webhookEventData{Header: r.Header, Body: &raw, Metadata: metadata})
		if err != nil { // what the EventSource answers to a body that is not JSON
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		events = append(events, data)
		_, _ = w.Write([]byte("success"))
	}))
	t.Cleanup(srv.Close)
	return srv, &events
}

// Method A: Rollouts -> webhook EventSource -> Sensor -> function, with the
// ConfigMap of deploy/argo-rollouts/via-argo-events and the EventSource and
// Sensor of deploy/argo-events.
func TestRolloutsNotificationsViaArgoEvents(t *testing.T) {
	s := startStack(t)
	cm := rolloutsConfigMap(t)
	var patch corev1.ConfigMap
	loadOne(t, "argo-rollouts/via-argo-events/service.patch.yaml", &patch)
	maps.Copy(cm.Data, patch.Data) // what the strategic merge patch does to data keys

	es := loadEventSource(t, "argo-events/eventsource-webhook.yaml")
	wh := es.Spec.Webhook["rollout"]
	const webhookToken = "webhook-token-55aa"
	srv, events := fakeWebhookEventSource(t, wh.Endpoint, wh.Method, webhookToken, wh.Metadata)
	if wh.Port != "12000" || es.Spec.Service.Ports[0].Port != 12000 {
		t.Fatalf("EventSource port %s / service port %d: the Rollouts URL uses 12000", wh.Port, es.Spec.Service.Ports[0].Port)
	}
	clusterProxy.route(t, webhookEventHost, srv.URL)

	secret := &corev1.Secret{Data: map[string][]byte{"rollouts-webhook-token": []byte(webhookToken)}}
	n := newAPI(t, cm, secret, rolloutsGetVars(secret, nil))
	obj := rolloutFixture(t)
	if sent, errs := rolloutsSend(t, n, obj, "RolloutAborted"); sent != 1 || len(errs) > 0 {
		t.Fatalf("sent %d, errors %v", sent, errs)
	}
	if len(*events) != 1 {
		t.Fatalf("the EventSource published %d events", len(*events))
	}

	// The Sensor's trigger for this dependency, executed by the real code.
	sensor := loadSensor(t)
	useSensorSecret(t)
	res := runSensorTrigger(t, sensor, "rollout-notification", esEvent(t, es.Name, "rollout", "webhook", (*events)[0]))
	if res.err != nil {
		t.Fatalf("trigger failed: %v\nfunction log:\n%s", res.err, s.fn.Output())
	}
	checkCloudEventRequest(t, res, "argo-events/rollouts-webhook/rollout", "io.argoproj.events.webhook", "payments/checkout-api", "created")
	s.requireOneIncident()

	// The naive template of the source article: its body is not JSON once the
	// message holds quotes, the EventSource answers 400, and notifications-
	// engine does not retry a 4xx: the rollback is lost.
	naive := cm.DeepCopy()
	naive.Data["template.rollback-incident-rollout-aborted"] = "webhook:\n  rollback-incident:\n    method: POST\n    body: |\n      {\"rolloutName\": \"{{.rollout.metadata.name}}\", \"message\": \"{{.rollout.status.message}}\"}\n"
	n = newAPI(t, naive, secret, rolloutsGetVars(secret, nil))
	_, errs := rolloutsSend(t, n, obj, "RolloutAborted")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "400") {
		t.Fatalf("naive template: errors %v, want one 400", errs)
	}
	if len(*events) != 1 {
		t.Fatal("the naive template's body was published")
	}
}

// Clusters running the Rollouts catalog: the catalog ConfigMap (v1.9.3)
// merged with ours and catalog-merge.patch.yaml still sends the function
// our body.
func TestRolloutsNotificationsWithTheCatalog(t *testing.T) {
	s := startStack(t)
	var catalog corev1.ConfigMap
	loadOne(t, "testdata/argo-rollouts-v1.9.3-notifications-install.yaml", &catalog)
	var patch configMapDataPatch
	loadOne(t, "argo-rollouts/catalog-merge.patch.yaml", &patch)
	cm := catalog.DeepCopy()
	maps.Copy(cm.Data, rolloutsConfigMap(t).Data)
	maps.Copy(cm.Data, patch.Data)
	for trig, v := range patch.Data {
		name := strings.TrimPrefix(trig, "trigger.")
		if _, ok := catalog.Data[trig]; !ok {
			t.Errorf("%s is not a catalog trigger", name)
		}
		if !strings.Contains(v, "send: ["+strings.TrimPrefix(name, "on-")+", rollback-incident-"+strings.TrimPrefix(name, "on-")+"]") {
			t.Errorf("%s: %s", name, v)
		}
	}
	secret := &corev1.Secret{Data: map[string][]byte{"rollback-incident-token": []byte(testToken)}}
	n := newAPI(t, cm, secret, rolloutsGetVars(secret, nil))
	for _, reason := range rolloutsReasons {
		if sent, errs := rolloutsSend(t, n, rolloutFixture(t), reason); sent != 1 || len(errs) > 0 {
			t.Fatalf("%s: sent %d, errors %v", reason, sent, errs)
		}
	}
	for _, e := range clusterProxy.take(functionHost) {
		var body map[string]any
		if err := json.Unmarshal(e.Body, &body); err != nil || body["rolloutName"] != "checkout-api" || e.Status != 200 {
			t.Errorf("function got %s -> %d", e.Body, e.Status)
		}
	}
	s.requireOneIncident()
}

// ---- Argo CD and OpenShift GitOps ------------------------------------------------

// argocdGetVars is Argo CD's (util/notification/settings): app, context
// (the "context" key of argocd-notifications-cm), secrets.
func argocdGetVars(t *testing.T, cm *corev1.ConfigMap, secret *corev1.Secret) api.GetVars {
	t.Helper()
	context := map[string]string{}
	if err := yaml.Unmarshal([]byte(cm.Data["context"]), &context); err != nil {
		t.Fatal(err)
	}
	return func(obj map[string]any, dest services.Destination) map[string]any {
		return map[string]any{"app": obj, "context": context, "secrets": secret.Data}
	}
}

func applicationFixture(t *testing.T) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(readFixture(t, "argocd-app-resource.json"), &obj); err != nil {
		t.Fatal(err)
	}
	var sub metadataPatch
	loadOne(t, "argocd/application-subscription.yaml", &sub)
	meta := obj["metadata"].(map[string]any)
	if meta["annotations"] == nil {
		meta["annotations"] = map[string]any{}
	}
	for k, v := range sub.Metadata.Annotations {
		meta["annotations"].(map[string]any)[k] = v
	}
	return obj
}

// argocdSend evaluates the trigger like the Argo CD notifications
// controller (RunTrigger, then Send for every triggered condition) for the
// function, the one destination the Application must subscribe it to.
func argocdSend(t *testing.T, n api.API, obj map[string]any, trigger string) (triggered bool, errs []error) {
	t.Helper()
	return argocdSendTo(t, n, obj, trigger, "rollback-incident")
}

// argocdSendTo is argocdSend for the destination of another service.
func argocdSendTo(t *testing.T, n api.API, obj map[string]any, trigger, service string) (triggered bool, errs []error) {
	t.Helper()
	ann := map[string]string{}
	for k, v := range obj["metadata"].(map[string]any)["annotations"].(map[string]any) {
		ann[k] = v.(string)
	}
	cfg := n.GetConfig()
	dests := subscriptions.NewAnnotations(ann).GetDestinations(cfg.DefaultTriggers, cfg.ServiceDefaultTriggers)[trigger]
	if len(dests) != 1 || dests[0].Service != service {
		t.Fatalf("%s: destinations %v, want one of service %s", trigger, dests, service)
	}
	res, err := n.RunTrigger(trigger, obj)
	if err != nil {
		t.Fatalf("%s: RunTrigger: %v", trigger, err)
	}
	for _, c := range res {
		if c.Triggered {
			triggered = true
			if err := n.Send(obj, c.Templates, dests[0]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return triggered, errs
}

func runArgoCD(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()
	s := startStack(t)
	secret := &corev1.Secret{Data: map[string][]byte{"rollback-incident-token": []byte(testToken)}}
	n := newAPI(t, cm, secret, argocdGetVars(t, cm, secret))
	app := applicationFixture(t)

	// The fixture: health Degraded, last sync Succeeded.
	if trig, errs := argocdSend(t, n, app, "on-health-degraded-rollback-incident"); !trig || len(errs) > 0 {
		t.Fatalf("health degraded: triggered %v, errors %v", trig, errs)
	}
	if trig, _ := argocdSend(t, n, app, "on-sync-failed-rollback-incident"); trig {
		t.Fatal("on-sync-failed fired for a Succeeded sync")
	}
	ex := clusterProxy.take(functionHost)
	if len(ex) != 1 {
		t.Fatalf("function got %d requests", len(ex))
	}
	var body map[string]any
	if err := json.Unmarshal(ex[0].Body, &body); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, ex[0].Body)
	}
	var r functionReply
	_ = json.Unmarshal(ex[0].RBody, &r)
	if ex[0].Status != 200 || r.Status != "created" || body["healthStatus"] != "Degraded" || body["trigger"] != "on-health-degraded" {
		t.Fatalf("function answered %d %s to %s", ex[0].Status, ex[0].RBody, ex[0].Body)
	}
	if u, _ := body["appURL"].(string); !strings.HasPrefix(u, "https://") || !strings.HasSuffix(u, "/applications/"+body["app"].(string)) {
		t.Errorf("appURL %q: context.argocdUrl not used", u)
	}
	s.requireOneIncident()

	// The same Application, sync Failed: the other trigger fires.
	st := app["status"].(map[string]any)
	st["operationState"].(map[string]any)["phase"] = "Failed"
	st["operationState"].(map[string]any)["message"] = `one or more objects failed to apply, reason: "x" is invalid`
	if trig, errs := argocdSend(t, n, app, "on-sync-failed-rollback-incident"); !trig || len(errs) > 0 {
		t.Fatalf("sync failed: triggered %v, errors %v", trig, errs)
	}
	ex = clusterProxy.take(functionHost)
	if len(ex) != 1 || ex[0].Status != 200 {
		t.Fatalf("sync failed: %d requests %+v", len(ex), ex)
	}
	if err := json.Unmarshal(ex[0].Body, &body); err != nil || body["operationPhase"] != "Failed" || body["trigger"] != "on-sync-failed" {
		t.Fatalf("sync failed body %s (%v)", ex[0].Body, err)
	}
}

func TestArgoCDNotificationsOpenAnIncident(t *testing.T) {
	var cm corev1.ConfigMap
	loadOne(t, "argocd/argocd-notifications-cm.yaml", &cm)
	runArgoCD(t, &cm)
}

// operatorConfigMap is what the argocd-operator writes into
// argocd-notifications-cm from a NotificationsConfiguration
// (controllers/notificationsconfiguration/configmap.go: the four maps copied
// key by key, context rendered as "key: value" lines).
func operatorConfigMap(nc *notificationsConfiguration) *corev1.ConfigMap {
	data := map[string]string{}
	for _, m := range []map[string]string{nc.Spec.Triggers, nc.Spec.Templates, nc.Spec.Services, nc.Spec.Subscriptions} {
		maps.Copy(data, m)
	}
	if nc.Spec.Context != nil {
		ctx := ""
		for k, v := range nc.Spec.Context {
			ctx += k + ": " + v + "\n"
		}
		data["context"] = ctx
	}
	cm := &corev1.ConfigMap{Data: data}
	cm.Name, cm.Namespace = "argocd-notifications-cm", nc.Namespace
	return cm
}

func TestOpenShiftGitOpsNotificationsConfiguration(t *testing.T) {
	var nc notificationsConfiguration
	loadOne(t, "openshift-gitops/notificationsconfiguration.yaml", &nc)
	if nc.Name != "default-notifications-configuration" {
		t.Errorf("name %q: the operator only reads default-notifications-configuration", nc.Name)
	}
	cm := operatorConfigMap(&nc)
	var argocd corev1.ConfigMap
	loadOne(t, "argocd/argocd-notifications-cm.yaml", &argocd)
	for k, v := range argocd.Data {
		if k == "context" {
			continue
		}
		if cm.Data[k] != v {
			t.Errorf("%s differs between the OpenShift GitOps resource and the Argo CD ConfigMap", k)
		}
	}
	if len(cm.Data) != len(argocd.Data) {
		t.Errorf("keys: %d vs %d", len(cm.Data), len(argocd.Data))
	}
	runArgoCD(t, cm)
}
