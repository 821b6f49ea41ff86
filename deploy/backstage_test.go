package deploy

// Argo CD (and OpenShift GitOps) → Backstage, and the function → Backstage:
// notifications-engine v0.5.0 renders and sends the shipped templates for
// each trigger to the emulator's Backstage notifications backend (which
// validates requests as plugin-notifications-backend 0.6.11 does), and the
// function, wired by components/backstage with the Secrets
// secrets/create-secrets.sh writes, tells Backstage about the failures that
// open an incident.

import (
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/argoproj/notifications-engine/pkg/api"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	// backstageHost is the Backstage backend as the manifests call it.
	backstageHost        = "backstage.backstage.svc.cluster.local:7007"
	fnBackstageToken     = "fn-backstage-token-41d2c0"
	argocdBackstageToken = "argocd-backstage-token-9e7a55"
)

// A sync message as Argo CD writes them, with everything that breaks a
// body built by pasting values into a JSON string.
const (
	trickyMessage = "one or more objects failed to apply, reason: Deployment.apps \"checkout-api\" is invalid: " +
		"spec.template.spec.containers[0].image: Invalid value: \"registry\\\\payments\":\n\tmust match <name>:<tag> & 'quotes'"
	trickyHealth = "Rollout \"checkout-api\" aborted update to revision 8:\nMetric \"success-rate\" assessed Failed \\ limit 1"
)

// guideSyncFailed is the sync-failed template of the source guide
// (shared/reference/seeds/argocd-notifications-to-backstage.md), which
// pastes values into JSON strings.
const guideSyncFailed = `webhook:
  backstage:
    method: POST
    body: |
      {
        "recipients": {
          "type": "entity",
          "entityRef": "{{index .app.metadata.annotations "backstage.io/entity-ref"}}"
        },
        "payload": {
          "title": "{{.app.metadata.name}} - Sync Failed",
          "description": "Application **{{.app.metadata.name}}** sync has failed.\n\n**Phase:** {{.app.status.operationState.phase}}\n**Message:** {{.app.status.operationState.message}}",
          "link": "{{.context.argocdUrl}}/applications/{{.app.metadata.name}}",
          "severity": "high",
          "topic": "argocd.sync.failed"
        }
      }
`

// ---- the shipped configuration, as each flavour applies it ------------------

// argocdBackstageConfigMap is argocd-notifications-cm after the two merge
// patches of the docs: the function's keys, then the Backstage file's.
func argocdBackstageConfigMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	var fn, bs corev1.ConfigMap
	loadOne(t, "argocd/argocd-notifications-cm.yaml", &fn)
	loadOne(t, "argocd/backstage/argocd-notifications-cm.yaml", &bs)
	cm := fn.DeepCopy()
	maps.Copy(cm.Data, bs.Data) // a merge patch replaces the data keys it names
	return cm
}

// openShiftBackstageConfigMap is what the operator writes from
// default-notifications-configuration after the two `oc patch --type merge`.
func openShiftBackstageConfigMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	var fn, bs notificationsConfiguration
	loadOne(t, "openshift-gitops/notificationsconfiguration.yaml", &fn)
	loadOne(t, "openshift-gitops/backstage/notificationsconfiguration.yaml", &bs)
	merge := func(dst *map[string]string, src map[string]string) {
		if *dst == nil {
			*dst = map[string]string{}
		}
		maps.Copy(*dst, src)
	}
	merge(&fn.Spec.Context, bs.Spec.Context)
	merge(&fn.Spec.Services, bs.Spec.Services)
	merge(&fn.Spec.Templates, bs.Spec.Templates)
	merge(&fn.Spec.Triggers, bs.Spec.Triggers)
	return operatorConfigMap(&fn)
}

