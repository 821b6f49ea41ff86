package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"function/config"
)

// Kind classifies a failure to obtain credentials. It is a string constant,
// not an errors.New variable, so the sentinels cannot be reassigned.
type Kind string

func (k Kind) Error() string { return string(k) }

const (
	// ErrMisconfigured: retrying will not help until an operator acts —
	// missing secret, IAM or KMS denial, bad AWS key, malformed secret.
	ErrMisconfigured Kind = "credentials misconfigured"
	// ErrUnavailable: the source failed transiently — throttling, AWS 5xx,
	// network error, timeout. Retry later.
	ErrUnavailable Kind = "credentials unavailable"
)

// Credentials are what the function authenticates with. Exactly one of
// {Email, APIToken} (Atlassian Cloud basic auth) and {BearerToken} (Data
// Center personal access token) is set; the Secret fields never print.
type Credentials struct {
	Email       string        // Atlassian Cloud account e-mail (basic auth user)
	APIToken    config.Secret // Cloud API token (basic auth password)
	BearerToken config.Secret // Data Center personal access token (sent as Authorization: Bearer); exclusive with Email/APIToken
	AuthToken   config.Secret // optional: the inbound callers' bearer token, when kept in the same secret
}

// IsBearer reports whether the credentials are a Data Center bearer token
// rather than Cloud basic auth.
func (c Credentials) IsBearer() bool { return c.BearerToken != "" }

// Validate reports, as ErrMisconfigured, credentials that are incomplete or
// mix the two forms. Messages name fields, never values.
func (c Credentials) Validate() error {
	bad := func(msg string) error { return fmt.Errorf("%w: %s", ErrMisconfigured, msg) }
	basic := c.Email != "" || c.APIToken != ""
	switch {
	case basic && c.BearerToken != "":
		return bad("BearerToken is exclusive with Email/APIToken")
	case !basic && c.BearerToken == "":
		return bad("no credentials: need Email and APIToken (Cloud) or BearerToken (Data Center)")
	case basic && c.Email == "":
		return bad("APIToken is set but Email is empty")
	case basic && c.APIToken == "":
		return bad("Email is set but APIToken is empty")
	}
	for _, f := range []struct{ name, v string }{
		{"Email", c.Email}, {"APIToken", c.APIToken.Reveal()},
		{"BearerToken", c.BearerToken.Reveal()}, {"AuthToken", c.AuthToken.Reveal()},
	} {
		// A control character would corrupt, or be refused in, the HTTP
		// header the value ends up in; fail here, where the field is known.
		if strings.ContainsFunc(f.v, unicode.IsControl) {
			return bad(f.name + " contains control characters")
		}
	}
	return nil
}

// Source yields the credentials to use for the next Atlassian call.
type Source interface {
	// Credentials returns complete, validated credentials or an error
	// wrapping ErrMisconfigured or ErrUnavailable; never a partial value.
	Credentials(ctx context.Context) (Credentials, error)
	// Invalidate reports that Atlassian rejected stale (HTTP 401), so the
	// next Credentials call should reread the source if it still holds stale.
	Invalidate(stale Credentials)
}

// Static returns a Source that always yields c, e.g. credentials read from
// the environment. Invalidate is a no-op: there is nothing to reread.
func Static(c Credentials) Source { return static{c: c} }

type static struct{ c Credentials }

func (s static) Credentials(context.Context) (Credentials, error) {
	if err := s.c.Validate(); err != nil {
		return Credentials{}, fmt.Errorf("static credentials: %w", err)
	}
	return s.c, nil
}

func (static) Invalidate(Credentials) {}

// JSON keys of the secret; see the package documentation.
const (
	keyEmail       = "email"
	keyAPIToken    = "api_token"
	keyBearerToken = "bearer_token"
	keyAuthToken   = "auth_token"
)

var _ Source = static{}

// maxShownKeyLen bounds the unknown keys an error names. Key names are
// short; something longer is more likely a token pasted in the wrong place,
// and naming it would leak it.
const maxShownKeyLen = 32

// parseSecret turns a SecretString into validated credentials. Errors wrap
// ErrMisconfigured and never include a value: encoding/json's own error
// text is not used because a syntax error quotes the offending character.
func parseSecret(s string) (Credentials, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: secret JSON: %s", ErrMisconfigured, fmt.Sprintf(format, args...))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return Credentials{}, bad("not valid JSON (syntax error at byte %d)", se.Offset)
		}
		return Credentials{}, bad("must be a JSON object with %s", allowedKeys())
	}
	if raw == nil { // the literal null
		return Credentials{}, bad("must be a JSON object with %s", allowedKeys())
	}

	var unknown []string
	for k := range raw {
		if !slices.Contains([]string{keyEmail, keyAPIToken, keyBearerToken, keyAuthToken}, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		k := unknown[0]
		if len(k) > maxShownKeyLen {
			return Credentials{}, bad("unknown key of %d characters (not shown: it may be a value); allowed: %s", len(k), allowedKeys())
		}
		return Credentials{}, bad("unknown key %q; allowed: %s", k, allowedKeys())
	}

	vals := map[string]string{}
	for k, r := range raw {
		var v *string
		if err := json.Unmarshal(r, &v); err != nil || v == nil {
			return Credentials{}, bad("key %q must be a JSON string", k)
		}
		if vals[k] = strings.TrimSpace(*v); vals[k] == "" {
			return Credentials{}, bad("key %q is empty", k)
		}
	}

	_, hasEmail := vals[keyEmail]
	_, hasAPI := vals[keyAPIToken]
	_, hasBearer := vals[keyBearerToken]
	switch {
	case (hasEmail || hasAPI) && hasBearer:
		return Credentials{}, bad("mixes the Cloud form (%s, %s) and the Data Center form (%s); keep one",
			keyEmail, keyAPIToken, keyBearerToken)
	case hasEmail && !hasAPI:
		return Credentials{}, bad("key %q is missing (the Cloud form needs %s and %s)", keyAPIToken, keyEmail, keyAPIToken)
	case hasAPI && !hasEmail:
		return Credentials{}, bad("key %q is missing (the Cloud form needs %s and %s)", keyEmail, keyEmail, keyAPIToken)
	case !hasEmail && !hasBearer:
		return Credentials{}, bad("needs %s and %s (Atlassian Cloud) or %s (Data Center)", keyEmail, keyAPIToken, keyBearerToken)
	}

	c := Credentials{
		Email:       vals[keyEmail],
		APIToken:    config.Secret(vals[keyAPIToken]),
		BearerToken: config.Secret(vals[keyBearerToken]),
		AuthToken:   config.Secret(vals[keyAuthToken]),
	}
	if err := c.Validate(); err != nil {
		// Validate names Go fields; say which JSON key instead.
		for _, k := range []string{keyEmail, keyAPIToken, keyBearerToken, keyAuthToken} {
			if strings.ContainsFunc(vals[k], unicode.IsControl) {
				return Credentials{}, bad("key %q contains control characters", k)
			}
		}
		return Credentials{}, fmt.Errorf("secret JSON: %w", err)
	}
	return c, nil
}

func allowedKeys() string {
	return strings.Join([]string{keyEmail, keyAPIToken, keyBearerToken, keyAuthToken}, ", ")
}
