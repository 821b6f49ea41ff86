package deploy

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// iamPolicy is the subset of the IAM policy grammar the files use.
type iamPolicy struct {
	Version   string `json:"Version"`
	Statement []struct {
		Sid       string                       `json:"Sid,omitempty"`
		Effect    string                       `json:"Effect"`
		Action    json.RawMessage              `json:"Action"`
		Resource  json.RawMessage              `json:"Resource,omitempty"`
		Principal map[string]string            `json:"Principal,omitempty"`
		Condition map[string]map[string]string `json:"Condition,omitempty"`
	} `json:"Statement"`
}

func loadPolicy(t *testing.T, path string) iamPolicy {
	t.Helper()
	var p iamPolicy
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := strictDecode(b, &p); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if p.Version != "2012-10-17" || len(p.Statement) == 0 {
		t.Fatalf("%s: version %q, %d statements", path, p.Version, len(p.Statement))
	}
	return p
}

func strs(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		t.Fatal(err)
	}
	return many
}

// The AWS documents agree with the manifests: the policy grants reading the
// secret ATLASSIAN_SECRET_ID names, the trust policy trusts the ServiceAccount
// the Knative Service runs as.
func TestAWSPoliciesMatchTheManifests(t *testing.T) {
	var svc struct {
		Spec struct {
			Template struct {
				Spec struct {
					ServiceAccountName string             `json:"serviceAccountName"`
					Containers         []corev1.Container `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	docs := yamlDocs(t, "function/service.yaml")
	if err := json.Unmarshal(mustJSON(t, docs[0]), &svc); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range svc.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	var sa corev1.ServiceAccount
	loadOne(t, "aws/serviceaccount.yaml", &sa)
	var ns corev1.Namespace
	loadOne(t, "function/namespace.yaml", &ns)
	if sa.Name != svc.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("ServiceAccount %s, the Service runs as %s", sa.Name, svc.Spec.Template.Spec.ServiceAccountName)
	}
	if !strings.HasPrefix(sa.Annotations["eks.amazonaws.com/role-arn"], "arn:aws:iam::") {
		t.Errorf("IRSA annotation: %v", sa.Annotations)
	}

	p := loadPolicy(t, "aws/iam-policy.json")
	st := p.Statement[0]
	if st.Effect != "Allow" || !slices.Contains(strs(t, st.Action), "secretsmanager:GetSecretValue") {
		t.Errorf("policy does not allow GetSecretValue: %+v", st)
	}
	// Secrets Manager ARNs end in "-" + 6 random characters.
	want := ":secret:" + env["ATLASSIAN_SECRET_ID"] + "-*"
	if res := strs(t, st.Resource); len(res) != 1 || !strings.HasSuffix(res[0], want) ||
		!strings.Contains(res[0], ":"+env["AWS_REGION"]+":") {
		t.Errorf("policy resource %v does not match ATLASSIAN_SECRET_ID %q in %s", res, env["ATLASSIAN_SECRET_ID"], env["AWS_REGION"])
	}

	trust := loadPolicy(t, "aws/irsa-trust-policy.json")
	subject := "system:serviceaccount:" + ns.Name + ":" + sa.Name
	found := false
	for k, v := range trust.Statement[0].Condition["StringEquals"] {
		if strings.HasSuffix(k, ":sub") && v == subject {
			found = true
		}
	}
	if !found || strs(t, trust.Statement[0].Action)[0] != "sts:AssumeRoleWithWebIdentity" {
		t.Errorf("IRSA trust policy does not trust %s: %+v", subject, trust.Statement[0])
	}
	pod := loadPolicy(t, "aws/pod-identity-trust-policy.json")
	if pod.Statement[0].Principal["Service"] != "pods.eks.amazonaws.com" {
		t.Errorf("Pod Identity trust: %+v", pod.Statement[0])
	}

	var es esoExternalSecret
	loadOne(t, "aws/external-secrets/externalsecret.yaml", &es)
	if es.Spec.Target.Name != "rollback-incident" {
		t.Errorf("ExternalSecret target %q", es.Spec.Target.Name)
	}
	for _, d := range es.Spec.Data {
		if d.RemoteRef.Key != env["ATLASSIAN_SECRET_ID"] {
			t.Errorf("ExternalSecret reads %q, the function %q", d.RemoteRef.Key, env["ATLASSIAN_SECRET_ID"])
		}
	}
	var store esoSecretStore
	loadOne(t, "aws/external-secrets/secretstore.yaml", &store)
	if store.Spec.Provider.AWS.Auth.JWTAuth.ServiceAccountRef.Name != sa.Name || es.Spec.SecretStoreRef.Name != store.Name {
		t.Errorf("SecretStore/ExternalSecret wiring: %+v %+v", store.Spec.Provider, es.Spec.SecretStoreRef)
	}
}

func mustJSON(t *testing.T, doc []byte) []byte {
	t.Helper()
	var v any
	if err := strictDecode(doc, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return b
}

// runCreateSecrets runs create-secrets.sh against a fake kubectl that
// records what it is asked to do: it returns the Secrets applied
// ("namespace/name" -> stringData) and the kubectl calls, one "ARGS …" line
// each. The fake knows no Secret, and only the namespaces of
// $FAKE_NAMESPACES (space-separated, in env).
func runCreateSecrets(t *testing.T, env []string, args ...string) (map[string]map[string]string, string) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to run secrets/create-secrets.sh")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "kubectl")
	log := filepath.Join(dir, "calls")
	script := `#!/usr/bin/env bash
echo "ARGS $*" >> "` + log + `"
case "$*" in
  *"get secret"*) exit 1 ;;
  "get namespace "*) for n in $FAKE_NAMESPACES; do [ "$*" = "get namespace $n" ] && exit 0; done; exit 1 ;;
  *"--dry-run=client -o yaml"*)
    # kubectl create secret generic NAME --from-literal=k=v... -> a manifest
    ns=$2; name=$6; echo "apiVersion: v1"; echo "kind: Secret"; echo "metadata: {name: $name, namespace: $ns}"; echo "stringData:"
    for a in "$@"; do case "$a" in --from-literal=*) kv=${a#--from-literal=}; printf '  %s: "%s"\n' "${kv%%=*}" "${kv#*=}";; esac; done ;;
  "apply -f -") cat > "$(mktemp "` + dir + `/applied.XXXXXX")" ;;
esac
exit 0
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{"secrets/create-secrets.sh"}, args...)...)
	cmd.Env = append(append(os.Environ(), "KUBECTL="+fake), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("create-secrets.sh: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(log)
	secrets := map[string]map[string]string{}
	applied, _ := filepath.Glob(filepath.Join(dir, "applied.*"))
	for _, f := range applied {
		var s corev1.Secret
		doc, _ := os.ReadFile(f)
		if err := strictDecode(doc, &s); err != nil {
			t.Fatalf("applied manifest is not a Secret: %v\n%s", err, doc)
		}
		secrets[s.Namespace+"/"+s.Name] = s.StringData
	}
	return secrets, string(b)
}

// create-secrets.sh: one token everywhere, "Bearer " only where a whole
// header value is expected, and the key names the manifests reference.
func TestCreateSecretsScript(t *testing.T) {
	secrets, calls := runCreateSecrets(t, []string{"AUTH_TOKEN=tok-123", "WEBHOOK_TOKEN=wh-456"},
		"--rollouts", "--argocd", "openshift-gitops")
	want := map[string]map[string]string{
		"rollback-incident/rollback-incident":  {"auth-token": "tok-123"},
		"argo-events/rollback-incident-caller": {"authorization": "Bearer tok-123"},
		"argo-events/rollouts-webhook-auth":    {"token": "wh-456"},
	}
	for k, v := range want {
		got, _ := json.Marshal(secrets[k])
		exp, _ := json.Marshal(v)
		if string(got) != string(exp) {
			t.Errorf("%s: %s, want %s\ncalls:\n%s", k, got, exp, calls)
		}
	}
	for _, c := range []string{
		`ARGS -n argo-rollouts patch secret argo-rollouts-notification-secret --type merge -p {"stringData":{"rollback-incident-token":"tok-123","rollouts-webhook-token":"wh-456"}}`,
		`ARGS -n openshift-gitops patch secret argocd-notifications-secret --type merge -p {"stringData":{"rollback-incident-token":"tok-123"}}`,
	} {
		if !strings.Contains(calls, c) {
			t.Errorf("missing call %s\ncalls:\n%s", c, calls)
		}
	}

	// The names used here are the ones the manifests reference.
	s := loadSensor(t)
	ref := s.Spec.Triggers[0].Template.HTTP.SecureHeaders[0].ValueFrom.SecretKeyRef
	if _, ok := secrets["argo-events/"+ref.Name][ref.Key]; !ok {
		t.Errorf("the Sensor reads %s/%s, the script does not write it", ref.Name, ref.Key)
	}
	es := loadEventSource(t, "argo-events/eventsource-webhook.yaml")
	a := es.Spec.Webhook["rollout"].AuthSecret
	if _, ok := secrets["argo-events/"+a.Name][a.Key]; !ok {
		t.Errorf("the EventSource reads %s/%s, the script does not write it", a.Name, a.Key)
	}
	for _, f := range []string{"argo-rollouts/base/argo-rollouts-notification-configmap.yaml", "argo-rollouts/via-argo-events/service.patch.yaml", "argocd/argocd-notifications-cm.yaml"} {
		b, _ := os.ReadFile(f)
		for _, ref := range []string{"$rollback-incident-token", "$rollouts-webhook-token"} {
			if strings.Contains(string(b), ref) && !strings.Contains(calls, `"`+strings.TrimPrefix(ref, "$")+`":`) {
				t.Errorf("%s references %s, the script does not write it", f, ref)
			}
		}
	}
}

// create-secrets.sh --nats copies the EventBus client credentials and CA
// into the Secret the default deployment mounts (components/eventbus-nats),
// under the keys NATS_AUTH_FILE and NATS_CA_FILE name; without a running
// EventBus it stops and says what to do.
func TestCreateSecretsScriptCopiesTheEventBusSecrets(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to run secrets/create-secrets.sh")
	}
	const clientAuth, caCert = "username: argo\npassword: pw-1", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	run := func(busRunning bool) (map[string]map[string]string, string, error) {
		dir := t.TempDir()
		b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
		bus := ""
		if busRunning {
			bus = `  *"get secret eventbus-default-js-client-auth -o jsonpath={.data.client-auth}") printf '%s' '` + b64(clientAuth) + `' ;;
  *"get secret eventbus-default-js-server -o jsonpath={.data.ca-cert}") printf '%s' '` + b64(caCert) + `' ;;
`
		}
		// kubectl create secret generic NAME --from-literal=k=v --from-file=k=path
		// --dry-run=client -o yaml: a manifest with base64 data, as kubectl writes it.
		script := `#!/usr/bin/env bash
case "$*" in
` + bus + `  *"get secret"* | *"get namespace"*) exit 1 ;;
  *"--dry-run=client -o yaml"*)
    ns=$2; name=$6; echo "apiVersion: v1"; echo "kind: Secret"; echo "metadata: {name: $name, namespace: $ns}"; echo "data:"
    for a in "$@"; do case "$a" in
      --from-literal=*) kv=${a#--from-literal=}; printf '  %s: %s\n' "${kv%%=*}" "$(printf '%s' "${kv#*=}" | base64 -w0)" ;;
      --from-file=*) kv=${a#--from-file=}; printf '  %s: %s\n' "${kv%%=*}" "$(base64 -w0 < "${kv#*=}")" ;;
    esac; done ;;
  "apply -f -") cat > "$(mktemp "` + dir + `/applied.XXXXXX")" ;;
esac
exit 0
`
		fake := filepath.Join(dir, "kubectl")
		if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "secrets/create-secrets.sh", "--nats")
		cmd.Env = append(os.Environ(), "KUBECTL="+fake, "AUTH_TOKEN=tok-123", "WEBHOOK_TOKEN=wh-456")
		out, err := cmd.CombinedOutput()
		secrets := map[string]map[string]string{}
		applied, _ := filepath.Glob(filepath.Join(dir, "applied.*"))
		for _, f := range applied {
			var s corev1.Secret
			doc, _ := os.ReadFile(f)
			if err := strictDecode(doc, &s); err != nil {
				t.Fatalf("applied manifest is not a Secret: %v\n%s", err, doc)
			}
			data := map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
			secrets[s.Namespace+"/"+s.Name] = data
		}
		return secrets, string(out), err
	}

	secrets, out, err := run(true)
	if err != nil {
		t.Fatalf("create-secrets.sh --nats: %v\n%s", err, out)
	}
	// What the default deployment mounts and where it reads it.
	svc := findService(t, builtObjects(t, "."))
	var secretName, mount string
	for _, v := range svc.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secretName = v.Secret.SecretName
		}
	}
	c := svc.Spec.Template.Spec.Containers[0]
	for _, m := range c.VolumeMounts {
		mount = m.MountPath
	}
	got := secrets[svc.Namespace+"/"+secretName]
	for _, e := range c.Env {
		want := map[string]string{"NATS_AUTH_FILE": clientAuth, "NATS_CA_FILE": caCert}[e.Name]
		if want == "" {
			continue
		}
		key, ok := strings.CutPrefix(e.Value, mount+"/")
		if !ok || got[key] != want {
			t.Errorf("%s=%s: key %q of %s/%s holds %q, want the EventBus's %q", e.Name, e.Value, key, svc.Namespace, secretName, got[key], want)
		}
	}
	if len(got) != 2 {
		t.Errorf("%s/%s has keys %v: only client-auth and ca-cert (never the server key)", svc.Namespace, secretName, slices.Collect(maps.Keys(got)))
	}

	_, out, err = run(false)
	if err == nil || !strings.Contains(out, "kubectl apply -k deploy/argo-events") {
		t.Errorf("without the EventBus: err %v, output %q; want a failure that says to apply the EventBus first", err, out)
	}
}