// The two flavours ship the same templates, triggers and service, and each
// keeps the context the function's templates need.
func TestBackstageConfigurationsAgree(t *testing.T) {
	var cm corev1.ConfigMap
	loadOne(t, "argocd/backstage/argocd-notifications-cm.yaml", &cm)
	var nc notificationsConfiguration
	loadOne(t, "openshift-gitops/backstage/notificationsconfiguration.yaml", &nc)
	op := operatorConfigMap(&nc)
	keys := 0
	for k, v := range cm.Data {
		if k == "context" {
			continue
		}
		keys++
		if op.Data[k] != v {
			t.Errorf("%s differs between the OpenShift GitOps resource and the Argo CD ConfigMap", k)
		}
	}
	if keys != 11 || len(op.Data) != len(cm.Data) {
		t.Errorf("%d Backstage keys in the Argo CD file (want service, 5 templates, 5 triggers), %d in OpenShift's", keys, len(op.Data)-1)
	}
	for _, c := range []*corev1.ConfigMap{argocdBackstageConfigMap(t), openShiftBackstageConfigMap(t)} {
		ctx := map[string]string{}
		if err := yaml.Unmarshal([]byte(c.Data["context"]), &ctx); err != nil || !strings.HasPrefix(ctx["argocdUrl"], "https://") {
			t.Errorf("merged context %q (%v): argocdUrl lost", c.Data["context"], err)
		}
		for _, k := range []string{"template.rollback-incident-app-health-degraded", "service.webhook.rollback-incident", "service.webhook.backstage"} {
			if c.Data[k] == "" {
				t.Errorf("merged configuration lacks %s", k)
			}
		}
	}
	// Each Backstage trigger sends its own template, and the failure ones
	// stand aside for the function's subscription.
	for trig, tmpl := range map[string]string{
		"on-sync-running-backstage": "app-sync-running-backstage", "on-sync-succeeded-backstage": "app-sync-succeeded-backstage",
		"on-deployed-backstage": "app-deployed-backstage", "on-sync-failed-backstage": "app-sync-failed-backstage",
		"on-health-degraded-backstage": "app-health-degraded-backstage",
	} {
		v := cm.Data["trigger."+trig]
		if !strings.Contains(v, "send: ["+tmpl+"]") || cm.Data["template."+tmpl] == "" {
			t.Errorf("trigger %s does not send template %s", trig, tmpl)
		}
	}
	for trig, fn := range map[string]string{"on-sync-failed-backstage": "on-sync-failed-rollback-incident", "on-health-degraded-backstage": "on-health-degraded-rollback-incident"} {
		if !strings.Contains(cm.Data["trigger."+trig], "subscribe."+fn+".rollback-incident'] == nil") {
			t.Errorf("%s does not stand aside for applications subscribed to %s", trig, fn)
		}
	}
}

// ---- the stack: emulator (Atlassian + Backstage) and the wired function ------

// componentEnv builds the function with components/backstage and resolves
// the Backstage variables of its container from secrets (namespace/name →
// key → value), as the kubelet would.
func componentEnv(t *testing.T, secrets map[string]map[string]string) []string {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(dir, abs)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.ToSlash(r)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + rel("function") +
		"\ncomponents:\n- " + rel("components/backstage") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	svc := findService(t, builtObjects(t, dir))
	var env []string
	for _, e := range svc.Spec.Template.Spec.Containers[0].Env {
		if !strings.HasPrefix(e.Name, "BACKSTAGE_") {
			continue
		}
		v := e.Value
		if e.ValueFrom != nil {
			ref := e.ValueFrom.SecretKeyRef
			s, ok := secrets[svc.Namespace+"/"+ref.Name]
			if !ok || s[ref.Key] == "" {
				t.Fatalf("%s reads %s/%s key %s, which create-secrets.sh does not write (it wrote %v)", e.Name, svc.Namespace, ref.Name, ref.Key, slices.Sorted(maps.Keys(secrets)))
			}
			v = s[ref.Key]
		}
		env = append(env, e.Name+"="+v)
	}
	slices.Sort(env)
	if len(env) != 3 || !strings.HasPrefix(env[0], "BACKSTAGE_BROADCAST=") || !strings.HasPrefix(env[1], "BACKSTAGE_TOKEN=") || !strings.HasPrefix(env[2], "BACKSTAGE_URL=") {
		t.Fatalf("Backstage env of the component: %v", env)
	}
	return env
}

