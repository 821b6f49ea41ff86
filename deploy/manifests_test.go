package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	aev1 "github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	"github.com/argoproj/argo-events/pkg/eventsources/sources/calendar"
	sensorreconciler "github.com/argoproj/argo-events/pkg/reconciler/sensor"
	sharedutil "github.com/argoproj/argo-events/pkg/shared/util"
	"github.com/argoproj/notifications-engine/pkg/services"
	"github.com/argoproj/notifications-engine/pkg/triggers"
	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/kustomize/api/filesys"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/yaml"
)

// ---- local mirrors of types whose Go modules are too heavy to import -------

// notificationsConfiguration mirrors argoproj.io/v1alpha1
// NotificationsConfiguration of the argocd-operator (OpenShift GitOps),
// api/v1alpha1/notificationsconfiguration_types.go (spec fields triggers,
// templates, services, subscriptions, context; context since commit
// 80a3a9d3, operator v0.11). The operator module drags controller-runtime
// and the OpenShift APIs in.
type notificationsConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Triggers      map[string]string `json:"triggers,omitempty"`
		Templates     map[string]string `json:"templates,omitempty"`
		Services      map[string]string `json:"services,omitempty"`
		Subscriptions map[string]string `json:"subscriptions,omitempty"`
		Context       map[string]string `json:"context,omitempty"`
	} `json:"spec"`
}

// esoSecretStore and esoExternalSecret mirror the fields used here of
// external-secrets.io/v1 (External Secrets Operator, apis/externalsecrets/v1:
// secretstore_types.go, secretstore_aws_types.go, externalsecret_types.go).
// The ESO apis module needs Kubernetes 0.35 libraries, newer than the 0.32
// ones Argo Events v1.9.6 compiles with.
type esoSecretStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Provider struct {
			AWS *struct {
				Service string `json:"service"`
				Region  string `json:"region"`
				Role    string `json:"role,omitempty"`
				Auth    struct {
					JWTAuth *struct {
						ServiceAccountRef *struct {
							Name      string   `json:"name"`
							Namespace string   `json:"namespace,omitempty"`
							Audiences []string `json:"audiences,omitempty"`
						} `json:"serviceAccountRef,omitempty"`
					} `json:"jwt,omitempty"`
				} `json:"auth,omitempty"`
			} `json:"aws,omitempty"`
		} `json:"provider"`
		RefreshInterval int `json:"refreshInterval,omitempty"`
	} `json:"spec"`
}

type esoExternalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		RefreshInterval string `json:"refreshInterval,omitempty"`
		SecretStoreRef  struct {
			Name string `json:"name"`
			Kind string `json:"kind,omitempty"`
		} `json:"secretStoreRef"`
		Target struct {
			Name           string `json:"name,omitempty"`
			CreationPolicy string `json:"creationPolicy,omitempty"`
			DeletionPolicy string `json:"deletionPolicy,omitempty"`
		} `json:"target"`
		Data []struct {
			SecretKey string `json:"secretKey"`
			RemoteRef struct {
				Key      string `json:"key"`
				Property string `json:"property,omitempty"`
				Version  string `json:"version,omitempty"`
			} `json:"remoteRef"`
		} `json:"data"`
	} `json:"spec"`
}

// prometheusRule and podMonitor mirror the fields used here of
// monitoring.coreos.com/v1 (prometheus-operator pkg/apis/monitoring/v1:
// prometheusrule_types.go PrometheusRuleSpec, RuleGroup, Rule;
// podmonitor_types.go PodMonitorSpec, PodMetricsEndpoint; checked against
// v0.92.1). That module needs Kubernetes 0.36 libraries, newer than the 0.32
// ones Argo Events v1.9.6 compiles with. The rules themselves are checked by
// promtool (TestPrometheusRule).
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []struct {
		Record      string            `json:"record,omitempty"`
		Alert       string            `json:"alert,omitempty"`
		Expr        string            `json:"expr"`
		For         string            `json:"for,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"rules"`
}

