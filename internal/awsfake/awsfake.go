// Package awsfake is an in-process fake of the one AWS Secrets Manager call
// the function makes: GetSecretValue over the awsJson1.1 protocol. It is an
// http.Handler meant for httptest.NewServer, so tests drive the real
// aws-sdk-go-v2 client (endpoint resolution, SigV4 signing, retries, error
// decoding) instead of a mock of it.
//
// Unlike the Go fakes available on the module proxy, it verifies the SigV4
// signature of every request by re-signing a copy of it with the SDK's own
// signer and the secret key the fake was built with, so a test with a wrong
// key, region or service fails the way AWS would fail it.
//
// Wire format (from the SDK's request/response snapshots):
//
//	POST /   Content-Type: application/x-amz-json-1.1
//	         X-Amz-Target: secretsmanager.GetSecretValue
//	         {"SecretId":"prod/atlassian"}
//	200      {"ARN":…,"Name":…,"VersionId":…,"SecretString":…,"VersionStages":["AWSCURRENT"],"CreatedDate":1.7e9}
//	4xx/5xx  {"__type":"ResourceNotFoundException","Message":"…"}
package awsfake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Error codes the fake answers with; the names are AWS's.
const (
	CodeThrottling          = "ThrottlingException"
	CodeInternalServiceErr  = "InternalServiceError"
	CodeAccessDenied        = "AccessDeniedException"
	CodeResourceNotFound    = "ResourceNotFoundException"
	CodeInvalidSignature    = "InvalidSignatureException"
	CodeUnrecognizedClient  = "UnrecognizedClientException"
	CodeMissingAuthToken    = "MissingAuthenticationTokenException"
	CodeIncompleteSignature = "IncompleteSignatureException"
	CodeDecryptionFailure   = "DecryptionFailure"
	CodeInvalidRequest      = "InvalidRequestException"
	CodeInvalidParameter    = "InvalidParameterException"
	CodeValidation          = "ValidationException"
	CodeSerialization       = "SerializationException"
	CodeUnknownOperation    = "UnknownOperationException"
)

const (
	contentType    = "application/x-amz-json-1.1"
	targetGetValue = "secretsmanager.GetSecretValue"
	signingName    = "secretsmanager"
	amzDateFormat  = "20060102T150405Z"
	// AWS rejects a signature whose X-Amz-Date is more than 5 minutes off.
	maxSkew = 5 * time.Minute
	// Secrets Manager caps a request body far below this; the cap only keeps
	// a broken client from exhausting the test's memory.
	maxBody = 1 << 20
)

// Options configure a Fake. AccessKeyID, SecretAccessKey and Region are
// required: they are what every request's signature is checked against.
type Options struct {
	AccessKeyID     string
	SecretAccessKey string
	Region          string
	// SessionToken, when set, is the only X-Amz-Security-Token accepted
	// (temporary credentials, as with IRSA or Pod Identity). When empty, a
	// request carrying a token is rejected as an unknown client.
	SessionToken string
	// AccountID appears in ARNs; default 123456789012.
	AccountID string
	// Now is the fake's clock for the signature-age check and CreatedDate;
	// default time.Now.
	Now func() time.Time
}

// Fake is a stateful Secrets Manager. The zero value is not usable; call New.
// All methods are safe for concurrent use.
type Fake struct {
	opts   Options
	signer *v4.Signer

	mu       sync.Mutex
	secrets  map[string]*secret // by name
	failures []failure
	calls    int
	reqSeq   int
	verSeq   int
}

type secret struct {
	name     string
	arn      string
	versions []version // oldest first; the last one is AWSCURRENT
}

type version struct {
	id      string
	str     *string
	bin     []byte
	created time.Time
}

type failure struct {
	code string
	left int
}