// startBackstageStack writes the Secrets with create-secrets.sh (Argo CD in
// argocdNS, Backstage in the backstage namespace), starts the emulator with
// a catalog and the two static tokens Backstage reads from its Secret, and
// the function with the Backstage env of the component. Both reach Backstage
// at backstageHost through the cluster proxy.
func startBackstageStack(t *testing.T, argocdNS string) *stack {
	t.Helper()
	secrets, calls := runCreateSecrets(t, []string{"AUTH_TOKEN=" + testToken, "BACKSTAGE_URL=http://" + backstageHost + "/",
		"BACKSTAGE_TOKEN=" + fnBackstageToken, "BACKSTAGE_ARGOCD_TOKEN=" + argocdBackstageToken, "FAKE_NAMESPACES=backstage"},
		"--argocd", argocdNS, "--backstage")
	wantPatch := `ARGS -n ` + argocdNS + ` patch secret argocd-notifications-secret --type merge -p {"stringData":{"backstage-token":"` + argocdBackstageToken + `"}}`
	if !strings.Contains(calls, wantPatch) {
		t.Fatalf("create-secrets.sh did not give Argo CD its Backstage token\ncalls:\n%s", calls)
	}
	tokens := secrets["backstage/backstage-notifications-tokens"]
	if tokens["ROLLBACK_INCIDENT_TOKEN"] != fnBackstageToken || tokens["ARGOCD_NOTIFICATIONS_TOKEN"] != argocdBackstageToken {
		t.Fatalf("Backstage's tokens Secret: %v", secrets)
	}
	if got := secrets["rollback-incident/rollback-incident-backstage"]; got["url"] != "http://"+backstageHost || got["token"] != fnBackstageToken {
		t.Fatalf("the function's Backstage Secret: %v", got)
	}
	s := startStackWith(t, stackOptions{
		emulatorArgs: []string{
			// app-config.yaml: backend.auth.externalAccess, one static entry per sender.
			"-backstage-token", tokens["ROLLBACK_INCIDENT_TOKEN"], "-backstage-subject", "rollback-incident",
			"-backstage-extra-token", "argocd-notifications=" + tokens["ARGOCD_NOTIFICATIONS_TOKEN"],
			"-backstage-group", "group:default/payments-team=user:default/alice,user:default/bob",
			"-backstage-group", "group:default/platform-team=user:default/pat",
			"-backstage-owner", "component:default/checkout-api=group:default/payments-team",
		},
		functionEnv: append(componentEnv(t, secrets), "HTTP_PROXY="+clusterProxy.srv.URL),
	})
	clusterProxy.route(t, backstageHost, s.emuURL)
	return s
}

// bsNote is the emulator's view of a stored Backstage notification.
type bsNote struct {
	ID        string `json:"id"`
	User      string `json:"user"`
	Broadcast bool   `json:"broadcast"`
	Updated   string `json:"updated"`
	Origin    string `json:"origin"`
	Payload   struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Link        string `json:"link"`
		Severity    string `json:"severity"`
		Topic       string `json:"topic"`
		Scope       string `json:"scope"`
	} `json:"payload"`
}