type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port,omitempty"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// kustomization mirrors the fields of kustomize.config.k8s.io/v1beta1
// Kustomization and v1alpha1 Component (sigs.k8s.io/kustomize/api/types)
// that deploy/ uses; unknown fields fail.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs,omitempty"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	} `json:"labels,omitempty"`
	Patches []struct {
		Path   string `json:"path,omitempty"`
		Patch  string `json:"patch,omitempty"`
		Target *struct {
			Group   string `json:"group,omitempty"`
			Version string `json:"version,omitempty"`
			Kind    string `json:"kind,omitempty"`
			Name    string `json:"name,omitempty"`
		} `json:"target,omitempty"`
	} `json:"patches,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// jsonPatchOp is one RFC 6902 operation (kustomize JSON patches).
type jsonPatchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value,omitempty"`
	From  string          `json:"from,omitempty"`
}

// metadataPatch is a merge patch that only touches metadata (the Rollout and
// Application opt-in files).
type metadataPatch struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
}

// configMapDataPatch is a merge patch of a ConfigMap's data.
type configMapDataPatch struct {
	Data map[string]string `json:"data"`
}

// ---- decoding every manifest -----------------------------------------------

// patchFiles are the YAML files of deploy/ that are patches, not objects.
var patchFiles = map[string]func() any{
	"argo-rollouts/rollout-subscription.yaml":                func() any { return &metadataPatch{} },
	"argocd/application-subscription.yaml":                   func() any { return &metadataPatch{} },
	"argocd/backstage/application-subscription.yaml":         func() any { return &metadataPatch{} },
	"components/backstage/patch.yaml":                        func() any { return &[]jsonPatchOp{} },
	"argo-rollouts/catalog-merge.patch.yaml":                 func() any { return &configMapDataPatch{} },
	"components/atlassian-from-kubernetes-secret/patch.yaml": func() any { return &[]jsonPatchOp{} },
	"components/eventbus-nats/patch.yaml":                    func() any { return &[]jsonPatchOp{} },
}