// New returns a fake that accepts only requests signed with o's key for o's
// region and the secretsmanager signing name.
func New(o Options) *Fake {
	if o.AccountID == "" {
		o.AccountID = "123456789012"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Fake{opts: o, signer: v4.NewSigner(), secrets: map[string]*secret{}}
}

// ARN returns the full ARN the fake gives the secret called name, as AWS
// does: the name followed by a hyphen and six characters. The suffix is
// derived from the name so tests are reproducible.
func (f *Fake) ARN(name string) string {
	sum := sha256.Sum256([]byte(name))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	suffix := make([]byte, 6)
	for i := range suffix {
		suffix[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return f.partialARN(name) + "-" + string(suffix)
}

func (f *Fake) partialARN(name string) string {
	return "arn:aws:secretsmanager:" + f.opts.Region + ":" + f.opts.AccountID + ":secret:" + name
}

// SetSecret stores secretString as a new version of the secret (created if
// absent) and moves AWSCURRENT to it, as PutSecretValue does. It returns the
// new VersionId.
func (f *Fake) SetSecret(id, secretString string) string {
	return f.put(id, version{str: &secretString})
}

// SetSecretBinary is SetSecret for a SecretBinary value.
func (f *Fake) SetSecretBinary(id string, b []byte) string {
	return f.put(id, version{bin: slices.Clone(b)})
}

func (f *Fake) put(id string, v version) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.lookup(id)
	if s == nil {
		s = &secret{name: id, arn: f.ARN(id)}
		f.secrets[id] = s
	}
	v.created = f.opts.Now()
	// Real VersionIds are client request tokens (UUIDs); a readable,
	// UUID-shaped counter is easier to assert on and never repeats, even
	// when a deleted secret is created again.
	f.verSeq++
	v.id = fmt.Sprintf("%08d-0000-4000-8000-000000000000", f.verSeq)
	s.versions = append(s.versions, v)
	return v.id
}

// Delete removes the secret at once, like DeleteSecret with
// ForceDeleteWithoutRecovery; later reads get ResourceNotFoundException.
func (f *Fake) Delete(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.lookup(id); s != nil {
		delete(f.secrets, s.name)
	}
}

// FailNext makes the next n correctly signed GetSecretValue requests fail
// with code, using the status and body AWS uses for it. Calls queue up: a
// second FailNext takes effect after the first one's n requests.
func (f *Fake) FailNext(code string, n int) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, failure{code: code, left: n})
}

// Calls reports how many HTTP requests reached the fake, whatever their
// outcome, so tests can assert how often the client really went to AWS.
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// lookup finds a secret by name, full ARN or partial ARN (the ARN without
// the random suffix), which are the forms SecretId accepts. f.mu is held.
func (f *Fake) lookup(id string) *secret {
	if s, ok := f.secrets[id]; ok {
		return s
	}
	if !strings.HasPrefix(id, "arn:") {
		return nil
	}
	for _, s := range f.secrets {
		if s.arn == id || f.partialARN(s.name) == id {
			return s
		}
	}
	return nil
}

type getSecretValueInput struct {
	SecretID     *string `json:"SecretId"`
	VersionID    *string `json:"VersionId"`
	VersionStage *string `json:"VersionStage"`
}

type getSecretValueOutput struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionID     string   `json:"VersionId"`
	SecretString  *string  `json:"SecretString,omitempty"`
	SecretBinary  []byte   `json:"SecretBinary,omitempty"` // base64, as encoding/json does
	VersionStages []string `json:"VersionStages"`
	CreatedDate   float64  `json:"CreatedDate"` // epoch seconds, a JSON number
}

// ServeHTTP answers one awsJson1.1 request.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	f.reqSeq++
	reqID := fmt.Sprintf("fake-req-%d", f.reqSeq)
	f.mu.Unlock()
	w.Header().Set("X-Amzn-RequestId", reqID)

	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeError(w, http.StatusBadRequest, CodeSerialization, "could not read request body")
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeError(w, http.StatusNotFound, CodeUnknownOperation, "only POST / is served")
		return
	}
	// Authentication comes first at AWS: an unsigned request learns nothing
	// about the operation or the secret.
	if status, code, msg := f.verify(r, body); code != "" {
		writeError(w, status, code, msg)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != contentType {
		writeError(w, http.StatusBadRequest, CodeSerialization, "expected Content-Type "+contentType)
		return
	}
	if t := r.Header.Get("X-Amz-Target"); t != targetGetValue {
		writeError(w, http.StatusBadRequest, CodeUnknownOperation, "operation not supported by the fake: "+t)
		return
	}
	f.getSecretValue(w, body)
}

