package secrets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"function/internal/awsfake"
	"function/secrets"
)

const (
	akid     = "AKIAFAKEFAKEFAKE0001"
	sk       = "fake/secret/access/key/0123456789abcdefgh"
	region   = "eu-west-1"
	secretID = "prod/atlassian"

	cloudJSON  = `{"email":"bot@example.com","api_token":"api-SECRET-value","auth_token":"auth-SECRET-value"}`
	bearerJSON = `{"bearer_token":"bearer-SECRET-value"}`
)

// logBuffer collects slog output from the fetch goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// isolateAWSEnv keeps the developer's AWS environment and files out of a
// test; t.Setenv restores them afterwards.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	for _, k := range []string{
		"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_MAX_ATTEMPTS",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

type fixture struct {
	fake *awsfake.Fake
	srv  *httptest.Server
	logs *logBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	isolateAWSEnv(t)
	f := awsfake.New(awsfake.Options{AccessKeyID: akid, SecretAccessKey: sk, Region: region})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &fixture{fake: f, srv: srv, logs: &logBuffer{}}
}

// sdkClient is the real SDK client, as LoadDefaultConfig builds it, pointed
// at url. retryer nil means no retries, which keeps failure tests fast.
func sdkClient(t *testing.T, url, secretKey string, retryer aws.Retryer) *secretsmanager.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(t.Context(),
		awsconfig.WithRegion(region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(akid, secretKey, "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if retryer == nil {
		retryer = aws.NopRetryer{}
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(url)
		o.Retryer = retryer
	})
}