// decodeObject strictly decodes one Kubernetes object by its apiVersion and
// kind, runs the upstream validation where the type has one, and returns
// the decoded value.
func decodeObject(t *testing.T, name string, doc []byte) any {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var v any
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		v = &corev1.Namespace{}
	case "v1 ServiceAccount":
		v = &corev1.ServiceAccount{}
	case "v1 ConfigMap":
		v = &corev1.ConfigMap{}
	case "v1 Secret":
		v = &corev1.Secret{}
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		v = &rbacv1.ClusterRole{}
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		v = &rbacv1.ClusterRoleBinding{}
	case "batch/v1 CronJob":
		v = &batchv1.CronJob{}
	case "monitoring.coreos.com/v1 PrometheusRule":
		v = &prometheusRule{}
	case "monitoring.coreos.com/v1 PodMonitor":
		v = &podMonitor{}
	case "argoproj.io/v1alpha1 EventBus":
		v = &aev1.EventBus{}
	case "argoproj.io/v1alpha1 EventSource":
		v = &aev1.EventSource{}
	case "argoproj.io/v1alpha1 Sensor":
		v = &aev1.Sensor{}
	case "argoproj.io/v1alpha1 NotificationsConfiguration":
		v = &notificationsConfiguration{}
	case "serving.knative.dev/v1 Service":
		v = &servingv1.Service{}
	case "external-secrets.io/v1 SecretStore":
		v = &esoSecretStore{}
	case "external-secrets.io/v1 ExternalSecret":
		v = &esoExternalSecret{}
	case "kustomize.config.k8s.io/v1beta1 Kustomization", "kustomize.config.k8s.io/v1alpha1 Component":
		v = &kustomization{}
	default:
		t.Fatalf("%s: no Go type known for %q %q: add it to decodeObject", name, tm.APIVersion, tm.Kind)
	}
	mustStrict(t, name, doc, v)
	switch o := v.(type) {
	case *servingv1.Service:
		// The Knative webhook's own defaulting and validation.
		ctx := context.Background()
		o.SetDefaults(ctx)
		if err := o.Validate(ctx); err != nil {
			t.Errorf("%s: Knative validation: %v", name, err)
		}
	case *aev1.Sensor:
		// What the Argo Events controller checks before it deploys a Sensor.
		eb := &aev1.EventBus{Spec: aev1.EventBusSpec{JetStream: &aev1.JetStreamBus{Version: "latest"}}}
		if err := sensorreconciler.ValidateSensor(o, eb); err != nil {
			t.Errorf("%s: Argo Events ValidateSensor: %v", name, err)
		}
		for _, tr := range o.Spec.Triggers {
			if tr.RetryStrategy != nil {
				if _, err := sharedutil.Convert2WaitBackoff(tr.RetryStrategy); err != nil {
					t.Errorf("%s: trigger %s retryStrategy: %v", name, tr.Template.Name, err)
				}
			}
		}
	case *aev1.EventSource:
		// The calendar EventSource's own validation (the controller runs
		// every event source's ValidateEventSource; the package that
		// collects them all pulls every event source's SDK in).
		for ev, cal := range o.Spec.Calendar {
			el := &calendar.EventListener{EventSourceName: o.Name, EventName: ev, CalendarEventSource: cal}
			if err := el.ValidateEventSource(context.Background()); err != nil {
				t.Errorf("%s: calendar %s: %v", name, ev, err)
			}
		}
	case *batchv1.CronJob:
		// The CronJob controller parses the schedule with robfig/cron's
		// standard parser.
		if _, err := cron.ParseStandard(o.Spec.Schedule); err != nil {
			t.Errorf("%s: schedule %q: %v", name, o.Spec.Schedule, err)
		}
	case *corev1.ConfigMap:
		checkNotificationKeys(t, name, o.Data)
	case *notificationsConfiguration:
		for _, m := range []map[string]string{o.Spec.Triggers, o.Spec.Templates, o.Spec.Services} {
			checkNotificationKeys(t, name, m)
		}
	}
	return v
}

// checkNotificationKeys decodes the YAML inside notification ConfigMap keys
// strictly into the notifications-engine types: notifications-engine itself
// ignores unknown fields, so a misspelt "webhooks:" or "retryWaitMax: 5s"
// would silently do nothing (or fail only at send time).
func checkNotificationKeys(t *testing.T, name string, data map[string]string) {
	t.Helper()
	for k, v := range data {
		switch {
		case strings.HasPrefix(k, "template."):
			mustStrict(t, name+" "+k, []byte(v), &services.Notification{})
		case strings.HasPrefix(k, "trigger."):
			mustStrict(t, name+" "+k, []byte(v), &[]triggers.Condition{})
		case strings.HasPrefix(k, "service.webhook."):
			mustStrict(t, name+" "+k, []byte(v), &services.WebhookOptions{})
		case k == "context":
			mustStrict(t, name+" "+k, []byte(v), &map[string]string{})
		}
	}
}

