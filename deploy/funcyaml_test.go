package deploy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"
)

// funcFile mirrors the parts of knative.dev/func v0.49.2
// pkg/functions/function.go (fn.Function) that `func deploy` turns into the
// Knative Service. Strictness comes from the JSON schema check below.
type funcFile struct {
	Name    string `json:"name"`
	Runtime string `json:"runtime"`
	Invoke  string `json:"invoke"`
	Build   struct {
		Builder string `json:"builder"`
	} `json:"build"`
	Run struct {
		Envs []struct {
			Name  *string `json:"name"`
			Value *string `json:"value"`
		} `json:"envs"`
	} `json:"run"`
	Deploy struct {
		Namespace          string            `json:"namespace"`
		Annotations        map[string]string `json:"annotations"`
		ServiceAccountName string            `json:"serviceAccountName"`
		Labels             []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"labels"`
		HealthEndpoints struct {
			Liveness  string `json:"liveness"`
			Readiness string `json:"readiness"`
		} `json:"healthEndpoints"`
		Options struct {
			Resources *struct {
				Requests *struct {
					CPU    string `json:"cpu"`
					Memory string `json:"memory"`
				} `json:"requests"`
				Limits *struct {
					CPU         string `json:"cpu"`
					Memory      string `json:"memory"`
					Concurrency *int64 `json:"concurrency"`
				} `json:"limits"`
			} `json:"resources"`
			Scale *struct {
				Min *int64 `json:"min"`
				Max *int64 `json:"max"`
			} `json:"scale"`
		} `json:"options"`
	} `json:"deploy"`
}

func funcJSON(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "func.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		t.Fatalf("func.yaml: %v", err)
	}
	return j
}

// funcSchema compiles the func v0.49.2 func.yaml JSON schema. One deviation,
// on purpose: the schema's build.builder enum lists only pack and s2i,
// while the same CLI version accepts "host" (cmd/build.go KnownBuilders:
// pack, s2i, host) and writes it into func.yaml itself after
// `func build --builder=host`.
func funcSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := os.ReadFile("testdata/func_yaml-schema.v0.49.2.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	builder := doc["definitions"].(map[string]any)["BuildSpec"].(map[string]any)["properties"].(map[string]any)["builder"].(map[string]any)
	builder["enum"] = append(builder["enum"].([]any), "host")
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("func_yaml-schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("func_yaml-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateFunc(t *testing.T, s *jsonschema.Schema, j []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

func TestFuncYAMLMatchesTheFuncSchema(t *testing.T) {
	s := funcSchema(t)
	j := funcJSON(t)
	if err := validateFunc(t, s, j); err != nil {
		t.Fatalf("func.yaml does not validate against the func v0.49.2 schema: %v", err)
	}
	// The schema really is strict (additionalProperties: false everywhere).
	var m map[string]any
	_ = json.Unmarshal(j, &m)
	m["deploy"].(map[string]any)["minScale"] = 0
	bad, _ := json.Marshal(m)
	if err := validateFunc(t, s, bad); err == nil {
		t.Fatal("the schema accepted deploy.minScale: it is not the strict func schema")
	}
}

// funcDeployService builds the Knative Service `func deploy` (v0.49.2)
// creates from func.yaml: pkg/knative/deployer.go generateNewService,
// pkg/k8s/deployer.go ProcessEnvs / SetHealthEndpoints / SetSecurityContext,
// pkg/deployer/common.go GenerateCommonLabels / GenerateCommonAnnotations,
// setServiceOptions. Left out on purpose: the env BUILT=<timestamp> (forces a
// new revision on every deploy) and ADDRESS=0.0.0.0 (for func-go images older
// than v0.22, which default to loopback; cmd/rollback-incident uses func-go
// v0.22, listening on [::]:8080), and Dapr annotations (only when Dapr is
// installed). localEnv resolves '{{ env:X }}'.
func funcDeployService(t *testing.T, f funcFile, localEnv map[string]string) *servingv1.Service {
	t.Helper()
	labels := map[string]string{}
	for _, l := range f.Deploy.Labels {
		labels[l.Key] = l.Value
	}
	labels["boson.dev/function"] = "true"
	labels["function.knative.dev/name"] = f.Name
	labels["function.knative.dev/runtime"] = f.Runtime
	annotations := map[string]string{"function.knative.dev/deployer": "knative"}
	maps.Copy(annotations, f.Deploy.Annotations)
	revAnnotations := maps.Clone(annotations)
	if sc := f.Deploy.Options.Scale; sc != nil {
		if sc.Min != nil {
			revAnnotations["autoscaling.knative.dev/min-scale"] = fmt.Sprint(*sc.Min)
		}
		if sc.Max != nil {
			revAnnotations["autoscaling.knative.dev/max-scale"] = fmt.Sprint(*sc.Max)
		}
	}
	localRe := regexp.MustCompile(`^{{\s*(\w+)\s*:(\w+)\s*}}$`)
	var env []corev1.EnvVar
	for _, e := range f.Run.Envs {
		if e.Name == nil || e.Value == nil {
			t.Fatalf("func.yaml env without name or value: the generator here does not handle envFrom")
		}
		v := *e.Value
		if !strings.HasPrefix(v, "{{") {
			env = append(env, corev1.EnvVar{Name: *e.Name, Value: v})
			continue
		}
		parts := strings.Split(strings.Trim(v, "{} "), ":")
		switch {
		case len(parts) == 3 && parts[0] == "secret":
			env = append(env, corev1.EnvVar{Name: *e.Name, ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: parts[1]}, Key: parts[2]}}})
		case len(parts) == 3 && parts[0] == "configMap":
			env = append(env, corev1.EnvVar{Name: *e.Name, ValueFrom: &corev1.EnvVarSource{
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: parts[1]}, Key: parts[2]}}})
		case len(parts) == 2:
			m := localRe.FindStringSubmatch(v)
			if m == nil || m[1] != "env" {
				t.Fatalf("func.yaml env %s: %q is not {{ env:X }}", *e.Name, v)
			}
			lv, ok := localEnv[m[2]]
			if !ok {
				t.Fatalf("func deploy would fail: local variable %s is not set", m[2])
			}
			env = append(env, corev1.EnvVar{Name: *e.Name, Value: lv})
		default:
			t.Fatalf("func.yaml env %s: unsupported %q", *e.Name, v)
		}
	}
	nonRoot, noEscalation := true, false
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(8080)}}}
	}
	svc := &servingv1.Service{}
	svc.Name = f.Name
	svc.Labels = labels
	svc.Annotations = annotations
	svc.Spec.Template.Labels = labels
	svc.Spec.Template.Annotations = revAnnotations
	svc.Spec.Template.Spec.ServiceAccountName = f.Deploy.ServiceAccountName
	svc.Spec.Template.Spec.Containers = []corev1.Container{{
		Env:            env,
		LivenessProbe:  probe(cmp.Or(f.Deploy.HealthEndpoints.Liveness, "/health/liveness")),
		ReadinessProbe: probe(cmp.Or(f.Deploy.HealthEndpoints.Readiness, "/health/readiness")),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &nonRoot,
			AllowPrivilegeEscalation: &noEscalation,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}}
	// func's deployer: requests and limits onto the container,
	// limits.concurrency as the revision's containerConcurrency.
	if r := f.Deploy.Options.Resources; r != nil {
		rr := corev1.ResourceRequirements{}
		set := func(l *corev1.ResourceList, name corev1.ResourceName, v string) {
			if v == "" {
				return
			}
			if *l == nil {
				*l = corev1.ResourceList{}
			}
			(*l)[name] = resource.MustParse(v)
		}
		if r.Requests != nil {
			set(&rr.Requests, corev1.ResourceCPU, r.Requests.CPU)
			set(&rr.Requests, corev1.ResourceMemory, r.Requests.Memory)
		}
		if r.Limits != nil {
			set(&rr.Limits, corev1.ResourceCPU, r.Limits.CPU)
			set(&rr.Limits, corev1.ResourceMemory, r.Limits.Memory)
			svc.Spec.Template.Spec.ContainerConcurrency = r.Limits.Concurrency
		}
		svc.Spec.Template.Spec.Containers[0].Resources = rr
	}
	return svc
}

func TestFuncYAMLAndTheKnativeServiceAgree(t *testing.T) {
	var f funcFile
	if err := json.Unmarshal(funcJSON(t), &f); err != nil {
		t.Fatal(err)
	}
	if f.Invoke != "http" {
		t.Errorf("invoke %q: CloudEvents mode answers 415 to the plain JSON the notification webhooks send", f.Invoke)
	}
	if f.Build.Builder != "host" {
		t.Errorf("build.builder %q, want host", f.Build.Builder)
	}
	var svc servingv1.Service
	loadOne(t, "function/service.yaml", &svc)

	// What `func deploy` generates, with the local variables set to what
	// service.yaml hard-codes (JIRA_URL, AWS_REGION are '{{ env:… }}').
	local := map[string]string{}
	for _, e := range svc.Spec.Template.Spec.Containers[0].Env {
		local[e.Name] = e.Value
	}
	want := funcDeployService(t, f, local)
	got := &svc
	c, wc := got.Spec.Template.Spec.Containers[0], want.Spec.Template.Spec.Containers[0]

	check := func(what string, g, w any) {
		t.Helper()
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if !bytes.Equal(gj, wj) {
			t.Errorf("%s differs between deploy/function/service.yaml and func.yaml:\n service.yaml: %s\n func.yaml:    %s", what, gj, wj)
		}
	}
	check("name", got.Name, want.Name)
	check("labels", got.Labels, want.Labels)
	check("annotations", got.Annotations, want.Annotations)
	check("revision labels", got.Spec.Template.Labels, want.Spec.Template.Labels)
	check("revision annotations", got.Spec.Template.Annotations, want.Spec.Template.Annotations)
	check("serviceAccountName", got.Spec.Template.Spec.ServiceAccountName, want.Spec.Template.Spec.ServiceAccountName)
	check("env", c.Env, wc.Env)
	check("liveness probe", c.LivenessProbe, wc.LivenessProbe)
	check("readiness probe", c.ReadinessProbe, wc.ReadinessProbe)
	check("securityContext", c.SecurityContext, wc.SecurityContext)
	check("resources", c.Resources, wc.Resources)
	check("containerConcurrency", got.Spec.Template.Spec.ContainerConcurrency, want.Spec.Template.Spec.ContainerConcurrency)

	// The deployment decisions themselves.
	if got.Labels["networking.knative.dev/visibility"] != "cluster-local" {
		t.Error("the function is not cluster-local")
	}
	if got.Spec.Template.Annotations["autoscaling.knative.dev/min-scale"] != "0" {
		t.Error("min-scale is not 0: no scale to zero")
	}
	if got.Spec.Template.Annotations["autoscaling.knative.dev/max-scale"] != "1" {
		t.Error("max-scale must stay 1 while the idempotency record is in process (no NATS_URL)")
	}
	if mem := c.Resources.Limits.Memory(); mem.IsZero() || got.Spec.Template.Spec.ContainerConcurrency == nil {
		t.Error("no memory limit or container concurrency: memory is unbounded under a burst")
	}
	if got.Spec.Template.Spec.ServiceAccountName != "rollback-incident" {
		t.Error("serviceAccountName is not the IRSA ServiceAccount")
	}
	secretRefs := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secretRefs[e.Name] = e.ValueFrom.SecretKeyRef.Name + ":" + e.ValueFrom.SecretKeyRef.Key
		} else if strings.Contains(strings.ToUpper(e.Name), "TOKEN") {
			t.Errorf("%s is a plain value: secrets must be secretKeyRefs", e.Name)
		}
	}
	if secretRefs["AUTH_TOKEN"] != "rollback-incident:auth-token" {
		t.Errorf("AUTH_TOKEN secretKeyRef: %v", secretRefs)
	}
	names := envNames(c)
	for _, n := range []string{"JIRA_URL", "ATLASSIAN_SECRET_ID", "AWS_REGION", "AUTH_TOKEN"} {
		if !slices.Contains(names, n) {
			t.Errorf("env lacks %s: %v", n, names)
		}
	}
}

// The comparison above must be able to fail: a func.yaml that differs must
// produce a different Service.
func TestFuncDeployGeneratorSeesDifferences(t *testing.T) {
	var f funcFile
	if err := json.Unmarshal(funcJSON(t), &f); err != nil {
		t.Fatal(err)
	}
	local := map[string]string{"JIRA_URL": "https://x.atlassian.net", "AWS_REGION": "eu-west-1"}
	a := funcDeployService(t, f, local)
	v := "{{ secret:other:auth-token }}"
	for i := range f.Run.Envs {
		if *f.Run.Envs[i].Name == "AUTH_TOKEN" {
			f.Run.Envs[i].Value = &v
		}
	}
	*f.Deploy.Options.Scale.Max = 5
	b := funcDeployService(t, f, local)
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if bytes.Equal(aj, bj) {
		t.Fatal("changing the secret and max scale did not change the generated Service")
	}
}