func (fx *fixture) source(t *testing.T, o secrets.SMOptions) *secrets.SecretsManager {
	t.Helper()
	if o.SecretID == "" {
		o.SecretID = secretID
	}
	if o.Client == nil {
		o.Client = sdkClient(t, fx.srv.URL, sk, nil)
	}
	if o.Logger == nil {
		o.Logger = fx.logs.logger()
	}
	s, err := secrets.NewSecretsManager(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBothSecretForms(t *testing.T) {
	fx := newFixture(t)
	cases := []struct {
		name, json string
		want       secrets.Credentials
	}{
		{"cloud", cloudJSON, secrets.Credentials{Email: "bot@example.com", APIToken: "api-SECRET-value", AuthToken: "auth-SECRET-value"}},
		{"data center", bearerJSON, secrets.Credentials{BearerToken: "bearer-SECRET-value"}},
		{"trimmed", "{\"bearer_token\":\" bearer-SECRET-value\\n\"}", secrets.Credentials{BearerToken: "bearer-SECRET-value"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			version := fx.fake.SetSecret(secretID, tc.json)
			got, err := fx.source(t, secrets.SMOptions{}).Credentials(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if !strings.Contains(fx.logs.String(), version) {
				t.Fatalf("fetch log lacks version %s: %s", version, fx.logs)
			}
		})
	}
	assertNoSecret(t, fx.logs.String())
}

func TestLookupByARN(t *testing.T) {
	fx := newFixture(t)
	fx.fake.SetSecret(secretID, bearerJSON)
	got, err := fx.source(t, secrets.SMOptions{SecretID: fx.fake.ARN(secretID)}).Credentials(t.Context())
	if err != nil || got.BearerToken != "bearer-SECRET-value" {
		t.Fatalf("%+v %v", got, err)
	}
}

// The production path: no Client, everything from the environment, as in a
// pod (there the keys come from IRSA or Pod Identity instead).
func TestDefaultClientFromEnvironment(t *testing.T) {
	fx := newFixture(t)
	fx.fake.SetSecret(secretID, cloudJSON)
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sk)
	t.Setenv("AWS_REGION", region)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", fx.srv.URL)
	t.Setenv("AWS_MAX_ATTEMPTS", "1")

	s, err := secrets.NewSecretsManager(t.Context(), secrets.SMOptions{SecretID: secretID, Logger: fx.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Credentials(t.Context())
	if err != nil || got.Email != "bot@example.com" || got.APIToken.Reveal() != "api-SECRET-value" {
		t.Fatalf("%+v %v", got, err)
	}

	// Without AWS_REGION, an ARN supplies the region; the fake only
	// accepts signatures scoped to eu-west-1, so success proves it was used.
	t.Setenv("AWS_REGION", "")
	s, err = secrets.NewSecretsManager(t.Context(), secrets.SMOptions{SecretID: fx.fake.ARN(secretID), Logger: fx.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Credentials(t.Context()); err != nil {
		t.Fatalf("region from ARN: %v", err)
	}

	// Neither: refuse at start-up rather than at the first incident.
	_, err = secrets.NewSecretsManager(t.Context(), secrets.SMOptions{SecretID: secretID})
	if !errors.Is(err, secrets.ErrMisconfigured) || !strings.Contains(err.Error(), "region") {
		t.Fatalf("no region: %v", err)
	}
	_, err = secrets.NewSecretsManager(t.Context(), secrets.SMOptions{SecretID: "  "})
	if !errors.Is(err, secrets.ErrMisconfigured) {
		t.Fatalf("no secret id: %v", err)
	}
}

// A pod with no IRSA, no Pod Identity and no IMDS has no AWS credentials at
// all: an operator has to fix that, so it is misconfiguration.
func TestNoAWSCredentials(t *testing.T) {
	fx := newFixture(t) // AWS_EC2_METADATA_DISABLED=true, no keys
	fx.fake.SetSecret(secretID, cloudJSON)
	t.Setenv("AWS_REGION", region)
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", fx.srv.URL)
	s, err := secrets.NewSecretsManager(t.Context(), secrets.SMOptions{SecretID: secretID, Logger: fx.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Credentials(t.Context())
	if !errors.Is(err, secrets.ErrMisconfigured) || !strings.Contains(err.Error(), "get credentials") {
		t.Fatalf("%v", err)
	}
	if fx.fake.Calls() != 0 {
		t.Fatalf("unsigned request reached AWS")
	}
}

// failureCase is one way fetching can fail; every case is also run by the
// leak test.
type failureCase struct {
	name  string
	setup func(t *testing.T, fx *fixture) secrets.SMOptions
	kind  error
	want  []string // substrings of the error
}

func failureCases() []failureCase {
	secretString := func(s string) func(*testing.T, *fixture) secrets.SMOptions {
		return func(_ *testing.T, fx *fixture) secrets.SMOptions {
			fx.fake.SetSecret(secretID, s)
			return secrets.SMOptions{}
		}
	}
	failNext := func(code string) func(*testing.T, *fixture) secrets.SMOptions {
		return func(_ *testing.T, fx *fixture) secrets.SMOptions {
			fx.fake.SetSecret(secretID, cloudJSON)
			fx.fake.FailNext(code, 1)
			return secrets.SMOptions{}
		}
	}
	mis, unav := secrets.ErrMisconfigured, secrets.ErrUnavailable
	return []failureCase{
		{"not found", func(*testing.T, *fixture) secrets.SMOptions { return secrets.SMOptions{} }, mis, []string{"ResourceNotFoundException"}},
		{"deleted", func(_ *testing.T, fx *fixture) secrets.SMOptions {
			fx.fake.SetSecret(secretID, cloudJSON)
			fx.fake.Delete(secretID)
			return secrets.SMOptions{}
		}, mis, []string{"ResourceNotFoundException"}},
		{"access denied", failNext("AccessDeniedException"), mis, []string{"AccessDeniedException", "not authorized"}},
		{"decryption failure", failNext("DecryptionFailure"), mis, []string{"DecryptionFailure"}},
		{"throttled", failNext("ThrottlingException"), unav, []string{"ThrottlingException"}},
		{"internal error", failNext("InternalServiceError"), unav, []string{"InternalServiceError", "StatusCode: 500"}},
		// A wrong AWS key cannot start working by itself: misconfigured.
		{"wrong secret access key", func(t *testing.T, fx *fixture) secrets.SMOptions {
			fx.fake.SetSecret(secretID, cloudJSON)
			return secrets.SMOptions{Client: sdkClient(t, fx.srv.URL, "wrong-SECRET-key", nil)}
		}, mis, []string{"InvalidSignatureException"}},
		{"server down", func(t *testing.T, _ *fixture) secrets.SMOptions {
			dead := httptest.NewServer(http.NotFoundHandler())
			dead.Close()
			return secrets.SMOptions{Client: sdkClient(t, dead.URL, sk, nil)}
		}, unav, []string{"connect"}},
		{"undecodable response", func(t *testing.T, _ *fixture) secrets.SMOptions {
			// A 200 whose body breaks mid-value: the decoder's complaint
			// would quote the secret, so it must be dropped.
			bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				_, _ = w.Write([]byte(`{"Name":"prod/atlassian","SecretString":{"api-SECRET-value`))
			}))
			t.Cleanup(bad.Close)
			return secrets.SMOptions{Client: sdkClient(t, bad.URL, sk, nil)}
		}, unav, []string{"could not be decoded"}},
		{"binary secret", func(_ *testing.T, fx *fixture) secrets.SMOptions {
			fx.fake.SetSecretBinary(secretID, []byte(cloudJSON))
			return secrets.SMOptions{}
		}, mis, []string{"secret must be a JSON SecretString"}},
		{"plain text secret", secretString("api-SECRET-value"), mis, []string{"not valid JSON"}},
		{"malformed JSON", secretString(`{"email":"bot@example.com","api_token":api-SECRET-value}`), mis, []string{"not valid JSON", "byte"}},
		{"JSON array", secretString(`["api-SECRET-value"]`), mis, []string{"must be a JSON object"}},
		{"both forms", secretString(`{"email":"bot@example.com","api_token":"api-SECRET-value","bearer_token":"bearer-SECRET-value"}`), mis, []string{"mixes the Cloud form"}},
		{"unknown key", secretString(`{"email":"bot@example.com","api_token":"api-SECRET-value","base_url":"https://x-SECRET.atlassian.net"}`), mis, []string{`unknown key "base_url"`}},
		{"value pasted as key", secretString(`{"bearer_token":"bearer-SECRET-value","api-SECRET-value-0123456789abcdefghij":"x"}`), mis, []string{"unknown key of 37 characters"}},
		{"empty value", secretString(`{"email":"bot@example.com","api_token":"  "}`), mis, []string{`key "api_token" is empty`}},
		{"missing api_token", secretString(`{"email":"bot@example.com","auth_token":"auth-SECRET-value"}`), mis, []string{`key "api_token" is missing`}},
		{"only auth_token", secretString(`{"auth_token":"auth-SECRET-value"}`), mis, []string{"needs email and api_token"}},
		{"non-string value", secretString(`{"bearer_token":12345,"auth_token":"auth-SECRET-value"}`), mis, []string{`key "bearer_token" must be a JSON string`}},
		{"null value", secretString(`{"bearer_token":null}`), mis, []string{`key "bearer_token" must be a JSON string`}},
		{"control character", secretString(`{"bearer_token":"bearer-SECRET\u0000value"}`), mis, []string{`key "bearer_token" contains control characters`}},
		{"empty object", secretString(`{}`), mis, []string{"needs email and api_token"}},
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range failureCases() {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			src := fx.source(t, tc.setup(t, fx))
			got, err := src.Credentials(t.Context())
			// A failure must come from its cause at the first answer, not
			// from waiting out the fetch's deadline (15 s by default) or
			// retrying. That is asserted here rather than by timing the
			// call, which a real SDK client over a real HTTP server makes
			// a network-level test that a loaded machine would slow: the
			// caller's ctx has no deadline, so only the fetch's own one
			// can end the call with DeadlineExceeded.
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("the fetch ran into its deadline instead of failing on its cause: %v", err)
			}
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			if got != (secrets.Credentials{}) {
				t.Fatalf("half-configured credentials returned with the error: %+v", got)
			}
			other := secrets.ErrUnavailable
			if tc.kind == secrets.ErrUnavailable {
				other = secrets.ErrMisconfigured
			}
			if !errors.Is(err, tc.kind) || errors.Is(err, other) {
				t.Fatalf("want %v only, got %v", tc.kind, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "get secret "+secretID) {
				t.Errorf("error lacks context: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if !strings.Contains(fx.logs.String(), `"msg":"secret fetch failed"`) {
				t.Errorf("no failure log: %s", fx.logs)
			}
		})
	}
}

// AWS API errors stay inspectable through the wrapping.
func TestAPIErrorIsReachable(t *testing.T) {
	fx := newFixture(t)
	_, err := fx.source(t, secrets.SMOptions{}).Credentials(t.Context())
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ResourceNotFoundException" {
		t.Fatalf("%v", err)
	}
}

// No secret value in any error string, %+v of a result, or log line, in any
// failure, on success, or on invalidation.
func TestNoLeak(t *testing.T) {
	for _, tc := range failureCases() {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			src := fx.source(t, tc.setup(t, fx))
			got, err := src.Credentials(t.Context())
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprintf("%+v", got), fx.logs.String()} {
				assertNoSecret(t, s)
			}
		})
	}
	t.Run("success and invalidate", func(t *testing.T) {
		fx := newFixture(t)
		fx.fake.SetSecret(secretID, cloudJSON)
		src := fx.source(t, secrets.SMOptions{})
		got, err := src.Credentials(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		src.Invalidate(got)
		assertNoSecret(t, fmt.Sprintf("%+v %#v %v", got, got, got))
		b, _ := json.Marshal(got)
		assertNoSecret(t, string(b))
		assertNoSecret(t, fx.logs.String())
		if !strings.Contains(fx.logs.String(), "invalidated") {
			t.Fatalf("no invalidation log: %s", fx.logs)
		}
	})
}

// The SDK's own retryer handles throttling and 5xx before this package
// classifies anything; the classification is of the final attempt.
func TestSDKRetriesThenClassifies(t *testing.T) {
	fx := newFixture(t)
	fx.fake.SetSecret(secretID, bearerJSON)
	noWait := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	})
	client := sdkClient(t, fx.srv.URL, sk, noWait)

	fx.fake.FailNext("ThrottlingException", 1)
	fx.fake.FailNext("InternalServiceError", 1)
	got, err := fx.source(t, secrets.SMOptions{Client: client}).Credentials(t.Context())
	if err != nil || got.BearerToken != "bearer-SECRET-value" || fx.fake.Calls() != 3 {
		t.Fatalf("retried to success: %+v %v calls=%d", got, err, fx.fake.Calls())
	}

	fx.fake.FailNext("InternalServiceError", 3)
	_, err = fx.source(t, secrets.SMOptions{Client: client}).Credentials(t.Context())
	if !errors.Is(err, secrets.ErrUnavailable) || fx.fake.Calls() != 6 {
		t.Fatalf("exhausted retries: %v calls=%d", err, fx.fake.Calls())
	}
	// Permanent errors are not retried by the SDK.
	fx.fake.FailNext("AccessDeniedException", 3)
	_, err = fx.source(t, secrets.SMOptions{Client: client}).Credentials(t.Context())
	if !errors.Is(err, secrets.ErrMisconfigured) || fx.fake.Calls() != 7 {
		t.Fatalf("access denied: %v calls=%d", err, fx.fake.Calls())
	}
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	fx := newFixture(t)
	fx.fake.SetSecret(secretID, cloudJSON)
	// Hold the first request until every caller is running, so most of them
	// find the fetch in flight rather than the cache filled.
	release := make(chan struct{})
	gated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		fx.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(gated.Close)
	src := fx.source(t, secrets.SMOptions{Client: sdkClient(t, gated.URL, sk, nil)})

	const n = 100
	var wg, started sync.WaitGroup
	errs := make(chan error, n)
	started.Add(n)
	for range n {
		wg.Go(func() {
			started.Done()
			c, err := src.Credentials(t.Context())
			if err == nil && c.APIToken.Reveal() != "api-SECRET-value" {
				err = fmt.Errorf("wrong credentials %+v", c)
			}
			errs <- err
		})
	}
	started.Wait()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := fx.fake.Calls(); got != 1 {
		t.Fatalf("GetSecretValue calls = %d, want 1", got)
	}
}