// deployYAMLFiles lists every YAML file in deploy/ outside testdata/.
func deployYAMLFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (p == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func TestEveryManifestDecodesStrictly(t *testing.T) {
	files := deployYAMLFiles(t)
	if len(files) < 20 {
		t.Fatalf("found only %d YAML files in deploy/: %v", len(files), files)
	}
	kinds := map[string]int{}
	for _, f := range files {
		docs := yamlDocs(t, f)
		if len(docs) == 0 {
			t.Errorf("%s: empty", f)
		}
		for i, doc := range docs {
			name := fmt.Sprintf("%s#%d", f, i)
			if mk, ok := patchFiles[f]; ok {
				mustStrict(t, name, doc, mk())
				kinds["patch"]++
				continue
			}
			var tm metav1.TypeMeta
			_ = yaml.Unmarshal(doc, &tm)
			decodeObject(t, name, doc)
			kinds[tm.Kind]++
		}
	}
	for _, k := range []string{"EventBus", "EventSource", "Sensor", "Service", "ServiceAccount", "ConfigMap",
		"NotificationsConfiguration", "ExternalSecret", "SecretStore", "Kustomization", "Component",
		"CronJob", "PrometheusRule", "PodMonitor"} {
		if kinds[k] == 0 {
			t.Errorf("no %s found in deploy/ (kinds seen: %v)", k, kinds)
		}
	}
	t.Logf("decoded %d files: %v", len(files), kinds)
}

// The strict decoding must really reject what it claims to reject.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	for _, c := range []struct {
		doc string
		v   any
	}{
		{"apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nspec:\n  triggers:\n  - template:\n      name: x\n      http:\n        url: http://x\n        successCodes: [200]\n", &aev1.Sensor{}},
		{"spec:\n  template:\n    spec:\n      containers:\n      - image: x\n        envs: []\n", &servingv1.Service{}},
		{"webhooks:\n  x:\n    body: '{}'\n", &services.Notification{}},
		{"url: http://x\nretryWaitMax: 5s\n", &services.WebhookOptions{}},
		{"a: 1\na: 2\n", &map[string]int{}},
		{"spec:\n  groups:\n  - name: x\n    rules:\n    - alert: A\n      expr: up\n      for_: 5m\n", &prometheusRule{}},
		{"spec:\n  selector: {}\n  podMetricsEndpoints:\n  - portName: user-port\n", &podMonitor{}},
	} {
		if err := strictDecode([]byte(c.doc), c.v); err == nil {
			t.Errorf("strict decode of %q into %T succeeded, want an error", c.doc, c.v)
		}
	}
}

// ---- kustomizations -----------------------------------------------------------

func kustomizationDirs(t *testing.T) []string {
	var dirs []string
	for _, f := range deployYAMLFiles(t) {
		if filepath.Base(f) == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	return dirs
}

func TestKustomizationsReferenceExistingFiles(t *testing.T) {
	dirs := kustomizationDirs(t)
	if len(dirs) < 10 {
		t.Fatalf("only %d kustomizations: %v", len(dirs), dirs)
	}
	for _, dir := range dirs {
		var k kustomization
		loadOne(t, filepath.Join(dir, "kustomization.yaml"), &k)
		refs := append(append([]string{}, k.Resources...), k.Components...)
		for _, p := range k.Patches {
			if p.Path != "" {
				refs = append(refs, p.Path)
			}
		}
		if len(refs) == 0 {
			t.Errorf("%s: references nothing", dir)
		}
		for _, r := range refs {
			p := filepath.Join(dir, r)
			st, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s: %s does not exist", dir, r)
				continue
			}
			if st.IsDir() {
				if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
					t.Errorf("%s: %s is a directory without kustomization.yaml", dir, r)
				}
			}
		}
	}
}

// kustomizeBuild builds dir with the kustomize library kubectl embeds
// (krusty, with kubectl kustomize's defaults), so the tests need no
// kubectl.
func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return out
}

// builtObjects builds a kustomization and strictly decodes every object in
// the output (so JSON patches that produce an invalid object fail here).
func builtObjects(t *testing.T, dir string) []any {
	t.Helper()
	var objs []any
	for i, doc := range splitYAML(t, dir, kustomizeBuild(t, dir)) {
		objs = append(objs, decodeObject(t, fmt.Sprintf("kustomize %s #%d", dir, i), doc))
	}
	return objs
}

func findService(t *testing.T, objs []any) *servingv1.Service {
	t.Helper()
	for _, o := range objs {
		if s, ok := o.(*servingv1.Service); ok {
			return s
		}
	}
	t.Fatal("no Knative Service in the build")
	return nil
}

