// Package function is the Knative Functions entry point: New returns the
// instance that func-go serves (invoke: http). It only wires configuration,
// clients and stores; the pipeline lives in handler.
package function

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"function/atlassian"
	"function/backstage"
	"function/config"
	"function/confluence"
	"function/handler"
	"function/jira"
	"function/metrics"
	"function/opener"
	"function/render"
	"function/secrets"
	"function/store"
	"function/store/memory"
	"function/store/natskv"
	"function/templates"
)

// Function is the instance func-go serves. func-go starts serving before
// Start returns, so requests that arrive earlier get 503 and readiness says
// not ready until the handler is built.
type Function struct {
	handler atomic.Pointer[handler.Handler]
	// credsReady is set once the credentials have been read: until then
	// the function cannot call Atlassian, and says so on readiness.
	credsReady atomic.Bool
	storeReady func() bool // the idempotency store can be used
	metrics    *metrics.Metrics
	drainer    *opener.Drainer
	stopBG     context.CancelFunc // ends the background work started by Start
	bg         sync.WaitGroup     // that work: Stop waits for it
	closers    []func() error     // released by Stop, after the drainer
}

// stopGrace bounds how long Stop lets attempts in flight finish: func-go
// gives Stop 30 s in all.
const stopGrace = 20 * time.Second

// New is what the func scaffolding calls, before func-go logs anything:
// func-go's log lines take the function's format and LOG_LEVEL here.
func New() *Function {
	configureRuntimeLog(runtimeLogLevel(), os.Stderr)
	return &Function{metrics: metrics.New()}
}

// Start reads the configuration from the environment and builds the
// handler. An error stops the function, naming the variable at fault.
func (f *Function) Start(ctx context.Context, _ map[string]string) (err error) {
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// Background work (credential retries, the drainer) lives until Stop.
	ctx, f.stopBG = context.WithCancel(ctx)
	defer func() {
		if err != nil { // a failed start leaves nothing running or open
			_ = f.Stop(context.Background())
		}
	}()
	src, err := credentialSource(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := f.firstCredentials(ctx, cfg, src, log); err != nil {
		return err
	}
	st, closeStore, storeReady, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	f.storeReady = storeReady
	f.closers = append(f.closers, closeStore)
	h, d, err := Build(cfg, src, f.metrics.Store(st), f.metrics, log)
	if err != nil {
		return err
	}
	f.drainer = d
	f.bg.Go(func() { d.Run(ctx) })
	f.bg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		d.Opener().CheckCredentials(cctx)
	})
	f.handler.Store(h)
	return nil
}

// credentialSource reads credentials from AWS Secrets Manager when
// ATLASSIAN_SECRET_ID is set, else from the environment.
func credentialSource(ctx context.Context, cfg config.Config, log *slog.Logger) (secrets.Source, error) {
	if cfg.AtlassianSecretID == "" {
		return secrets.Static(secrets.Credentials{
			Email: cfg.AtlassianEmail, APIToken: cfg.AtlassianAPIToken, BearerToken: cfg.AtlassianBearer,
		}), nil
	}
	sm, err := secrets.NewSecretsManager(ctx, secrets.SMOptions{SecretID: cfg.AtlassianSecretID, TTL: cfg.SecretTTL, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("ATLASSIAN_SECRET_ID: %w", err)
	}
	return sm, nil
}

// firstCredentials reads the credentials once at start: a misconfigured
// secret stops the function with the reason, while an unavailable Secrets
// Manager only keeps it not ready (retrying in the background) — it is
// never a crash, and no call goes out half-configured.
func (f *Function) firstCredentials(ctx context.Context, cfg config.Config, src secrets.Source, log *slog.Logger) error {
	check := func(c secrets.Credentials) error {
		if cfg.CallerAuthFromSecret() && c.AuthToken.Reveal() == "" {
			return errors.New("AUTH_TOKEN: is required: set it, or HMAC_SECRET, or keep auth_token in the ATLASSIAN_SECRET_ID secret")
		}
		return nil
	}
	fetch := func() error {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := src.Credentials(fctx)
		if err != nil {
			return err
		}
		return check(c)
	}
	err := fetch()
	switch {
	case err == nil:
		f.credsReady.Store(true)
		return nil
	case errors.Is(err, secrets.ErrUnavailable):
		log.Warn("Atlassian credentials unavailable at start; not ready until they can be read", "error", err.Error())
		f.bg.Go(func() {
			for wait := time.Second; ; wait = min(wait*2, time.Minute) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				err := fetch()
				if err == nil {
					f.credsReady.Store(true)
					log.Info("Atlassian credentials read; ready")
					return
				}
				log.Warn("Atlassian credentials still unavailable", "error", err.Error())
			}
		})
		return nil
	default:
		return fmt.Errorf("credentials: %w", err)
	}
}