// clock is a settable time source for TTL tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestTTL(t *testing.T) {
	fx := newFixture(t)
	fx.fake.SetSecret(secretID, bearerJSON)
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	src := fx.source(t, secrets.SMOptions{Now: clk.Now}) // default TTL: 5m

	for range 3 {
		if _, err := src.Credentials(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(secrets.DefaultTTL - time.Second)
	if _, err := src.Credentials(t.Context()); err != nil || fx.fake.Calls() != 1 {
		t.Fatalf("within TTL: %v calls=%d", err, fx.fake.Calls())
	}
	fx.fake.SetSecret(secretID, `{"bearer_token":"bearer-SECRET-v2"}`)
	clk.Advance(time.Second)
	got, err := src.Credentials(t.Context())
	if err != nil || got.BearerToken != "bearer-SECRET-v2" || fx.fake.Calls() != 2 {
		t.Fatalf("after TTL: %+v %v calls=%d", got, err, fx.fake.Calls())
	}
}

func TestFailedFetchIsNotCached(t *testing.T) {
	fx := newFixture(t)
	fx.fake.SetSecret(secretID, bearerJSON)
	src := fx.source(t, secrets.SMOptions{})
	fx.fake.FailNext("ThrottlingException", 1)
	if _, err := src.Credentials(t.Context()); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("first: %v", err)
	}
	got, err := src.Credentials(t.Context())
	if err != nil || got.BearerToken != "bearer-SECRET-value" || fx.fake.Calls() != 2 {
		t.Fatalf("retry: %+v %v calls=%d", got, err, fx.fake.Calls())
	}
	if _, err := src.Credentials(t.Context()); err != nil || fx.fake.Calls() != 2 {
		t.Fatalf("success is cached: %v calls=%d", err, fx.fake.Calls())
	}
}