func (f *Fake) getSecretValue(w http.ResponseWriter, body []byte) {
	var in getSecretValueInput
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, CodeSerialization, "request body is not valid JSON")
		return
	}
	if in.SecretID == nil || *in.SecretID == "" {
		writeError(w, http.StatusBadRequest, CodeValidation,
			"1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null")
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failures) > 0 {
		fl := &f.failures[0]
		code := fl.code
		if fl.left--; fl.left == 0 {
			f.failures = f.failures[1:]
		}
		writeError(w, statusFor(code), code, messageFor(code, *in.SecretID))
		return
	}

	s := f.lookup(*in.SecretID)
	if s == nil {
		writeError(w, http.StatusBadRequest, CodeResourceNotFound, "Secrets Manager can't find the specified secret.")
		return
	}
	idx := len(s.versions) - 1 // AWSCURRENT unless asked otherwise
	switch {
	case in.VersionID != nil:
		idx = slices.IndexFunc(s.versions, func(v version) bool { return v.id == *in.VersionID })
	case in.VersionStage != nil && *in.VersionStage == "AWSPREVIOUS":
		idx = len(s.versions) - 2
	case in.VersionStage != nil && *in.VersionStage != "AWSCURRENT":
		idx = -1
	}
	if idx < 0 {
		writeError(w, http.StatusBadRequest, CodeResourceNotFound,
			"Secrets Manager can't find the specified secret value for the requested version or staging label.")
		return
	}
	v := s.versions[idx]
	var stages []string
	switch idx {
	case len(s.versions) - 1:
		stages = []string{"AWSCURRENT"}
	case len(s.versions) - 2:
		stages = []string{"AWSPREVIOUS"}
	}
	out := getSecretValueOutput{
		ARN:           s.arn,
		Name:          s.name,
		VersionID:     v.id,
		SecretString:  v.str,
		SecretBinary:  v.bin,
		VersionStages: stages,
		CreatedDate:   float64(v.created.UnixMilli()) / 1000,
	}
	w.Header().Set("Content-Type", contentType)
	_ = json.NewEncoder(w).Encode(out)
}