// openStore opens the shared NATS JetStream store when NATS_URL is set,
// else the in-process one, and says in the log what that means. A NATS
// server that cannot be reached yet is no error: the store connects in the
// background and ready says when it can be used (a cold start during an
// EventBus blip must not become a crash loop).
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (st store.Store, closeStore func() error, ready func() bool, err error) {
	if cfg.NATSURL == "" {
		log.Warn("no NATS_URL: idempotency records and custody of unfinished rollbacks are kept in this process only: with more than one replica concurrent deliveries of one rollback may open duplicates, and rollbacks still unfinished when the process stops are lost (each is logged); keep one replica (Knative annotation autoscaling.knative.dev/max-scale: \"1\") or set NATS_URL to share records through NATS JetStream")
		return memory.New(cfg.NATSTTL), func() error { return nil }, func() bool { return true }, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	host, _ := os.Hostname()
	ns, err := natskv.Open(ctx, natskv.Options{
		URL: cfg.NATSURL, User: cfg.NATSUser, Password: cfg.NATSPassword.Reveal(), AuthFile: cfg.NATSAuthFile,
		CAFile: cfg.NATSCAFile, TLSServerName: cfg.NATSTLSServerName, InsecureSkipVerify: cfg.NATSTLSInsecure,
		Bucket: cfg.NATSBucket, Replicas: cfg.NATSReplicas, TTL: cfg.NATSTTL, Name: "rollback-incident " + host, Logger: log,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("idempotency store (NATS_URL): %w", err)
	}
	if !ns.Ready() {
		log.Warn("NATS not reachable yet: not ready, connecting in the background; deliveries get 503 until it answers", "bucket", cfg.NATSBucket)
	}
	log.Info("idempotency records are shared through NATS JetStream", "bucket", cfg.NATSBucket, "replicas", cfg.NATSReplicas, "ttl", cfg.NATSTTL.String())
	return ns, ns.Close, ns.Ready, nil
}

// Build wires a handler and the drainer of pending rollbacks from a
// validated configuration, a credential source and a store. The caller
// runs the drainer (Run) and closes it.
func Build(cfg config.Config, src secrets.Source, st store.Store, m *metrics.Metrics, log *slog.Logger) (*handler.Handler, *opener.Drainer, error) {
	tfs := fs.FS(templates.FS)
	if cfg.TemplatesDir != "" {
		tfs = templates.WithOverrides(cfg.TemplatesDir)
	}
	renderer, err := render.New(tfs)
	if err != nil {
		return nil, nil, fmt.Errorf("templates (TEMPLATES_DIR): %w", err)
	}
	links, err := render.ParseLinks(cfg.LinkTemplates)
	if err != nil {
		return nil, nil, fmt.Errorf("LINK_TEMPLATES: %w", err)
	}
	auth := credentialAdapter{src}
	// One limiter per host: Jira and Confluence of one site share the
	// tenant's burst budget.
	limiters := map[string]*atlassian.TokenBucket{}
	limiter := func(base string) *atlassian.TokenBucket {
		u, _ := url.Parse(base) // validated by config
		if limiters[u.Host] == nil {
			limiters[u.Host] = atlassian.NewTokenBucket(cfg.AtlassianRateLimit, cfg.AtlassianRateBurst)
		}
		return limiters[u.Host]
	}
	retry := atlassian.DefaultRetry()
	retry.MaxRetries = cfg.AtlassianRetries
	client := func(service, base string) *atlassian.Client {
		return atlassian.New(atlassian.Options{
			BaseURL: base, Service: service, Auth: auth, Timeout: cfg.AtlassianTimeout,
			Limiter: limiter(base), IssueWrites: atlassian.DefaultIssueLimiter(), Retry: retry, Observer: m,
		})
	}
	var (
		jc *jira.Client
		cc opener.Confluence
	)
	if cfg.DataCenter() {
		jc = jira.New(cfg.JiraURL, client("jira", cfg.JiraURL), jira.DataCenter)
		cc = confluence.NewV1(cfg.ConfluenceURL, client("confluence", cfg.ConfluenceURL))
	} else {
		jc = jira.New(cfg.JiraURL, client("jira", cfg.JiraURL), jira.Cloud)
		cc = confluence.New(cfg.ConfluenceURL, client("confluence", cfg.ConfluenceURL))
	}
	if cfg.AuthToken.Reveal() == "" && cfg.HMACSecret.Reveal() == "" && !cfg.CallerAuthFromSecret() {
		log.Warn("ALLOW_UNAUTHENTICATED=true: anyone who can reach this function can open incidents")
	}
	log.Info("rollback-incident configured",
		"jira_url", cfg.JiraURL, "confluence_url", cfg.ConfluenceURL, "deployment", cfg.Deployment,
		"jira_project", cfg.JiraProject, "jira_issue_type", cfg.JiraIssueType,
		"jira_allowed_projects", cfg.JiraAllowedProjects, "confluence_space", cfg.ConfluenceSpace,
		"cluster", cfg.ClusterName, "credentials", credentialsFrom(cfg))
	extras := opener.Extras{Links: links}
	if cfg.BackstageURL != "" {
		extras.Notifier = backstage.New(atlassian.New(atlassian.Options{
			BaseURL: cfg.BackstageURL, Service: "backstage", Timeout: cfg.AtlassianTimeout, Retry: retry, Observer: m,
			Auth: atlassian.StaticAuth(atlassian.Auth{Bearer: cfg.BackstageToken.Reveal()}),
		}))
	}
	o := opener.New(cfg, jc, cc, st, renderer, extras, log)
	d := opener.NewDrainer(o, opener.DrainerOptions{
		MaxAge: cfg.PendingMaxAge, Interval: cfg.DrainInterval, Concurrency: cfg.DrainConcurrency,
		Volatile: cfg.NATSURL == "", Observer: m, Log: log,
	})
	return handler.New(cfg, o, d, log, m, callerToken(cfg, src)), d, nil
}

func credentialsFrom(cfg config.Config) string {
	if cfg.AtlassianSecretID != "" {
		return "aws-secrets-manager:" + cfg.AtlassianSecretID
	}
	return "environment"
}

// callerToken is the bearer token callers must send: AUTH_TOKEN, else the
// secret's auth_token (it rotates with the secret). A secret rotated
// without auth_token fails closed: an error (503, logged), never the empty
// token that would mean "no bearer check".
func callerToken(cfg config.Config, src secrets.Source) handler.TokenSource {
	return func(ctx context.Context) (config.Secret, error) {
		if cfg.AuthToken != "" || !cfg.CallerAuthFromSecret() {
			return cfg.AuthToken, nil
		}
		c, err := src.Credentials(ctx)
		if err != nil {
			return "", err
		}
		if c.AuthToken.Reveal() == "" {
			return "", errors.New("the ATLASSIAN_SECRET_ID secret has no auth_token, and neither AUTH_TOKEN nor HMAC_SECRET is set: refusing every caller")
		}
		return c.AuthToken, nil
	}
}

// credentialAdapter lets the Atlassian clients read credentials from the
// secrets source on every call, and hand back the ones Atlassian refused.
type credentialAdapter struct{ src secrets.Source }

func (a credentialAdapter) Auth(ctx context.Context) (atlassian.Auth, error) {
	c, err := a.src.Credentials(ctx)
	if err != nil {
		return atlassian.Auth{}, err
	}
	return atlassian.Auth{Email: c.Email, APIToken: c.APIToken.Reveal(), Bearer: c.BearerToken.Reveal(), Origin: c}, nil
}

func (a credentialAdapter) Invalidate(stale atlassian.Auth) {
	if c, ok := stale.Origin.(secrets.Credentials); ok {
		a.src.Invalidate(c)
	}
}

// Handle serves one request. func-go routes every path but its health
// checks here, so /metrics is served from here too.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" && r.Method == http.MethodGet {
		f.metrics.Handler().ServeHTTP(w, r)
		return
	}
	h := f.handler.Load()
	if h == nil {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"failed","reason":"starting; nothing was kept, retry"}` + "\n"))
		return
	}
	h.ServeHTTP(w, r)
}

// Ready reports ready once the handler is built, the credentials have been
// read and the idempotency store answers.
func (f *Function) Ready(context.Context) (bool, error) {
	return f.handler.Load() != nil && f.credsReady.Load() && f.storeReady(), nil
}

// Alive reports the process alive; there is no state that could wedge it.
func (f *Function) Alive(context.Context) (bool, error) { return true, nil }

// Stop is called after func-go has stopped accepting requests and drained
// the ones in flight: attempts in flight get a bounded grace to finish
// (pending rollbacks stay in a shared store for the next process; with the
// in-process store each is logged with its event), then the store's
// connection is released.
func (f *Function) Stop(ctx context.Context) error {
	var errs []error
	if f.drainer != nil {
		gctx, cancel := context.WithTimeout(ctx, stopGrace)
		errs = append(errs, f.drainer.Close(gctx))
		cancel()
	}
	if f.stopBG != nil {
		f.stopBG()
	}
	// The background work ends with its context; the store is closed
	// only after it.
	done := make(chan struct{})
	go func() { f.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("background work still running: %w", ctx.Err()))
	}
	for _, c := range f.closers {
		errs = append(errs, c())
	}
	f.closers = nil // Stop may come again after a failed Start
	return errors.Join(errs...)
}
