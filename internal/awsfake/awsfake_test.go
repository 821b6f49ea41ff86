package awsfake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"function/internal/awsfake"
)

const (
	getTarget = "secretsmanager.GetSecretValue"
	akid      = "AKIAFAKEFAKEFAKE0001"
	sk        = "fake/secret/access/key/0123456789abcdefgh"
	region    = "eu-west-1"
)

func newFake(t *testing.T, o awsfake.Options) (*awsfake.Fake, *httptest.Server) {
	t.Helper()
	if o.AccessKeyID == "" {
		o.AccessKeyID, o.SecretAccessKey, o.Region = akid, sk, region
	}
	f := awsfake.New(o)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// client builds the real SDK client the way production does, but with
// static credentials, an endpoint override and no retries.
func client(t *testing.T, url, key, secret, token, reg string) *secretsmanager.Client {
	t.Helper()
	// Keep the developer's ~/.aws out of the test.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	cfg, err := awsconfig.LoadDefaultConfig(t.Context(),
		awsconfig.WithRegion(reg),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(key, secret, token)),
	)
	if err != nil {
		t.Fatal(err)
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(url)
		o.Retryer = aws.NopRetryer{}
	})
}

func get(t *testing.T, c *secretsmanager.Client, in *secretsmanager.GetSecretValueInput) (*secretsmanager.GetSecretValueOutput, error) {
	t.Helper()
	return c.GetSecretValue(t.Context(), in)
}

func apiCode(t *testing.T, err error) (string, int) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error, got %v", err)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want an HTTP response error, got %v", err)
	}
	return ae.ErrorCode(), re.HTTPStatusCode()
}

func TestGetSecretValueByNameAndARN(t *testing.T) {
	f, srv := newFake(t, awsfake.Options{})
	v1 := f.SetSecret("prod/atlassian", `{"bearer_token":"one"}`)
	v2 := f.SetSecret("prod/atlassian", `{"bearer_token":"two"}`)
	c := client(t, srv.URL, akid, sk, "", region)

	arn := f.ARN("prod/atlassian")
	if !strings.HasPrefix(arn, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/atlassian-") || len(arn) != len("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/atlassian-AbCdEf") {
		t.Fatalf("ARN = %q", arn)
	}
	for _, id := range []string{"prod/atlassian", arn, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/atlassian"} {
		out, err := get(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if aws.ToString(out.SecretString) != `{"bearer_token":"two"}` || aws.ToString(out.VersionId) != v2 ||
			aws.ToString(out.ARN) != arn || aws.ToString(out.Name) != "prod/atlassian" ||
			len(out.VersionStages) != 1 || out.VersionStages[0] != "AWSCURRENT" || out.CreatedDate == nil {
			t.Fatalf("%s: unexpected output %+v", id, out)
		}
	}

	out, err := get(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/atlassian"), VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(out.VersionId) != v1 || aws.ToString(out.SecretString) != `{"bearer_token":"one"}` {
		t.Fatalf("AWSPREVIOUS: %v %+v", err, out)
	}
	out, err = get(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("prod/atlassian"), VersionId: aws.String(v1)})
	if err != nil || aws.ToString(out.SecretString) != `{"bearer_token":"one"}` {
		t.Fatalf("VersionId: %v %+v", err, out)
	}

	f.SetSecretBinary("bin", []byte{0, 1, 2})
	out, err = get(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	if err != nil || !bytes.Equal(out.SecretBinary, []byte{0, 1, 2}) || out.SecretString != nil {
		t.Fatalf("binary: %v %+v", err, out)
	}
	if got := f.Calls(); got != 6 {
		t.Fatalf("Calls = %d, want 6", got)
	}
}

func TestNotFoundAndDelete(t *testing.T) {
	f, srv := newFake(t, awsfake.Options{})
	c := client(t, srv.URL, akid, sk, "", region)
	f.SetSecret("s", "{}")
	f.Delete("s")
	_, err := get(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("want *types.ResourceNotFoundException, got %T %v", err, err)
	}
	if code, status := apiCode(t, err); code != "ResourceNotFoundException" || status != 400 {
		t.Fatalf("code %s status %d", code, status)
	}
	// A re-created secret gets a fresh VersionId.
	if a, b := f.SetSecret("s", "{}"), f.SetSecret("t", "{}"); a == b {
		t.Fatal("VersionIds repeat")
	}
}

func TestFailNextShapes(t *testing.T) {
	f, srv := newFake(t, awsfake.Options{})
	c := client(t, srv.URL, akid, sk, "", region)
	f.SetSecret("s", "{}")
	cases := []struct {
		code   string
		status int
		typed  any
	}{
		{awsfake.CodeThrottling, 400, nil},
		{awsfake.CodeInternalServiceErr, 500, new(*types.InternalServiceError)},
		{awsfake.CodeAccessDenied, 400, new(*smithy.GenericAPIError)}, // not modelled by the SDK
		{awsfake.CodeResourceNotFound, 400, new(*types.ResourceNotFoundException)},
		{awsfake.CodeDecryptionFailure, 400, new(*types.DecryptionFailure)},
	}
	for _, tc := range cases {
		f.FailNext(tc.code, 2)
		for i := range 2 {
			_, err := get(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
			code, status := apiCode(t, err)
			if code != tc.code || status != tc.status {
				t.Fatalf("%s #%d: got %s/%d: %v", tc.code, i, code, status, err)
			}
			if tc.typed != nil && !errors.As(err, tc.typed) {
				t.Fatalf("%s: want %T, got %T", tc.code, tc.typed, err)
			}
		}
		if _, err := get(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); err != nil {
			t.Fatalf("after %s x2: %v", tc.code, err)
		}
	}
}

func TestSignatureIsVerified(t *testing.T) {
	f, srv := newFake(t, awsfake.Options{})
	f.SetSecret("s", "{}")

	cases := []struct {
		name, key, secret, region, code string
	}{
		{"wrong secret key", akid, sk + "x", region, awsfake.CodeInvalidSignature},
		{"unknown access key", "AKIAUNKNOWN000000000", sk, region, awsfake.CodeUnrecognizedClient},
		{"wrong region", akid, sk, "us-east-1", awsfake.CodeInvalidSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := client(t, srv.URL, tc.key, tc.secret, "", tc.region)
			_, err := get(t, c, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
			if code, status := apiCode(t, err); code != tc.code || status != 400 {
				t.Fatalf("got %s/%d, want %s/400: %v", code, status, tc.code, err)
			}
		})
	}
}

func TestSessionToken(t *testing.T) {
	f, srv := newFake(t, awsfake.Options{AccessKeyID: akid, SecretAccessKey: sk, Region: region, SessionToken: "tok"})
	f.SetSecret("s", "{}")
	if _, err := get(t, client(t, srv.URL, akid, sk, "tok", region), &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")}); err != nil {
		t.Fatalf("right token: %v", err)
	}
	for _, tok := range []string{"", "other"} {
		_, err := get(t, client(t, srv.URL, akid, sk, tok, region), &secretsmanager.GetSecretValueInput{SecretId: aws.String("s")})
		if code, _ := apiCode(t, err); code != awsfake.CodeUnrecognizedClient {
			t.Fatalf("token %q: %v", tok, err)
		}
	}
}

// signedRequest signs a request by hand, so the test can tamper with it
// afterwards the way a proxy or an attacker might.
func signedRequest(t *testing.T, url, target, body string, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: sk}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "secretsmanager", region, at); err != nil {
		t.Fatal(err)
	}
	return req
}

