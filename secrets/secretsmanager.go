package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// GetSecretValueAPI is the one Secrets Manager call this package makes;
// *secretsmanager.Client satisfies it, and tests may substitute their own.
type GetSecretValueAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var (
	_ GetSecretValueAPI = (*secretsmanager.Client)(nil)
	_ Source            = (*SecretsManager)(nil)
)

// Defaults for SMOptions.
const (
	DefaultTTL          = 5 * time.Minute
	DefaultFetchTimeout = 15 * time.Second
)

// SMOptions configure NewSecretsManager.
type SMOptions struct {
	// SecretID is the secret's name or ARN. Required.
	SecretID string
	// TTL is how long fetched credentials are reused; default 5m. Rotation
	// does not wait for it: Invalidate after a 401 forces a reread.
	TTL time.Duration
	// Client defaults to secretsmanager.NewFromConfig on
	// config.LoadDefaultConfig, so the standard chain applies unchanged:
	// IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity
	// (AWS_CONTAINER_CREDENTIALS_FULL_URI), env keys, shared config; and
	// AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL are honoured.
	Client GetSecretValueAPI
	// Now is the cache's clock; default time.Now.
	Now func() time.Time
	// Logger receives fetch and invalidation events (never values);
	// default slog.Default().
	Logger *slog.Logger
	// FetchTimeout bounds one GetSecretValue including the SDK's retries;
	// default 15s. The fetch is shared by all waiting callers, so it runs
	// on its own deadline rather than on the first caller's context.
	FetchTimeout time.Duration
}

// SecretsManager is a Source backed by one AWS Secrets Manager secret,
// cached in process. Safe for concurrent use.
type SecretsManager struct {
	id           string
	ttl          time.Duration
	fetchTimeout time.Duration
	client       GetSecretValueAPI
	now          func() time.Time
	log          *slog.Logger

	mu       sync.Mutex
	cached   *entry // nil: nothing usable; fetch on next call
	inflight *fetch // non-nil while a GetSecretValue runs
}

type entry struct {
	creds   Credentials
	version string
	expires time.Time
}

// fetch is one GetSecretValue shared by every caller that arrives while it
// runs; done is closed once creds/err are set.
type fetch struct {
	done  chan struct{}
	creds Credentials
	err   error
}

// NewSecretsManager returns a Source reading o.SecretID. It does not call
// AWS; the first Credentials call does. Errors wrap ErrMisconfigured.
func NewSecretsManager(ctx context.Context, o SMOptions) (*SecretsManager, error) {
	id := strings.TrimSpace(o.SecretID)
	if id == "" {
		return nil, fmt.Errorf("secrets manager: %w: SecretID is required", ErrMisconfigured)
	}
	if o.TTL < 0 || o.FetchTimeout < 0 {
		return nil, fmt.Errorf("secrets manager: %w: TTL and FetchTimeout must not be negative", ErrMisconfigured)
	}
	s := &SecretsManager{
		id: id, ttl: o.TTL, fetchTimeout: o.FetchTimeout,
		client: o.Client, now: o.Now, log: o.Logger,
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.fetchTimeout == 0 {
		s.fetchTimeout = DefaultFetchTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.client == nil {
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("secrets manager: %w: load AWS config: %w", ErrMisconfigured, err)
		}
		// A secret can only be read in the region its ARN names (a replica
		// has its own ARN), so an ARN's region wins over the environment's.
		if r := arnRegion(id); r != "" {
			cfg.Region = r
		}
		if cfg.Region == "" {
			return nil, fmt.Errorf("secrets manager: %w: no AWS region: set AWS_REGION or give the secret's ARN", ErrMisconfigured)
		}
		s.client = secretsmanager.NewFromConfig(cfg)
	}
	return s, nil
}

// arnRegion returns the region of a Secrets Manager ARN, or "".
func arnRegion(id string) string {
	// arn:<partition>:secretsmanager:<region>:<account>:secret:<name>
	p := strings.SplitN(id, ":", 7)
	if len(p) == 7 && p[0] == "arn" && p[2] == "secretsmanager" && p[5] == "secret" {
		return p[3]
	}
	return ""
}

// Credentials returns the cached credentials, or fetches them. Callers that
// arrive during a fetch wait for it rather than starting their own; each
// stops waiting when its own ctx ends. A failed fetch is not cached.
func (s *SecretsManager) Credentials(ctx context.Context) (Credentials, error) {
	s.mu.Lock()
	if e := s.cached; e != nil && s.now().Before(e.expires) {
		s.mu.Unlock()
		return e.creds, nil
	}
	f := s.inflight
	if f == nil {
		f = &fetch{done: make(chan struct{})}
		s.inflight = f
		// Detached from ctx's cancellation (not its values): a first
		// caller giving up must not fail the fetch for everyone waiting.
		go s.run(context.WithoutCancel(ctx), f)
	}
	s.mu.Unlock()

	select {
	case <-f.done:
		return f.creds, f.err
	case <-ctx.Done():
		select {
		case <-f.done: // finished at the same moment: prefer the answer
			return f.creds, f.err
		default:
		}
		return Credentials{}, fmt.Errorf("get secret %s: %w: %w", s.id, ErrUnavailable, context.Cause(ctx))
	}
}

// Invalidate drops the cache if it still holds stale, so the next
// Credentials call rereads the secret. Credentials already replaced (by a
// refetch that another 401 triggered, or by TTL) are left alone: a burst of
// 401s for one rotated token costs one GetSecretValue.
func (s *SecretsManager) Invalidate(stale Credentials) {
	s.mu.Lock()
	e := s.cached
	hit := e != nil && e.creds == stale
	if hit {
		s.cached = nil
	}
	s.mu.Unlock()
	if hit {
		s.log.Info("secret cache invalidated: credentials rejected", "secret_id", s.id, "version_id", e.version)
	}
}

func (s *SecretsManager) run(ctx context.Context, f *fetch) {
	ctx, cancel := context.WithTimeout(ctx, s.fetchTimeout)
	defer cancel()
	creds, version, err := s.get(ctx)

	s.mu.Lock()
	if err == nil {
		s.cached = &entry{creds: creds, version: version, expires: s.now().Add(s.ttl)}
	}
	s.inflight = nil
	f.creds, f.err = creds, err
	close(f.done)
	s.mu.Unlock()
}

// get performs one GetSecretValue and parses the result.
func (s *SecretsManager) get(ctx context.Context) (Credentials, string, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id)})
	if err != nil {
		kind, code := classify(err)
		err = fmt.Errorf("get secret %s: %w: %w", s.id, kind, scrub(err))
		s.log.Warn("secret fetch failed", "secret_id", s.id, "code", code, "class", string(kind), "error", err.Error())
		return Credentials{}, "", err
	}
	version := aws.ToString(out.VersionId)
	var creds Credentials
	switch {
	case out.SecretString != nil:
		creds, err = parseSecret(*out.SecretString)
	case out.SecretBinary != nil:
		err = fmt.Errorf("%w: secret must be a JSON SecretString, not SecretBinary", ErrMisconfigured)
	default:
		err = fmt.Errorf("%w: secret has no value", ErrMisconfigured)
	}
	if err != nil {
		err = fmt.Errorf("get secret %s (version %s): %w", s.id, version, err)
		s.log.Warn("secret fetch failed", "secret_id", s.id, "version_id", version,
			"code", "MalformedSecret", "class", string(ErrMisconfigured), "error", err.Error())
		return Credentials{}, "", err
	}
	s.log.Info("secret fetched", "secret_id", s.id, "version_id", version, "bearer", creds.IsBearer())
	return creds, version, nil
}