// notes returns the stored notifications whose scope is scope (all with "").
func (s *stack) notes(scope string) []bsNote {
	s.t.Helper()
	resp, err := http.Get(s.emuURL + "/_emulator/state")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Notifications []bsNote `json:"notifications"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		s.t.Fatal(err)
	}
	var out []bsNote
	for _, n := range v.Notifications {
		if scope == "" || n.Payload.Scope == scope {
			out = append(out, n)
		}
	}
	return out
}

func users(ns []bsNote) string {
	var u []string
	for _, n := range ns {
		u = append(u, n.User)
	}
	slices.Sort(u)
	return strings.Join(u, ",")
}

// ---- Applications -----------------------------------------------------------------

// backstageApp is the real Application fixture renamed, subscribed to the
// Backstage triggers (argocd/backstage/application-subscription.yaml), to
// the function's ones only if withFunction, with the entity annotation when
// entity is set.
func backstageApp(t *testing.T, name, entity string, withFunction bool) map[string]any {
	t.Helper()
	app := applicationFixture(t)
	meta := app["metadata"].(map[string]any)
	meta["name"] = name
	ann := meta["annotations"].(map[string]any)
	if !withFunction {
		var fn metadataPatch
		loadOne(t, "argocd/application-subscription.yaml", &fn)
		for k := range fn.Metadata.Annotations {
			delete(ann, k)
		}
	}
	var sub metadataPatch
	loadOne(t, "argocd/backstage/application-subscription.yaml", &sub)
	for k, v := range sub.Metadata.Annotations {
		ann[k] = v
	}
	if entity != "" {
		ann["backstage.io/entity-ref"] = entity
	}
	return app
}

// setAppState puts the Application in an operation phase and health at a
// revision, as the application controller writes them.
func setAppState(app map[string]any, phase, health, revision, message, healthMessage string) {
	st := app["status"].(map[string]any)
	op := st["operationState"].(map[string]any)
	op["phase"], op["message"] = phase, message
	op["syncResult"].(map[string]any)["revision"] = revision
	op["operation"].(map[string]any)["sync"].(map[string]any)["revision"] = revision
	st["sync"].(map[string]any)["revision"] = revision
	h := map[string]any{"status": health}
	if healthMessage != "" {
		h["message"] = healthMessage
	}
	st["health"] = h
}

// ---- the scenarios, for each flavour -----------------------------------------------

func TestArgoCDToBackstage(t *testing.T) {
	runBackstage(t, "argocd", argocdBackstageConfigMap(t))
}

func TestOpenShiftGitOpsToBackstage(t *testing.T) {
	runBackstage(t, "openshift-gitops", openShiftBackstageConfigMap(t))
}

func runBackstage(t *testing.T, argocdNS string, cm *corev1.ConfigMap) {
	s := startBackstageStack(t, argocdNS)
	secret := &corev1.Secret{Data: map[string][]byte{"rollback-incident-token": []byte(testToken), "backstage-token": []byte(argocdBackstageToken)}}
	n := newAPI(t, cm, secret, argocdGetVars(t, cm, secret))
	ctx := map[string]string{}
	if err := yaml.Unmarshal([]byte(cm.Data["context"]), &ctx); err != nil {
		t.Fatal(err)
	}
	argocdURL := ctx["argocdUrl"]
	const rev1, rev2, rev3 = "1111111aaaaaaa1111111aaaaaaa1111111aaaaa", "2222222bbbbbbb2222222bbbbbbb2222222bbbbb", "3333333ccccccc3333333ccccccc3333333ccccc"

	// send runs a Backstage trigger that must fire: one request, valid
	// JSON, never an empty entity, accepted (200). It returns the body.
	send := func(n api.API, app map[string]any, trigger string) map[string]any {
		t.Helper()
		if trig, errs := argocdSendTo(t, n, app, trigger, "backstage"); !trig || len(errs) > 0 {
			t.Fatalf("%s: triggered %v, errors %v", trigger, trig, errs)
		}
		ex := clusterProxy.take(backstageHost)
		if len(ex) != 1 {
			t.Fatalf("%s: Backstage got %d requests", trigger, len(ex))
		}
		e := ex[0]
		if e.Method != http.MethodPost || e.Path != "/api/notifications/notifications" || e.Status != http.StatusOK ||
			e.Header.Get("Authorization") != "Bearer "+argocdBackstageToken || e.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %s %s -> %d %s", trigger, e.Method, e.Path, e.Status, e.RBody)
		}
		var body map[string]any
		if err := json.Unmarshal(e.Body, &body); err != nil {
			t.Fatalf("%s: body is not JSON: %v\n%s", trigger, err, e.Body)
		}
		if r := body["recipients"].(map[string]any); r["type"] == "entity" && (r["entityRef"] == "" || r["entityRef"] == nil) {
			t.Fatalf("%s: empty entity in %s", trigger, e.Body)
		}
		return body
	}
	// quiet runs a trigger that must not fire for this state.
	quiet := func(n api.API, app map[string]any, trigger string) {
		t.Helper()
		if trig, errs := argocdSendTo(t, n, app, trigger, "backstage"); trig || len(errs) > 0 {
			t.Fatalf("%s fired (errors %v)", trigger, errs)
		}
		if ex := clusterProxy.take(backstageHost); len(ex) != 0 {
			t.Fatalf("%s: %d requests", trigger, len(ex))
		}
	}
	// one checks the notifications of a scope: one per user of want, from
	// Argo CD, with this title, severity, topic and description.
	one := func(scope, want, title, severity, topic, description string) []bsNote {
		t.Helper()
		ns := s.notes(scope)
		if users(ns) != want {
			t.Fatalf("scope %s: users %q, want %q: %+v", scope, users(ns), want, ns)
		}
		for _, x := range ns {
			p := x.Payload
			if x.Origin != "argocd-notifications" || p.Title != title || p.Severity != severity || p.Topic != topic ||
				p.Description != description || !strings.HasPrefix(p.Link, argocdURL+"/applications/argocd/") {
				t.Errorf("scope %s: %+v\nwant title %q severity %s topic %s description %q", scope, x, title, severity, topic, description)
			}
		}
		return ns
	}

	// A: the entity of the annotation (a component: its owner's members),
	// through a revision's life; every step updates the one notification of
	// the application's revision.
	const appA = "checkout-api-prod"
	a := backstageApp(t, appA, "component:default/checkout-api", false)
	scope1 := "argocd:argocd/" + appA + "@" + rev1
	setAppState(a, "Running", "Progressing", rev1, "waiting for healthy state of apps/Deployment/checkout-api", "")
	send(n, a, "on-sync-running-backstage")
	for _, q := range []string{"on-sync-succeeded-backstage", "on-deployed-backstage", "on-sync-failed-backstage", "on-health-degraded-backstage"} {
		quiet(n, a, q)
	}
	first := one(scope1, "user:default/alice,user:default/bob", appA+" - Syncing", "low", "argocd.sync.running",
		"Application "+appA+" is syncing revision "+rev1+" (automated sync).")
	if first[0].Payload.Link != argocdURL+"/applications/argocd/"+appA {
		t.Errorf("link %q", first[0].Payload.Link)
	}
	// The same trigger again (a lost notification state, a retry): an
	// update, not another notification.
	send(n, a, "on-sync-running-backstage")
	again := one(scope1, "user:default/alice,user:default/bob", appA+" - Syncing", "low", "argocd.sync.running",
		"Application "+appA+" is syncing revision "+rev1+" (automated sync).")
	if again[0].ID != first[0].ID || again[0].Updated == "" {
		t.Errorf("repeat: %+v, want %+v updated", again[0], first[0])
	}
	setAppState(a, "Succeeded", "Progressing", rev1, trickyMessage, "")
	send(n, a, "on-sync-succeeded-backstage")
	quiet(n, a, "on-deployed-backstage")
	one(scope1, "user:default/alice,user:default/bob", appA+" - Sync Succeeded", "low", "argocd.sync.succeeded",
		"Application "+appA+" synced revision "+rev1+". Health: Progressing. "+trickyMessage)
	setAppState(a, "Succeeded", "Healthy", rev1, "successfully synced (all tasks run)", "")
	send(n, a, "on-deployed-backstage")
	quiet(n, a, "on-sync-succeeded-backstage")
	one(scope1, "user:default/alice,user:default/bob", appA+" - Deployed", "low", "argocd.deployed",
		"Application "+appA+" is deployed at revision "+rev1+" and healthy.")
	setAppState(a, "Succeeded", "Degraded", rev1, "successfully synced (all tasks run)", trickyHealth)
	send(n, a, "on-health-degraded-backstage")
	one(scope1, "user:default/alice,user:default/bob", appA+" - Health Degraded", "high", "argocd.health.degraded",
		"Application "+appA+" is Degraded at revision "+rev1+": "+trickyHealth)
	// A new revision is a new notification.
	setAppState(a, "Failed", "Degraded", rev2, trickyMessage, trickyHealth)
	send(n, a, "on-sync-failed-backstage")
	one("argocd:argocd/"+appA+"@"+rev2, "user:default/alice,user:default/bob", appA+" - Sync Failed", "high", "argocd.sync.failed",
		"Application "+appA+" failed to sync revision "+rev2+" (Failed): "+trickyMessage)
	if got := len(s.notes("")); got != 4 {
		t.Fatalf("%d notifications, want 4 (2 users x 2 revisions)", got)
	}

	// B: no annotation and no owner for the project: a broadcast, once.
	b := backstageApp(t, "inventory", "", false)
	setAppState(b, "Failed", "Missing", rev1, trickyMessage, "")
	for range 2 {
		body := send(n, b, "on-sync-failed-backstage")
		if r, _ := json.Marshal(body["recipients"]); string(r) != `{"type":"broadcast"}` {
			t.Fatalf("recipients %s, want a broadcast", r)
		}
	}
	if ns := s.notes("argocd:argocd/inventory@" + rev1); len(ns) != 1 || !ns[0].Broadcast || ns[0].Updated == "" {
		t.Fatalf("broadcast: %+v, want one, updated", ns)
	}

	// C: the owner map of the context (backstageOwner.<project>), as a user
	// adds it.
	withOwner := cm.DeepCopy()
	withOwner.Data["context"] = strings.TrimRight(withOwner.Data["context"], "\n") + "\nbackstageOwner.payments: group:default/platform-team\n"
	n2 := newAPI(t, withOwner, secret, argocdGetVars(t, withOwner, secret))
	c := backstageApp(t, "billing", "", false)
	setAppState(c, "Error", "Missing", rev1, trickyMessage, "")
	body := send(n2, c, "on-sync-failed-backstage")
	if r, _ := json.Marshal(body["recipients"]); string(r) != `{"entityRef":"group:default/platform-team","type":"entity"}` {
		t.Fatalf("recipients %s", r)
	}
	one("argocd:argocd/billing@"+rev1, "user:default/pat", "billing - Sync Failed", "high", "argocd.sync.failed",
		"Application billing failed to sync revision "+rev1+" (Error): "+trickyMessage)

	// D: an application whose failures open an incident: Backstage hears of
	// the failure once, from the function, with the Jira issue, however
	// often Argo CD tells the function and whatever follows.
	d := backstageApp(t, "payments-gateway", "component:default/checkout-api", true)
	setAppState(d, "Failed", "Missing", rev3, trickyMessage, "")
	quiet(n, d, "on-sync-failed-backstage")
	jiraKey := ""
	for i, trig := range []string{"on-sync-failed-rollback-incident", "on-sync-failed-rollback-incident", "on-health-degraded-rollback-incident"} {
		if trig == "on-health-degraded-rollback-incident" {
			setAppState(d, "Failed", "Degraded", rev3, trickyMessage, trickyHealth)
			quiet(n, d, "on-health-degraded-backstage")
		}
		if fired, errs := argocdSend(t, n, d, trig); !fired || len(errs) > 0 {
			t.Fatalf("%s: triggered %v, errors %v\nfunction log:\n%s", trig, fired, errs, s.fn.Output())
		}
		ex := clusterProxy.take(functionHost)
		var r functionReply
		if len(ex) != 1 || json.Unmarshal(ex[0].RBody, &r) != nil || ex[0].Status != http.StatusOK || r.JiraKey == "" {
			t.Fatalf("%s: the function got %d requests: %+v", trig, len(ex), ex)
		}
		if i == 0 {
			jiraKey = r.JiraKey
		} else if r.JiraKey != jiraKey || r.Status != "existing" {
			t.Fatalf("%s: %+v, want the existing incident %s", trig, r, jiraKey)
		}
		for _, e := range clusterProxy.take(backstageHost) { // the function's own calls
			if e.Status != http.StatusOK || e.Header.Get("Authorization") != "Bearer "+fnBackstageToken {
				t.Fatalf("the function's Backstage call: %d %s", e.Status, e.RBody)
			}
		}
		var fromFunction []bsNote
		for _, x := range s.notes("") {
			if x.Origin == "rollback-incident" {
				fromFunction = append(fromFunction, x)
			}
			if strings.Contains(x.Payload.Scope, "payments-gateway") {
				t.Fatalf("Argo CD notified Backstage directly about the incident's failure: %+v", x)
			}
		}
		if users(fromFunction) != "user:default/alice,user:default/bob" {
			t.Fatalf("after %s: the function's notifications %+v, want one for alice and one for bob", trig, fromFunction)
		}
		for _, x := range fromFunction {
			if !strings.HasSuffix(x.Payload.Link, "/browse/"+jiraKey) || !strings.HasPrefix(x.Payload.Scope, "rollback:") ||
				x.Payload.Severity != "high" || !strings.Contains(x.Payload.Description, "Postmortem") {
				t.Errorf("the function's notification %+v: want the Jira link, the rollback scope and the postmortem", x)
			}
		}
	}
	s.requireOneIncident()

	// The guide's template against the same backend: a message with quotes
	// breaks its JSON, and without the annotation it names no entity
	// ("<no value>": the Application is unstructured); Backstage refuses
	// both with a 400, which notifications-engine does not retry: the
	// notification is lost.
	guide := cm.DeepCopy()
	guide.Data["template.app-sync-failed-backstage"] = guideSyncFailed
	ng := newAPI(t, guide, secret, argocdGetVars(t, guide, secret))
	plain := backstageApp(t, "orders", "", false)
	setAppState(plain, "Failed", "Missing", rev1, "one or more objects failed to apply", "")
	for _, c := range []struct {
		app  map[string]any
		want string
	}{
		{a, `"name":"InputError"`}, // the JSON parser's message
		{plain, `Failed to send user notifications; caused by Error: Entity reference \"<no value>\" had missing or empty kind`},
	} {
		fired, errs := argocdSendTo(t, ng, c.app, "on-sync-failed-backstage", "backstage")
		ex := clusterProxy.take(backstageHost)
		if !fired || len(errs) != 1 || len(ex) != 1 || ex[0].Status != http.StatusBadRequest || !strings.Contains(string(ex[0].RBody), c.want) {
			t.Errorf("the guide's template: fired %v, errors %v, %d requests %+v; want one 400 %q", fired, errs, len(ex), ex, c.want)
		}
	}
}