// Rotation without restart: the token in the cache is revoked, Atlassian
// answers 401 to every in-flight request, each calls Invalidate with the
// credentials it used and asks again. One refetch serves them all.
func TestRotation(t *testing.T) {
	fx := newFixture(t)
	fx.fake.SetSecret(secretID, cloudJSON)
	src := fx.source(t, secrets.SMOptions{})
	v1, err := src.Credentials(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v2JSON := `{"email":"bot@example.com","api_token":"api-SECRET-v2"}`
	fx.fake.SetSecret(secretID, v2JSON)
	before := fx.fake.Calls()

	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			src.Invalidate(v1)
			c, err := src.Credentials(t.Context())
			if err == nil && c.APIToken.Reveal() != "api-SECRET-v2" {
				err = fmt.Errorf("still old credentials after invalidate")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := fx.fake.Calls() - before; got != 1 {
		t.Fatalf("refetches = %d, want 1", got)
	}

	// Late 401s for v1 no longer match the cache: nothing happens.
	for range 50 {
		src.Invalidate(v1)
	}
	src.Invalidate(secrets.Credentials{})
	if c, err := src.Credentials(t.Context()); err != nil || c.APIToken.Reveal() != "api-SECRET-v2" || fx.fake.Calls()-before != 1 {
		t.Fatalf("stale invalidate refetched: %v calls=%d", err, fx.fake.Calls()-before)
	}
	if n := strings.Count(fx.logs.String(), "invalidated"); n != 1 {
		t.Fatalf("invalidation logged %d times", n)
	}
}

func TestSequentialInvalidateConcurrentWithCredentials(t *testing.T) {
	fx := newFixture(t)
	fx.fake.SetSecret(secretID, bearerJSON)
	src := fx.source(t, secrets.SMOptions{})
	v1, err := src.Credentials(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// 50 concurrent Invalidate(v1) with no Credentials call among them:
	// exactly one drops the cache; the next Credentials refetches once.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { src.Invalidate(v1) })
	}
	wg.Wait()
	fx.fake.SetSecret(secretID, `{"bearer_token":"bearer-SECRET-v2"}`)
	got, err := src.Credentials(t.Context())
	if err != nil || got.BearerToken != "bearer-SECRET-v2" || fx.fake.Calls() != 2 {
		t.Fatalf("%+v %v calls=%d", got, err, fx.fake.Calls())
	}
}

// stubClient is a GetSecretValueAPI whose answers a test controls; with
// testing/synctest it lets a test see every caller parked on one fetch.
type stubClient struct {
	mu    sync.Mutex
	calls int
	gate  chan struct{}
	err   error
}

func (s *stubClient) GetSecretValue(ctx context.Context, _ *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	s.mu.Lock()
	s.calls++
	gate, err := s.gate, s.err
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(bearerJSON), VersionId: aws.String("v1")}, nil
}

func (s *stubClient) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func TestWaitersShareOneFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stub := &stubClient{gate: make(chan struct{}), err: &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}}
		src, err := secrets.NewSecretsManager(t.Context(), secrets.SMOptions{SecretID: secretID, Client: stub, Logger: (&logBuffer{}).logger()})
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := src.Credentials(t.Context())
				errs <- err
			}()
		}
		synctest.Wait() // every caller is now blocked on the one fetch
		if stub.Calls() != 1 {
			t.Fatalf("calls while waiting = %d", stub.Calls())
		}
		close(stub.gate)
		for range n {
			if err := <-errs; !errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "ThrottlingException") {
				t.Fatalf("waiter: %v", err)
			}
		}
		// Not cached: the next call goes to AWS again.
		stub.mu.Lock()
		stub.err, stub.gate = nil, nil
		stub.mu.Unlock()
		if _, err := src.Credentials(t.Context()); err != nil || stub.Calls() != 2 {
			t.Fatalf("after failure: %v calls=%d", err, stub.Calls())
		}
	})
}