// checkEventBusStore asserts the Service keeps its idempotency records in
// the EventBus NATS (components/eventbus-nats) and may run 3 replicas.
func checkEventBusStore(t *testing.T, svc *servingv1.Service) {
	t.Helper()
	if got := svc.Spec.Template.Annotations["autoscaling.knative.dev/max-scale"]; got != "3" {
		t.Errorf("max-scale %q, want 3", got)
	}
	env := map[string]string{}
	c := svc.Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for k, want := range map[string]string{
		"NATS_URL":             "nats://eventbus-default-js-svc.argo-events.svc:4222",
		"NATS_REPLICAS":        "3",
		"NATS_TLS_SERVER_NAME": "eventbus-default-js-svc.argo-events.svc",
	} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	if len(c.VolumeMounts) != 1 || len(svc.Spec.Template.Spec.Volumes) != 1 {
		t.Fatalf("volumes %+v, mounts %+v", svc.Spec.Template.Spec.Volumes, c.VolumeMounts)
	}
	m, v := c.VolumeMounts[0], svc.Spec.Template.Spec.Volumes[0]
	if m.Name != v.Name || v.Secret == nil || v.Secret.SecretName != "rollback-incident-nats" || !m.ReadOnly {
		t.Errorf("volume %+v mounted as %+v", v, m)
	}
	for k, key := range map[string]string{"NATS_AUTH_FILE": "client-auth", "NATS_CA_FILE": "ca-cert"} {
		if env[k] != m.MountPath+"/"+key {
			t.Errorf("%s=%s, want key %s of the mounted Secret at %s", k, env[k], key, m.MountPath)
		}
	}
}

func envNames(c corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return names
}