// The function's Argo CD templates tell it the Backstage owner as the
// Backstage templates find it (the annotation, else the project's owner in
// the context), so the one notification of an incident reaches the same
// people. The rendered body for the real degraded Application is the
// fixture the function's end-to-end tests send
// (test/backstage_once_test.go; -update rewrites it).
func TestArgoCDBodyCarriesTheBackstageOwner(t *testing.T) {
	startStack(t)
	cm := argocdBackstageConfigMap(t)
	secret := &corev1.Secret{Data: map[string][]byte{"rollback-incident-token": []byte(testToken)}}
	n := newAPI(t, cm, secret, argocdGetVars(t, cm, secret))
	app := backstageApp(t, "checkout-api-prod", "component:default/checkout-api", true)
	if fired, errs := argocdSendTo(t, n, app, "on-health-degraded-backstage", "backstage"); fired || len(errs) > 0 {
		t.Fatalf("the Backstage trigger fired for an application whose failures open an incident (errors %v)", errs)
	}
	if fired, errs := argocdSend(t, n, app, "on-health-degraded-rollback-incident"); !fired || len(errs) > 0 {
		t.Fatalf("triggered %v, errors %v", fired, errs)
	}
	ex := clusterProxy.take(functionHost)
	var body map[string]any
	if len(ex) != 1 || ex[0].Status != http.StatusOK || json.Unmarshal(ex[0].Body, &body) != nil || body["owner"] != "component:default/checkout-api" {
		t.Fatalf("the function got %+v", ex)
	}
	fixture := filepath.Join(repoRoot, "testdata", "fixtures", "argocd-app-health-degraded-rendered.json")
	if *updateFixtures {
		if err := os.WriteFile(fixture, ex[0].Body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want, err := os.ReadFile(fixture); err != nil || string(want) != string(ex[0].Body) {
		t.Errorf("the template renders a body other than %s (%v; go test -run %s -update rewrites it):\n%s", fixture, err, t.Name(), ex[0].Body)
	}

	// Without the annotation: the owner of the application's project.
	withOwner := cm.DeepCopy()
	withOwner.Data["context"] += "backstageOwner.payments: group:default/payments-team\n"
	n = newAPI(t, withOwner, secret, argocdGetVars(t, withOwner, secret))
	other := backstageApp(t, "checkout-api-canary", "", true)
	if fired, errs := argocdSend(t, n, other, "on-health-degraded-rollback-incident"); !fired || len(errs) > 0 {
		t.Fatalf("triggered %v, errors %v", fired, errs)
	}
	ex = clusterProxy.take(functionHost)
	if len(ex) != 1 || json.Unmarshal(ex[0].Body, &body) != nil || body["owner"] != "group:default/payments-team" {
		t.Fatalf("the function got %+v", ex)
	}
}

// Backstage outside the cluster: the function's Secret is written, and
// the tokens for Backstage's configuration stay in the two Secrets the
// script names (never printed).
func TestCreateSecretsBackstageElsewhere(t *testing.T) {
	secrets, calls := runCreateSecrets(t, []string{"AUTH_TOKEN=" + testToken, "BACKSTAGE_URL=https://backstage.example.com"}, "--backstage")
	fn := secrets["rollback-incident/rollback-incident-backstage"]
	if fn["url"] != "https://backstage.example.com" || len(fn["token"]) < 32 {
		t.Fatalf("the function's Backstage Secret: %v", fn)
	}
	if _, ok := secrets["backstage/backstage-notifications-tokens"]; ok || strings.Contains(calls, "argocd-notifications-secret") {
		t.Fatalf("wrote Backstage's or Argo CD's Secret without their namespace / --argocd:\n%s", calls)
	}
}
