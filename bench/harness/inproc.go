package harness

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	function "function"
	"function/config"
	"function/handler"
	"function/internal/emulator"
	"function/metrics"
	"function/opener"
	"function/secrets"
	"function/store/memory"
)

var envMu sync.Mutex

// LoadConfig reads the function's configuration (config.Load) from vars,
// setting them in the environment only for the call.
func LoadConfig(vars map[string]string) (config.Config, error) {
	envMu.Lock()
	defer envMu.Unlock()
	saved := map[string]*string{}
	for k, v := range vars {
		if old, ok := os.LookupEnv(k); ok {
			saved[k] = &old
		} else {
			saved[k] = nil
		}
		os.Setenv(k, v)
	}
	defer func() {
		for k, old := range saved {
			if old == nil {
				os.Unsetenv(k)
			} else {
				os.Setenv(k, *old)
			}
		}
	}()
	return config.Load()
}

// NewHandler wires the function's handler in process exactly as Start does
// (function.Build, the in-process store wrapped by the metrics, JSON logs
// at info level — formatted, then discarded) against Atlassian at jiraURL
// with static credentials. overrides change the environment it is
// configured from (FunctionEnv).
func NewHandler(jiraURL string, overrides map[string]string) (*handler.Handler, error) {
	h, _, err := NewFunction(jiraURL, overrides)
	return h, err
}

// NewFunction is NewHandler with the drainer of pending rollbacks, which
// the caller runs (Run or Pass) and closes.
func NewFunction(jiraURL string, overrides map[string]string) (*handler.Handler, *opener.Drainer, error) {
	cfg, err := LoadConfig(FunctionEnv(jiraURL, overrides))
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: cfg.LogLevel}))
	m := metrics.New()
	src := secrets.Static(secrets.Credentials{Email: emulator.DefaultEmail, APIToken: config.Secret(emulator.DefaultAPIToken)})
	return function.Build(cfg, src, m.Store(memory.New(cfg.NATSTTL)), m, log)
}

// Serve runs one delivery through h in process and returns the status and
// reply.
func Serve(h http.Handler, d Delivery) Result {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(d.Body))
	req.Header.Set("Authorization", "Bearer "+AuthToken)
	for k, v := range d.Headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(w, req)
	r := Result{Status: w.Code, Body: w.Body.Bytes(), Duration: time.Since(start), Attempts: 1}
	_ = json.Unmarshal(r.Body, &r.Reply)
	return r
}