func TestKustomizeBuilds(t *testing.T) {
	for _, dir := range kustomizationDirs(t) {
		var k kustomization
		loadOne(t, filepath.Join(dir, "kustomization.yaml"), &k)
		if k.Kind == "Component" {
			continue // built through the overlays below
		}
		t.Run(dir, func(t *testing.T) {
			objs := builtObjects(t, dir)
			if len(objs) == 0 {
				t.Fatal("empty build")
			}
		})
	}

	t.Run("root applies the function side into the right namespaces", func(t *testing.T) {
		ns := map[string]string{}
		for _, o := range builtObjects(t, ".") {
			if m, ok := o.(metav1.Object); ok {
				ns[fmt.Sprintf("%T/%s", o, m.GetName())] = m.GetNamespace()
			}
		}
		want := map[string]string{
			"*v1.Service/rollback-incident":                    "rollback-incident",
			"*v1.ServiceAccount/rollback-incident":             "rollback-incident",
			"*v1alpha1.EventBus/default":                       "argo-events",
			"*v1alpha1.EventSource/rollouts-webhook":           "argo-events",
			"*v1alpha1.EventSource/rollouts-resource":          "argo-events",
			"*v1alpha1.Sensor/rollback-incident":               "argo-events",
			"*v1.ServiceAccount/rollouts-resource-eventsource": "argo-events",
			"*v1alpha1.EventSource/rollback-incident-wakeup":   "argo-events",
			"*v1alpha1.Sensor/rollback-incident-wakeup":        "argo-events",
		}
		for k, v := range want {
			if got, ok := ns[k]; !ok || got != v {
				t.Errorf("%s: namespace %q (present %v), want %q; all: %v", k, got, ok, v, ns)
			}
		}
	})

	t.Run("image placeholder is replaced", func(t *testing.T) {
		svc := findService(t, builtObjects(t, "."))
		if img := svc.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/rollback-incident:latest" {
			t.Errorf("image %q: the images entry of function/kustomization.yaml did not apply", img)
		}
	})

	t.Run("overlay kubernetes-secret swaps Secrets Manager for secretKeyRefs", func(t *testing.T) {
		c := findService(t, builtObjects(t, "overlays/kubernetes-secret")).Spec.Template.Spec.Containers[0]
		names := envNames(c)
		if slices.Contains(names, "ATLASSIAN_SECRET_ID") || slices.Contains(names, "AWS_REGION") {
			t.Errorf("Secrets Manager variables still set: %v", names)
		}
		for _, e := range c.Env {
			switch e.Name {
			case "ATLASSIAN_EMAIL", "ATLASSIAN_API_TOKEN", "AUTH_TOKEN":
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "rollback-incident" {
					t.Errorf("%s is not a secretKeyRef to rollback-incident: %+v", e.Name, e)
				}
			}
		}
		if !slices.Contains(names, "ATLASSIAN_EMAIL") || !slices.Contains(names, "ATLASSIAN_API_TOKEN") {
			t.Errorf("env %v lacks the Atlassian credentials", names)
		}
	})

	// The default: the idempotency store (and with it the custody of
	// accepted rollbacks) on the Argo Events JetStream EventBus.
	for _, dir := range []string{".", "overlays/kubernetes-secret"} {
		t.Run(dir+" keeps custody in the EventBus NATS and allows 3 replicas", func(t *testing.T) {
			checkEventBusStore(t, findService(t, builtObjects(t, dir)))
		})
	}

	t.Run("overlay without-argo-events: in-process store, one replica, the CronJob wake-up", func(t *testing.T) {
		objs := builtObjects(t, "overlays/without-argo-events")
		svc := findService(t, objs)
		if got := svc.Spec.Template.Annotations["autoscaling.knative.dev/max-scale"]; got != "1" {
			t.Errorf("max-scale %q, want 1 with the in-process store", got)
		}
		for _, e := range svc.Spec.Template.Spec.Containers[0].Env {
			if strings.HasPrefix(e.Name, "NATS_") {
				t.Errorf("%s set without Argo Events", e.Name)
			}
		}
		if len(svc.Spec.Template.Spec.Volumes) != 0 {
			t.Errorf("volumes %+v: the NATS Secret is not there without Argo Events", svc.Spec.Template.Spec.Volumes)
		}
		var cronJobs int
		for _, o := range objs {
			switch o := o.(type) {
			case *batchv1.CronJob:
				cronJobs++
				if o.Namespace != "rollback-incident" {
					t.Errorf("CronJob in namespace %q", o.Namespace)
				}
			case *aev1.EventBus, *aev1.EventSource, *aev1.Sensor:
				t.Errorf("%T in a build for clusters without Argo Events", o)
			}
		}
		if cronJobs != 1 {
			t.Errorf("%d CronJobs, want the wake-up", cronJobs)
		}
	})

	t.Run("opt-in directories land in the function's namespace", func(t *testing.T) {
		for dir, want := range map[string][]string{
			"wakeup-cronjob": {"*v1.CronJob/rollback-incident-wakeup"},
			"monitoring":     {"*deploy.podMonitor/rollback-incident", "*deploy.prometheusRule/rollback-incident"},
		} {
			var got []string
			for _, o := range builtObjects(t, dir) {
				m := o.(metav1.Object)
				if m.GetNamespace() != "rollback-incident" {
					t.Errorf("%s: %T %s in namespace %q", dir, o, m.GetName(), m.GetNamespace())
				}
				got = append(got, fmt.Sprintf("%T/%s", o, m.GetName()))
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s builds %v, want %v", dir, got, want)
			}
		}
	})

	t.Run("via-argo-events points the Rollouts webhook at the EventSource", func(t *testing.T) {
		for _, o := range builtObjects(t, "argo-rollouts/via-argo-events") {
			cm, ok := o.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			if cm.Namespace != "argo-rollouts" {
				t.Errorf("namespace %q", cm.Namespace)
			}
			svc := cm.Data["service.webhook.rollback-incident"]
			if !strings.Contains(svc, "http://"+webhookEventHost+"/rollout") || !strings.Contains(svc, "$rollouts-webhook-token") {
				t.Errorf("service: %s", svc)
			}
			if len(cm.Data) != 7 {
				t.Errorf("the patch must only replace the service key; keys: %d", len(cm.Data))
			}
			return
		}
		t.Fatal("no ConfigMap")
	})
}