// verify checks the SigV4 Authorization header the way AWS does and returns
// the error to answer with, or an empty code when the signature is good.
func (f *Fake) verify(r *http.Request, body []byte) (status int, code, msg string) {
	const badReq = http.StatusBadRequest
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return http.StatusForbidden, CodeMissingAuthToken, "Missing Authentication Token"
	}
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return badReq, CodeIncompleteSignature, "Authorization header requires the AWS4-HMAC-SHA256 algorithm"
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimPrefix(auth, algo), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			fields[k] = v
		}
	}
	credential, signedHeaders, signature := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if credential == "" || signedHeaders == "" || signature == "" {
		return badReq, CodeIncompleteSignature,
			"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters"
	}

	// Credential=AKID/YYYYMMDD/region/service/aws4_request
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return badReq, CodeIncompleteSignature, "Credential must have the form AKID/date/region/service/aws4_request"
	}
	akid, date, region, service := scope[0], scope[1], scope[2], scope[3]
	if akid != f.opts.AccessKeyID {
		return badReq, CodeUnrecognizedClient, "The security token included in the request is invalid."
	}
	token := r.Header.Get("X-Amz-Security-Token")
	if token != f.opts.SessionToken {
		return badReq, CodeUnrecognizedClient, "The security token included in the request is invalid."
	}
	if region != f.opts.Region {
		return badReq, CodeInvalidSignature, fmt.Sprintf(
			"Credential should be scoped to a valid region, not '%s'.", region)
	}
	if service != signingName {
		return badReq, CodeInvalidSignature, fmt.Sprintf(
			"Credential should be scoped to correct service: '%s'.", signingName)
	}

	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return badReq, CodeIncompleteSignature, "X-Amz-Date header is missing or malformed"
	}
	if date != signedAt.Format("20060102") {
		return badReq, CodeInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"
	}
	now := f.opts.Now().UTC()
	if signedAt.Before(now.Add(-maxSkew)) || signedAt.After(now.Add(maxSkew)) {
		return badReq, CodeInvalidSignature, fmt.Sprintf(
			"Signature expired: %s is now earlier than %s (%s - 5 min.)",
			amzDate, now.Add(-maxSkew).Format(amzDateFormat), now.Format(amzDateFormat))
	}

	names := strings.Split(signedHeaders, ";")
	if !slices.IsSorted(names) || !slices.Contains(names, "host") || !slices.Contains(names, "x-amz-date") ||
		(token != "" && !slices.Contains(names, "x-amz-security-token")) {
		return badReq, CodeInvalidSignature, "SignedHeaders must be sorted and include host and x-amz-date (and x-amz-security-token when present)"
	}

	payloadHash := sha256Hex(body)
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		return badReq, CodeInvalidSignature, "The provided 'x-amz-content-sha256' header does not match what was computed."
	}

	// Rebuild the request from the headers the client says it signed, and
	// nothing else, then sign it with the key we know. The signer adds host
	// (from req.Host), content-length (from ContentLength), x-amz-date and
	// x-amz-security-token itself, so those are not copied.
	re, err := http.NewRequestWithContext(context.Background(), r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return badReq, CodeInvalidSignature, "request cannot be canonicalised"
	}
	re.Host = r.Host
	re.Header = http.Header{}
	re.ContentLength = 0
	for _, name := range names {
		switch name {
		case "host", "x-amz-date", "x-amz-security-token":
			continue
		case "content-length":
			re.ContentLength = int64(len(body))
			continue
		}
		vals := r.Header.Values(name)
		if len(vals) == 0 {
			return badReq, CodeInvalidSignature, "signed header " + name + " is missing from the request"
		}
		for _, v := range vals {
			re.Header.Add(name, v)
		}
	}
	creds := aws.Credentials{AccessKeyID: f.opts.AccessKeyID, SecretAccessKey: f.opts.SecretAccessKey, SessionToken: token}
	if err := f.signer.SignHTTP(r.Context(), creds, re, payloadHash, signingName, f.opts.Region, signedAt); err != nil {
		return badReq, CodeInvalidSignature, "request cannot be signed"
	}
	want := re.Header.Get("Authorization")
	wantSig := want[strings.LastIndex(want, "Signature=")+len("Signature="):]
	if !strings.Contains(want, "SignedHeaders="+signedHeaders+",") || !hmac.Equal([]byte(wantSig), []byte(signature)) {
		return badReq, CodeInvalidSignature,
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	}
	return 0, "", ""
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// statusFor is the HTTP status AWS documents for each error code
// (Secrets Manager API reference, "Common Errors" and GetSecretValue).
func statusFor(code string) int {
	switch code {
	case CodeInternalServiceErr, "InternalFailure":
		return http.StatusInternalServerError
	case "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "InvalidClientTokenId", CodeMissingAuthToken:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

func messageFor(code, secretID string) string {
	switch code {
	case CodeThrottling:
		return "Rate exceeded"
	case CodeInternalServiceErr:
		return "An error occurred on the server side."
	case CodeAccessDenied:
		return "User: arn:aws:sts::123456789012:assumed-role/fake/session is not authorized to perform: " +
			"secretsmanager:GetSecretValue on resource: " + secretID +
			" because no identity-based policy allows the secretsmanager:GetSecretValue action"
	case CodeResourceNotFound:
		return "Secrets Manager can't find the specified secret."
	case CodeDecryptionFailure:
		return "Access to KMS is not allowed"
	case CodeInvalidRequest:
		return "You can't perform this operation on the secret because it was marked for deletion."
	}
	return "fake failure: " + code
}

// writeError writes the awsJson1.1 error shape. The code goes in the body's
// __type only (no X-Amzn-ErrorType header), so the SDK's body fallback, the
// path real Secrets Manager responses take, is what tests exercise.
// Service-modelled errors use "Message" and AWS's common errors "message",
// as the real service does; the SDK matches either.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	key := "message"
	switch code {
	case CodeResourceNotFound, CodeInternalServiceErr, CodeDecryptionFailure, CodeInvalidRequest, CodeInvalidParameter:
		key = "Message"
	}
	b, _ := json.Marshal(map[string]string{"__type": code, key: msg})
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