func do(t *testing.T, req *http.Request) (int, map[string]string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]string{}
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestTamperingIsRejected(t *testing.T) {
	f, srv := newFake(t, awsfake.Options{})
	f.SetSecret("a", `{"bearer_token":"a"}`)
	f.SetSecret("b", `{"bearer_token":"b"}`)
	now := time.Now()

	if status, m := do(t, signedRequest(t, srv.URL, getTarget, `{"SecretId":"a"}`, now)); status != 200 || m["SecretString"] == "" {
		t.Fatalf("hand-signed request: %d %v", status, m)
	}

	req := signedRequest(t, srv.URL, getTarget, `{"SecretId":"a"}`, now)
	req.Body = io.NopCloser(strings.NewReader(`{"SecretId":"b"}`)) // same length, other secret
	if status, m := do(t, req); status != 400 || m["__type"] != awsfake.CodeInvalidSignature {
		t.Fatalf("tampered body: %d %v", status, m)
	}

	req = signedRequest(t, srv.URL, getTarget, `{"SecretId":"a"}`, now)
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValuX")
	if status, m := do(t, req); status != 400 || m["__type"] != awsfake.CodeInvalidSignature {
		t.Fatalf("tampered signed header: %d %v", status, m)
	}

	req = signedRequest(t, srv.URL, getTarget, `{"SecretId":"a"}`, now.Add(-10*time.Minute))
	if status, m := do(t, req); status != 400 || m["__type"] != awsfake.CodeInvalidSignature || !strings.Contains(m["message"], "Signature expired") {
		t.Fatalf("old signature: %d %v", status, m)
	}

	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", strings.NewReader(`{"SecretId":"a"}`))
	if status, m := do(t, req); status != 403 || m["__type"] != awsfake.CodeMissingAuthToken {
		t.Fatalf("unsigned: %d %v", status, m)
	}

	// Correctly signed, but an operation the fake does not serve.
	req = signedRequest(t, srv.URL, "secretsmanager.DescribeSecret", `{"SecretId":"a"}`, now)
	if status, m := do(t, req); status != 400 || m["__type"] != awsfake.CodeUnknownOperation {
		t.Fatalf("other operation: %d %v", status, m)
	}
	if got := f.Calls(); got != 6 {
		t.Fatalf("Calls = %d, want 6", got)
	}
}
