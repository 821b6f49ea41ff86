package function

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"function/config"
	"function/metrics"
	"function/secrets"
	"function/store/memory"
)

// rotatingSource is a Secrets Manager secret whose auth_token a rotation
// removes (the field is optional in the secret's format).
type rotatingSource struct{ rotated atomic.Bool }

func (s *rotatingSource) Credentials(context.Context) (secrets.Credentials, error) {
	c := secrets.Credentials{Email: "bot@example.com", APIToken: "api-token"}
	if !s.rotated.Load() {
		c.AuthToken = "caller-secret"
	}
	return c, nil
}

func (s *rotatingSource) Invalidate(secrets.Credentials) {}

// Callers authenticated by the secret's auth_token stay refused when a
// rotation drops it: the function fails closed (503, retry later) instead
// of reading the empty token as "no bearer check".
func TestCallerTokenFromSecretFailsClosed(t *testing.T) {
	t.Setenv("JIRA_URL", "http://127.0.0.1:1")
	t.Setenv("ATLASSIAN_SECRET_ID", "rollback-incident/atlassian")
	t.Setenv("AWS_REGION", "eu-west-1")
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.CallerAuthFromSecret() {
		t.Fatal("the configuration should take the caller token from the secret")
	}
	src := &rotatingSource{}
	h, _, err := Build(cfg, src, memory.New(cfg.NATSTTL), metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	post := func(token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"rolloutName":"a","namespace":"b","phase":"Healthy"}`))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if w := post(""); w.Code != http.StatusUnauthorized {
		t.Fatalf("no token before rotation: %d, want 401", w.Code)
	}
	if w := post("caller-secret"); w.Code != http.StatusOK {
		t.Fatalf("the secret's token before rotation: %d %s, want 200", w.Code, w.Body)
	}
	src.rotated.Store(true)
	for _, token := range []string{"", "caller-secret", "anything"} {
		w := post(token)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Errorf("token %q after auth_token left the secret: %d %s, want 503 with Retry-After", token, w.Code, w.Body)
		}
	}
}