// A caller that gives up gets its own context error, and does not take the
// shared fetch down with it.
func TestCallerCancellationDoesNotAbortSharedFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stub := &stubClient{gate: make(chan struct{})}
		src, err := secrets.NewSecretsManager(t.Context(), secrets.SMOptions{SecretID: secretID, Client: stub, Logger: (&logBuffer{}).logger()})
		if err != nil {
			t.Fatal(err)
		}
		first, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		firstErr := make(chan error, 1)
		go func() {
			_, err := src.Credentials(first)
			firstErr <- err
		}()
		synctest.Wait()
		second := make(chan error, 1)
		go func() {
			_, err := src.Credentials(t.Context())
			second <- err
		}()
		time.Sleep(2 * time.Second) // the first caller's deadline passes
		err = <-firstErr
		if !errors.Is(err, secrets.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("first caller: %v", err)
		}
		close(stub.gate)
		if err := <-second; err != nil {
			t.Fatalf("second caller: %v", err)
		}
		if stub.Calls() != 1 {
			t.Fatalf("calls = %d", stub.Calls())
		}
	})
}

// The shared fetch has its own deadline, so a hung endpoint cannot pin
// goroutines forever.
func TestFetchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stub := &stubClient{gate: make(chan struct{})} // never opened
		src, err := secrets.NewSecretsManager(t.Context(), secrets.SMOptions{
			SecretID: secretID, Client: stub, FetchTimeout: 3 * time.Second, Logger: (&logBuffer{}).logger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Credentials(t.Context())
		if !errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Fatalf("%v", err)
		}
	})
}
