package secrets_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"function/config"
	"function/secrets"
)

func TestStatic(t *testing.T) {
	good := []secrets.Credentials{
		{Email: "bot@example.com", APIToken: "api-SECRET-value"},
		{Email: "bot@example.com", APIToken: "api-SECRET-value", AuthToken: "auth-SECRET-value"},
		{BearerToken: "bearer-SECRET-value"},
	}
	for _, c := range good {
		src := secrets.Static(c)
		got, err := src.Credentials(t.Context())
		if err != nil || got != c {
			t.Fatalf("Static(%+v) = %+v, %v", c, got, err)
		}
		src.Invalidate(c) // no-op, must not panic or change anything
		if got, _ := src.Credentials(t.Context()); got != c {
			t.Fatal("Invalidate changed a static source")
		}
	}

	bad := []struct {
		c    secrets.Credentials
		want string
	}{
		{secrets.Credentials{}, "no credentials"},
		{secrets.Credentials{AuthToken: "auth-SECRET-value"}, "no credentials"},
		{secrets.Credentials{Email: "bot@example.com"}, "APIToken is empty"},
		{secrets.Credentials{APIToken: "api-SECRET-value"}, "Email is empty"},
		{secrets.Credentials{Email: "bot@example.com", APIToken: "api-SECRET-value", BearerToken: "bearer-SECRET-value"}, "exclusive"},
		{secrets.Credentials{BearerToken: "bearer-SECRET-value\n"}, "BearerToken contains control characters"},
	}
	for _, tc := range bad {
		got, err := secrets.Static(tc.c).Credentials(t.Context())
		if !errors.Is(err, secrets.ErrMisconfigured) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Static(%+v): err = %v, want ErrMisconfigured containing %q", tc.c, err, tc.want)
		}
		if got != (secrets.Credentials{}) {
			t.Fatalf("half-configured credentials returned: %+v", got)
		}
		assertNoSecret(t, err.Error())
	}
}

func TestCredentialsNeverPrint(t *testing.T) {
	c := secrets.Credentials{Email: "bot@example.com", APIToken: "api-SECRET-value", BearerToken: "bearer-SECRET-value", AuthToken: "auth-SECRET-value"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoSecret(t, fmt.Sprintf(verb, c))
	}
	if c.APIToken.Reveal() != "api-SECRET-value" {
		t.Fatal("Reveal lost the value")
	}
	if (secrets.Credentials{BearerToken: config.Secret("x")}).IsBearer() != true || c.IsBearer() != true ||
		(secrets.Credentials{Email: "e", APIToken: "t"}).IsBearer() {
		t.Fatal("IsBearer")
	}
}

// secretMarker is part of every secret value the tests use, so one
// substring check catches any of them leaking.
const secretMarker = "SECRET"

func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	if strings.Contains(s, secretMarker) {
		t.Fatalf("secret value leaked: %s", s)
	}
}
