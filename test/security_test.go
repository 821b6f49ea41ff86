package test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"function/internal/awsfake"
	"function/internal/emulator"
)

// Known secret values: every one of them must never show up in anything
// the process writes or answers.
const (
	smAPIToken  = "atl-token-v1-5ecret"
	smAPIToken2 = "atl-token-v2-5ecret"
	smAuthToken = "caller-token-5ecret"
	awsSecret   = "aws-secret-key-5ecret"
	secretName  = "prod/rollback-incident/atlassian"
)

// secretsManager starts the SigV4-checking Secrets Manager fake and returns
// the environment that points the function's real AWS SDK at it.
func secretsManager(t *testing.T) (*awsfake.Fake, []string) {
	t.Helper()
	fake := awsfake.New(awsfake.Options{AccessKeyID: "AKIAEXAMPLE0000000001", SecretAccessKey: awsSecret, Region: "eu-west-1"})
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	return fake, []string{
		"ATLASSIAN_SECRET_ID=" + secretName,
		"ATLASSIAN_EMAIL=", "ATLASSIAN_API_TOKEN=", "AUTH_TOKEN=",
		"AWS_REGION=eu-west-1",
		"AWS_ACCESS_KEY_ID=AKIAEXAMPLE0000000001",
		"AWS_SECRET_ACCESS_KEY=" + awsSecret,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + ts.URL,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

func secretJSON(token string) string {
	return fmt.Sprintf(`{"email":%q,"api_token":%q,"auth_token":%q}`, emulator.DefaultEmail, token, smAuthToken)
}

// postAs posts with the given bearer token.
func (e *env) postAs(token string, body []byte) result {
	return e.post(body, map[string]string{"Authorization": "Bearer " + token})
}

// TestSecretsManagerCredentials: the function reads Atlassian credentials
// and the callers' token from Secrets Manager through the real AWS SDK
// (SigV4 checked by the fake), and picks up a rotated token on Jira's 401
// without a restart.
func TestSecretsManagerCredentials(t *testing.T) {
	t.Parallel()
	fake, smEnv := secretsManager(t)
	fake.SetSecret(secretName, secretJSON(smAPIToken))
	emu, ts := newEmulator(t)
	emu.SetCredentials(emulator.DefaultEmail, smAPIToken)
	e := startWith(t, emu, ts, smEnv...)

	if r := e.post(fixture(t, "rollout-notification-webhook.json"), nil); r.status != http.StatusUnauthorized {
		t.Errorf("the test's AUTH_TOKEN is not the secret's auth_token: %d", r.status)
	}
	r := e.postAs(smAuthToken, fixture(t, "rollout-notification-webhook.json"))
	if r.status != http.StatusOK || r.reply.Status != "created" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// Rotation: Atlassian now accepts only the new token, which the secret
	// holds; the function's cached one gets a 401, it refetches once.
	calls := fake.Calls()
	fake.SetSecret(secretName, secretJSON(smAPIToken2))
	emu.SetCredentials(emulator.DefaultEmail, smAPIToken2)
	r = e.postAs(smAuthToken, fixture(t, "workflow-failed.json"))
	if r.status != http.StatusOK || r.reply.Status != "created" {
		t.Fatalf("after rotation: %d %s", r.status, r.body)
	}
	if got := fake.Calls() - calls; got != 1 {
		t.Errorf("%d GetSecretValue calls for the rotation, want 1", got)
	}
	assertNoSecrets(t, e, r.body)
}

// TestSecretsManagerUnavailable: with Secrets Manager down the function
// does not crash: it is not ready, answers 503 with Retry-After, and
// becomes ready and opens the incident once Secrets Manager is back.
func TestSecretsManagerUnavailable(t *testing.T) {
	t.Parallel()
	fake, smEnv := secretsManager(t)
	fake.SetSecret(secretName, secretJSON(smAPIToken))
	fake.FailNext(awsfake.CodeInternalServiceErr, 10)
	emu, ts := newEmulator(t)
	emu.SetCredentials(emulator.DefaultEmail, smAPIToken)
	e := cloud.launch(t, emu, ts, smEnv...)

	resp, err := http.Get(e.url + "/health/readiness")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readiness %d while Secrets Manager is down", resp.StatusCode)
	}
	r := e.postAs(smAuthToken, fixture(t, "rollout-notification-webhook.json"))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("%d %s, want 503 with Retry-After", r.status, r.body)
	}
	// The background retry reads the secret once the failures are spent.
	if err := e.p.Ready(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	r = e.postAs(smAuthToken, fixture(t, "rollout-notification-webhook.json"))
	if r.status != http.StatusOK || r.reply.Status != "created" {
		t.Fatalf("after recovery: %d %s", r.status, r.body)
	}
	assertNoSecrets(t, e, r.body)
}

// TestSecretsManagerMisconfigured: a secret that does not exist, or one
// with the wrong content, stops the function at start with the reason.
func TestSecretsManagerMisconfigured(t *testing.T) {
	t.Parallel()
	for name, setup := range map[string]func(f *awsfake.Fake){
		"missing secret": func(f *awsfake.Fake) {},
		"access denied": func(f *awsfake.Fake) {
			f.SetSecret(secretName, secretJSON(smAPIToken))
			f.FailNext(awsfake.CodeAccessDenied, 5)
		},
		"malformed secret": func(f *awsfake.Fake) {
			f.SetSecret(secretName, `{"email":"x","api_token":"`+smAPIToken+`","extra":"`+smAPIToken2+`"}`)
		},
		"no auth_token": func(f *awsfake.Fake) { f.SetSecret(secretName, `{"email":"x","api_token":"`+smAPIToken+`"}`) },
	} {
		t.Run(name, func(t *testing.T) {
			fake, smEnv := secretsManager(t)
			setup(fake)
			out, err := runToExit(t, append(smEnv, "JIRA_URL=https://x.atlassian.net", "LISTEN_ADDRESS=127.0.0.1:0")...)
			if err == nil {
				t.Fatalf("started with a misconfigured secret:\n%s", out)
			}
			if !strings.Contains(out, "credentials") && !strings.Contains(out, "AUTH_TOKEN") {
				t.Errorf("no reason given:\n%s", out)
			}
			for _, s := range []string{smAPIToken, smAPIToken2, awsSecret} {
				if strings.Contains(out, s) {
					t.Errorf("output leaks %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestHMACSignature: with HMAC_SECRET the body must be signed.
func TestHMACSignature(t *testing.T) {
	t.Parallel()
	const key = "hmac-key-5ecret"
	e := start(t, "AUTH_TOKEN=", "HMAC_SECRET="+key)
	body := fixture(t, "rollout-notification-webhook.json")
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	for name, tc := range map[string]struct {
		sig    string
		body   []byte
		status int
	}{
		"no signature":    {"", body, http.StatusUnauthorized},
		"wrong signature": {"sha256=" + strings.Repeat("ab", 32), body, http.StatusUnauthorized},
		"not hex":         {"sha256=zz", body, http.StatusUnauthorized},
		"other body":      {good, append([]byte(" "), body...), http.StatusUnauthorized},
		"signed":          {good, body, http.StatusOK},
	} {
		h := map[string]string{"Authorization": ""}
		if tc.sig != "" {
			h["X-Signature-256"] = tc.sig
		}
		if r := e.post(tc.body, h); r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", name, r.status, r.body, tc.status)
		}
	}
}

// TestNoSecretLeaks runs failure scenarios with known secret values and
// checks that none of them appears in any reply, log line, health or
// metrics output.
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	emu, ts := newEmulator(t)
	emu.SetCredentials(emulator.DefaultEmail, "a-different-token") // Jira answers 401
	e := startWith(t, emu, ts, "ATLASSIAN_API_TOKEN="+smAPIToken, "AUTH_TOKEN="+smAuthToken, "LOG_LEVEL=debug")
	var bodies [][]byte
	for _, r := range []result{
		e.postAs(smAuthToken, fixture(t, "rollout-notification-webhook.json")), // 401 from Jira
		e.postAs(smAPIToken, fixture(t, "rollout-notification-webhook.json")),  // wrong caller token
		e.postAs(smAuthToken, []byte(`{"rolloutName":"x"}`)),                   // bad input
	} {
		bodies = append(bodies, r.body)
	}
	emu.SetCredentials(emulator.DefaultEmail, smAPIToken)
	emu.SetOutage(500)
	bodies = append(bodies, e.postAs(smAuthToken, fixture(t, "rollout-notification-webhook.json")).body)
	emu.ClearOutage()
	assertNoSecrets(t, e, bodies...)
}

// assertNoSecrets checks the replies, the process's whole output and its
// health and metrics endpoints for the known secret values.
func assertNoSecrets(t *testing.T, e *env, replies ...[]byte) {
	t.Helper()
	texts := []string{e.output()}
	for _, b := range replies {
		texts = append(texts, string(b))
	}
	for _, path := range []string{"/health/readiness", "/health/liveness", "/metrics"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		texts = append(texts, string(b))
	}
	for _, text := range texts {
		for _, s := range []string{smAPIToken, smAPIToken2, smAuthToken, awsSecret} {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("secret %q leaked: …%s…", s, text[max(0, i-80):min(len(text), i+40)])
			}
		}
	}
}

// TestHostileInputIsInert sends event text built to break out of ADF,
// Confluence storage XHTML and JQL; the incident opens, and the text
// reaches Atlassian only as text.
func TestHostileInputIsInert(t *testing.T) {
	t.Parallel()
	eachDeployment(t, func(t *testing.T, d deployment) {
		e := d.start(t)
		hostile := `</td></tr></tbody></table><script>alert(1)</script>]]><ac:structured-macro ac:name="html"><ac:plain-text-body><![CDATA[<img src=x onerror=alert(2)>]]></ac:plain-text-body></ac:structured-macro>" OR project = SECRET OR labels = "x` + "\u0000\u0007\u202e\U0001F525 é"
		body, _ := json.Marshal(map[string]any{
			"rolloutName": "hostile-api", "namespace": "payments", "phase": "Degraded",
			"message": hostile, "reason": hostile, "strategy": hostile, "images": []string{hostile},
			"jiraProject": `OPS" OR project = SECRET`, "rolloutURL": "javascript:alert(3)",
		})
		r := e.post(body, nil)
		if r.status != http.StatusOK || r.reply.Status != "created" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		is, _ := e.emu.Issue(r.reply.JiraKey)
		if is.Project != "OPS" {
			t.Errorf("filed in %s", is.Project)
		}
		desc := description(is)
		if strings.Contains(desc, "javascript:") || !strings.Contains(desc, "alert") {
			t.Errorf("description: the text must be there as text, the link not at all:\n%s", desc)
		}
		pages := e.postmortems()
		if len(pages) != 1 {
			t.Fatalf("%d pages", len(pages))
		}
		page := pages[0].Body
		for _, bad := range []string{"<script", "<img", `ac:name="html"`, "<![CDATA[", "javascript:", "\u202e", "\u0000"} {
			if strings.Contains(page, bad) {
				t.Errorf("page contains %q", bad)
			}
		}
		if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(page, "\U0001F525 é") {
			t.Errorf("page lost the text instead of escaping it")
		}
		// The storm of the same hostile event still finds its one incident:
		// the JQL label search is quoted.
		if r2 := e.post(body, nil); r2.reply.Status != "existing" || r2.reply.JiraKey != r.reply.JiraKey {
			t.Errorf("repeat: %s", r2.body)
		}
	})
}