// misconfiguredCode reports error codes whose cause is permanent until an
// operator changes IAM, KMS, the secret, or the AWS key the function runs
// with. A bad AWS key counts: retrying with the same key cannot succeed.
func misconfiguredCode(code string) bool {
	switch code {
	case "ResourceNotFoundException",
		"AccessDeniedException",
		"AccessDenied", // STS, when assuming the IRSA role
		"DecryptionFailure",
		"InvalidRequestException", // e.g. secret scheduled for deletion
		"InvalidParameterException",
		"ValidationException",
		"UnrecognizedClientException", // unknown access key or session token
		"InvalidClientTokenId",
		"InvalidSignatureException", // wrong secret access key (after the SDK's clock-skew retry)
		"SignatureDoesNotMatch",
		"IncompleteSignature", "IncompleteSignatureException",
		"MissingAuthenticationToken", "MissingAuthenticationTokenException",
		"NotAuthorized",
		"OptInRequired",
		"InvalidIdentityToken": // STS: IRSA token rejected
		return true
	}
	return false
}

// classify maps an SDK error to a Kind and a short code for logs.
// Unknown API errors count as unavailable: retrying an event later is
// cheaper than dropping it over a code this table has not seen.
func classify(err error) (Kind, string) {
	if ae, ok := errors.AsType[smithy.APIError](err); ok {
		if code := ae.ErrorCode(); misconfiguredCode(code) {
			return ErrMisconfigured, code
		}
		// ThrottlingException, InternalServiceError, any 5xx, and codes
		// this table has not seen.
		return ErrUnavailable, ae.ErrorCode()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ErrUnavailable, "Timeout"
	case errors.Is(err, context.Canceled):
		return ErrUnavailable, "Canceled"
	}
	if _, ok := errors.AsType[*aws.MissingRegionError](err); ok {
		return ErrMisconfigured, "MissingRegion"
	}
	if _, ok := errors.AsType[*smithy.DeserializationError](err); ok {
		return ErrUnavailable, "Deserialization"
	}
	if _, ok := errors.AsType[*smithyhttp.RequestSendError](err); ok {
		return ErrUnavailable, "RequestSendError"
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return ErrUnavailable, "NetworkError"
	}
	if re, ok := errors.AsType[interface {
		error
		HTTPStatusCode() int
	}](err); ok {
		return ErrUnavailable, fmt.Sprintf("HTTP%d", re.HTTPStatusCode())
	}
	// An SDK operation that failed without a response, a network error or
	// an API error (STS's included, handled above) failed while building
	// the request: no credentials anywhere in the chain, an unreadable
	// token file, a bad endpoint URL. Local configuration, not a blip.
	if _, ok := errors.AsType[*smithy.OperationError](err); ok {
		return ErrMisconfigured, "ClientSetup"
	}
	return ErrUnavailable, "Unknown"
}

// scrub drops the detail of a response that could not be decoded: the
// decoder's message may quote part of the body, and a 200 body holds the
// secret. Everything else the SDK reports is about the request, which holds
// only the secret ID.
func scrub(err error) error {
	if _, ok := errors.AsType[*smithy.DeserializationError](err); ok {
		return errors.New("response from Secrets Manager could not be decoded")
	}
	return err
}
