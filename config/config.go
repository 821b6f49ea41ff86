// Package config reads the function's configuration from the environment,
// once, at start-up. The variable names are the public contract documented in
// the README; every problem is reported with the name of the variable.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Config is the validated configuration.
type Config struct {
	JiraURL string `envconfig:"JIRA_URL"`
	// Deployment is "cloud" or "datacenter"; by default, cloud for
	// *.atlassian.net and loopback hosts (the local emulator) and
	// datacenter for any other host.
	Deployment          string   `envconfig:"ATLASSIAN_DEPLOYMENT"`
	ConfluenceURL       string   `envconfig:"CONFLUENCE_URL"`
	JiraProject         string   `envconfig:"JIRA_PROJECT" default:"OPS"`
	JiraIssueType       string   `envconfig:"JIRA_ISSUE_TYPE" default:"Incident"`
	JiraAllowedProjects []string `envconfig:"JIRA_ALLOWED_PROJECTS"`
	JiraAllowedTypes    []string `envconfig:"JIRA_ALLOWED_ISSUE_TYPES"`
	ConfluenceSpace     string   `envconfig:"CONFLUENCE_SPACE" default:"INCIDENTS"`
	ConfluenceParentID  string   `envconfig:"CONFLUENCE_PARENT_ID"`
	AtlassianEmail      string   `envconfig:"ATLASSIAN_EMAIL"`
	AtlassianAPIToken   Secret   `envconfig:"ATLASSIAN_API_TOKEN"`
	AtlassianBearer     Secret   `envconfig:"ATLASSIAN_BEARER_TOKEN"`
	// AtlassianSecretID names the AWS Secrets Manager secret (name or ARN)
	// holding the credentials; it replaces the three variables above, so
	// setting any of them too is an error rather than silently unused.
	AtlassianSecretID string        `envconfig:"ATLASSIAN_SECRET_ID"`
	SecretTTL         time.Duration `envconfig:"SECRET_TTL" default:"5m"`
	AuthToken         Secret        `envconfig:"AUTH_TOKEN"`
	HMACSecret        Secret        `envconfig:"HMAC_SECRET"`
	AllowUnauthn      bool          `envconfig:"ALLOW_UNAUTHENTICATED" default:"false"`
	ClusterName       string        `envconfig:"CLUSTER_NAME" default:"default"`
	MaxBodyBytes      int64         `envconfig:"MAX_BODY_BYTES" default:"1048576"`
	// MaxInflightBytes bounds the request bodies held in memory at once,
	// separately for small bodies (a known length up to 64 KiB: every real
	// Argo event) and for the rest, so large or slow callers cannot starve
	// small ones; BodyReadTimeout cuts off a caller that sends too slowly.
	MaxInflightBytes   int64         `envconfig:"MAX_INFLIGHT_BYTES" default:"16777216"`
	BodyReadTimeout    time.Duration `envconfig:"BODY_READ_TIMEOUT" default:"10s"`
	RequestDeadline    time.Duration `envconfig:"REQUEST_DEADLINE" default:"25s"`
	AtlassianTimeout   time.Duration `envconfig:"ATLASSIAN_TIMEOUT" default:"10s"`
	AtlassianRateLimit float64       `envconfig:"ATLASSIAN_RATE_LIMIT" default:"50"`
	AtlassianRateBurst int           `envconfig:"ATLASSIAN_RATE_BURST" default:"20"`
	AtlassianRetries   int           `envconfig:"ATLASSIAN_MAX_RETRIES" default:"4"`
	DedupWindow        time.Duration `envconfig:"DEDUP_WINDOW" default:"24h"`
	ReopenWindow       time.Duration `envconfig:"REOPEN_WINDOW" default:"24h"`
	// FinishBudget is how long a request waits for its rollback's incident
	// before answering 202 accepted; the work goes on in the background.
	// Default: 10s, or half of REQUEST_DEADLINE when that is shorter.
	FinishBudget time.Duration `envconfig:"FINISH_BUDGET"`
	// PendingMaxAge is how long an unfinished rollback is kept and retried
	// before it is abandoned (an error log with its event, a counter).
	PendingMaxAge time.Duration `envconfig:"PENDING_MAX_AGE" default:"72h"`
	// DrainInterval is the longest a process waits between two passes
	// over the pending rollbacks; DrainConcurrency how many it works at once.
	DrainInterval    time.Duration `envconfig:"DRAIN_INTERVAL" default:"1m"`
	DrainConcurrency int           `envconfig:"DRAIN_CONCURRENCY" default:"4"`
	// JiraIndexGrace is how long an interrupted create is given to appear
	// in Jira's search before the issue is created again. Jira Cloud's
	// search lags writes by seconds, sometimes minutes.
	JiraIndexGrace time.Duration `envconfig:"JIRA_INDEX_GRACE" default:"2m"`

	// NATS JetStream key-value store shared by replicas; off when NATSURL
	// is empty. Compatible with the Argo Events EventBus.
	NATSURL           string        `envconfig:"NATS_URL"`
	NATSUser          string        `envconfig:"NATS_USER"`
	NATSPassword      Secret        `envconfig:"NATS_PASSWORD"`
	NATSAuthFile      string        `envconfig:"NATS_AUTH_FILE"`
	NATSCAFile        string        `envconfig:"NATS_CA_FILE"`
	NATSTLSServerName string        `envconfig:"NATS_TLS_SERVER_NAME"`
	NATSTLSInsecure   bool          `envconfig:"NATS_TLS_INSECURE" default:"false"`
	NATSBucket        string        `envconfig:"NATS_BUCKET" default:"rollback-incident"`
	NATSReplicas      int           `envconfig:"NATS_REPLICAS" default:"1"`
	NATSTTL           time.Duration `envconfig:"NATS_TTL" default:"168h"`
	LogLevel          slog.Level    `envconfig:"LOG_LEVEL" default:"info"`

	// TemplatesDir holds template files that replace the embedded
	// defaults of the same name.
	TemplatesDir string `envconfig:"TEMPLATES_DIR"`
	// LinkTemplates are links added to every incident: "Title=URL
	// template" entries separated by newlines or ";".
	LinkTemplates string `envconfig:"LINK_TEMPLATES"`

	// Web UIs the next steps link to when the event carried no link.
	ArgoCDURL            string `envconfig:"ARGOCD_URL"`
	RolloutsDashboardURL string `envconfig:"ROLLOUTS_DASHBOARD_URL"`
	WorkflowsURL         string `envconfig:"ARGO_WORKFLOWS_URL"`
	// Priority: DefaultPriority unless the object's
	// rollback-incident/priority annotation names one of AllowedPriorities.
	DefaultPriority   string   `envconfig:"DEFAULT_PRIORITY"`
	AllowedPriorities []string `envconfig:"ALLOWED_PRIORITIES"`
	// ResolveOnRecovery moves the issue to a done status when the object is
	// healthy again (off: people close incidents).
	ResolveOnRecovery bool `envconfig:"RESOLVE_ON_RECOVERY" default:"false"`

	// Backstage notifications; off when BackstageURL is empty.
	BackstageURL       string   `envconfig:"BACKSTAGE_URL"`
	BackstageToken     Secret   `envconfig:"BACKSTAGE_TOKEN"`
	BackstageOwners    []string `envconfig:"BACKSTAGE_OWNERS"`
	BackstageBroadcast bool     `envconfig:"BACKSTAGE_BROADCAST" default:"false"`
}

// Secret is a string that never prints: not with any fmt verb, in JSON, nor
// through log/slog. Reveal returns the value where it must be sent.
type Secret string

const redacted = "[REDACTED]"

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Reveal returns the secret value. Call it only to put the value on the wire.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string               { return s.mask() }
func (s Secret) GoString() string             { return s.mask() }
func (s Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(s.mask())) }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(s.mask()) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

// Load reads and validates the configuration from the process environment.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return Config{}, explain(err)
	}
	if err := c.normalize(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// explain turns envconfig's parse errors into a message naming the variable
// without echoing its value, which may be a secret typed into the wrong one.
func explain(err error) error {
	var pe *envconfig.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: invalid %s value", pe.KeyName, pe.TypeName)
	}
	return err
}

var (
	projectKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]{1,254}$`)
	spaceKey   = regexp.MustCompile(`^[A-Za-z0-9~_]{1,255}$`)
	numericID  = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// normalize fills derived defaults and reports every problem found, each
// naming its variable, so one start-up says all that needs fixing.
func (c *Config) normalize() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}

	if c.JiraURL == "" {
		bad("JIRA_URL", "is required (e.g. https://your-site.atlassian.net)")
	} else if u, err := baseURL(c.JiraURL); err != nil {
		bad("JIRA_URL", "%v", err)
	} else {
		c.JiraURL = u
	}
	switch strings.ToLower(c.Deployment) {
	case "cloud", "datacenter":
		c.Deployment = strings.ToLower(c.Deployment)
	case "":
		// Atlassian Cloud sites live under atlassian.net; a loopback host
		// is the local emulator, which defaults to Cloud as well.
		c.Deployment = "datacenter"
		if u, err := url.Parse(c.JiraURL); err == nil {
			h := strings.ToLower(u.Hostname())
			if strings.HasSuffix(h, ".atlassian.net") || h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1" {
				c.Deployment = "cloud"
			}
		}
	default:
		bad("ATLASSIAN_DEPLOYMENT", "must be cloud or datacenter")
	}
	if c.ConfluenceURL == "" && c.JiraURL != "" {
		c.ConfluenceURL = c.JiraURL + "/wiki"
	} else if c.ConfluenceURL != "" {
		if u, err := baseURL(c.ConfluenceURL); err != nil {
			bad("CONFLUENCE_URL", "%v", err)
		} else {
			c.ConfluenceURL = u
		}
	}

	c.JiraProject = strings.ToUpper(strings.TrimSpace(c.JiraProject))
	if !projectKey.MatchString(c.JiraProject) {
		bad("JIRA_PROJECT", "must be a Jira project key such as OPS")
	}
	c.JiraAllowedProjects = cleanList(c.JiraAllowedProjects, strings.ToUpper)
	for _, p := range c.JiraAllowedProjects {
		if !projectKey.MatchString(p) {
			bad("JIRA_ALLOWED_PROJECTS", "%q is not a Jira project key", p)
		}
	}
	if !slices.Contains(c.JiraAllowedProjects, c.JiraProject) {
		c.JiraAllowedProjects = append([]string{c.JiraProject}, c.JiraAllowedProjects...)
	}
	c.JiraIssueType = strings.TrimSpace(c.JiraIssueType)
	if c.JiraIssueType == "" {
		bad("JIRA_ISSUE_TYPE", "must not be empty")
	}
	c.JiraAllowedTypes = cleanList(c.JiraAllowedTypes, func(s string) string { return s })
	if !containsFold(c.JiraAllowedTypes, c.JiraIssueType) {
		c.JiraAllowedTypes = append([]string{c.JiraIssueType}, c.JiraAllowedTypes...)
	}

	if !spaceKey.MatchString(c.ConfluenceSpace) {
		bad("CONFLUENCE_SPACE", "must be a Confluence space key such as INCIDENTS")
	}
	if c.ConfluenceParentID != "" && !numericID.MatchString(c.ConfluenceParentID) {
		bad("CONFLUENCE_PARENT_ID", "must be a numeric page id")
	}

	switch {
	case c.AtlassianSecretID != "":
		if c.AtlassianAPIToken != "" || c.AtlassianBearer != "" || c.AtlassianEmail != "" {
			bad("ATLASSIAN_SECRET_ID", "set either ATLASSIAN_SECRET_ID or ATLASSIAN_EMAIL/ATLASSIAN_API_TOKEN/ATLASSIAN_BEARER_TOKEN, not both")
		}
		if c.SecretTTL < time.Second {
			bad("SECRET_TTL", "must be at least 1s")
		}
	case c.AtlassianBearer != "":
		if c.AtlassianAPIToken != "" {
			bad("ATLASSIAN_BEARER_TOKEN", "set either ATLASSIAN_BEARER_TOKEN (Data Center) or ATLASSIAN_API_TOKEN (Cloud), not both")
		}
	default:
		if strings.TrimSpace(c.AtlassianEmail) == "" {
			bad("ATLASSIAN_EMAIL", "is required (the Atlassian account the API token belongs to), or set ATLASSIAN_SECRET_ID")
		}
		if c.AtlassianAPIToken == "" {
			bad("ATLASSIAN_API_TOKEN", "is required, or set ATLASSIAN_SECRET_ID to read it from AWS Secrets Manager")
		}
	}
	// Callers authenticate with AUTH_TOKEN, an auth_token kept in the
	// Secrets Manager secret (checked when it is first read), or an HMAC
	// signature; running open needs saying so.
	if c.AuthToken == "" && c.HMACSecret == "" && c.AtlassianSecretID == "" && !c.AllowUnauthn {
		bad("AUTH_TOKEN", "is required: callers must authenticate with 'Authorization: Bearer <token>' (or set HMAC_SECRET, or keep auth_token in ATLASSIAN_SECRET_ID; ALLOW_UNAUTHENTICATED=true only for local runs)")
	}
	if c.ClusterName == "" {
		bad("CLUSTER_NAME", "must not be empty")
	}
	if c.MaxBodyBytes < 1024 {
		bad("MAX_BODY_BYTES", "must be at least 1024")
	}
	if c.MaxInflightBytes < c.MaxBodyBytes {
		bad("MAX_INFLIGHT_BYTES", "must be at least MAX_BODY_BYTES")
	}
	if c.BodyReadTimeout < time.Second || c.BodyReadTimeout > 30*time.Second {
		bad("BODY_READ_TIMEOUT", "must be between 1s and 30s (the runtime's read timeout)")
	}
	// func-go's server write timeout is 30 s: a reply later than that is
	// lost, and the caller retries work that may have finished.
	if c.RequestDeadline <= 0 || c.RequestDeadline >= 30*time.Second {
		bad("REQUEST_DEADLINE", "must be between 0s and 30s (the runtime's write timeout)")
	}
	if c.FinishBudget == 0 {
		c.FinishBudget = min(10*time.Second, c.RequestDeadline/2)
	}
	if c.FinishBudget <= 0 || c.FinishBudget >= c.RequestDeadline {
		bad("FINISH_BUDGET", "must be positive and shorter than REQUEST_DEADLINE")
	}
	if c.PendingMaxAge < time.Hour {
		bad("PENDING_MAX_AGE", "must be at least 1h: Atlassian outages last that long")
	}
	if c.DrainInterval < time.Second {
		bad("DRAIN_INTERVAL", "must be at least 1s")
	}
	if c.DrainConcurrency < 1 || c.DrainConcurrency > 64 {
		bad("DRAIN_CONCURRENCY", "must be between 1 and 64")
	}
	if c.AtlassianTimeout <= 0 {
		bad("ATLASSIAN_TIMEOUT", "must be positive")
	}
	if c.AtlassianRateLimit <= 0 {
		bad("ATLASSIAN_RATE_LIMIT", "must be positive (requests per second per Atlassian host)")
	}
	if c.AtlassianRateBurst < 1 {
		bad("ATLASSIAN_RATE_BURST", "must be at least 1")
	}
	if c.AtlassianRetries < 0 || c.AtlassianRetries > 10 {
		bad("ATLASSIAN_MAX_RETRIES", "must be between 0 and 10")
	}
	if c.DedupWindow <= 0 {
		bad("DEDUP_WINDOW", "must be positive")
	}
	if c.JiraIndexGrace < 0 {
		bad("JIRA_INDEX_GRACE", "must not be negative")
	}
	for name, v := range map[string]*string{"ARGOCD_URL": &c.ArgoCDURL, "ROLLOUTS_DASHBOARD_URL": &c.RolloutsDashboardURL, "ARGO_WORKFLOWS_URL": &c.WorkflowsURL} {
		if *v == "" {
			continue
		}
		if u, err := baseURL(*v); err != nil {
			bad(name, "%v", err)
		} else {
			*v = u
		}
	}
	c.AllowedPriorities = cleanList(c.AllowedPriorities, strings.TrimSpace)
	c.DefaultPriority = strings.TrimSpace(c.DefaultPriority)
	if c.BackstageURL != "" {
		if u, err := baseURL(c.BackstageURL); err != nil {
			bad("BACKSTAGE_URL", "%v", err)
		} else {
			c.BackstageURL = u
		}
		if len(c.BackstageToken) < 8 || strings.ContainsAny(string(c.BackstageToken), " \t\r\n") {
			bad("BACKSTAGE_TOKEN", "is required with BACKSTAGE_URL: the static external-access token (8 characters or more, no white space)")
		}
	}
	for _, m := range c.BackstageOwners {
		if k, v, ok := strings.Cut(m, "="); !ok || strings.TrimSpace(k) == "" || !strings.Contains(v, ":") {
			bad("BACKSTAGE_OWNERS", "entries must be namespace=entity-ref or namespace/name=entity-ref, e.g. payments=group:default/payments-team")
			break
		}
	}
	if c.ReopenWindow < 0 {
		bad("REOPEN_WINDOW", "must not be negative")
	}
	if c.NATSTTL < c.DedupWindow || c.NATSTTL < c.PendingMaxAge {
		bad("NATS_TTL", "must be at least DEDUP_WINDOW and PENDING_MAX_AGE, or records would vanish while still needed")
	}
	if c.NATSURL != "" {
		if !strings.HasPrefix(c.NATSURL, "nats://") && !strings.HasPrefix(c.NATSURL, "tls://") {
			bad("NATS_URL", "must be a nats:// or tls:// URL (several may be given, comma-separated)")
		}
		if c.NATSReplicas != 1 && c.NATSReplicas != 3 && c.NATSReplicas != 5 {
			bad("NATS_REPLICAS", "must be 1, 3 or 5")
		}
		if c.NATSUser != "" && c.NATSAuthFile != "" {
			bad("NATS_AUTH_FILE", "set either NATS_USER/NATS_PASSWORD or NATS_AUTH_FILE, not both")
		}
	}
	return errors.Join(errs...)
}

// baseURL checks an absolute http(s) URL and strips a trailing slash. The
// URL must carry no credentials: those come from their own variables.
func baseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("must be an absolute http(s) URL")
	}
	if u.User != nil {
		return "", errors.New("must not contain credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must not have a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func cleanList(in []string, norm func(string) string) []string {
	var out []string
	for _, s := range in {
		s = norm(strings.TrimSpace(s))
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// CallerAuthFromSecret reports whether the inbound bearer token must come
// from the Secrets Manager secret's auth_token.
func (c *Config) CallerAuthFromSecret() bool {
	return c.AuthToken == "" && c.HMACSecret == "" && c.AtlassianSecretID != "" && !c.AllowUnauthn
}

// AllowedProject returns the project to file in: the requested one when it
// is allowed, else the default. The payload cannot reach other projects.
func (c *Config) AllowedProject(requested string) string {
	requested = strings.ToUpper(strings.TrimSpace(requested))
	if slices.Contains(c.JiraAllowedProjects, requested) {
		return requested
	}
	return c.JiraProject
}

// AllowedIssueType returns the requested issue type when it is allowed
// (case-insensitively), spelled as configured, else the default. A type the
// project lacks would make Jira refuse the issue, and the incident would be
// lost, so payloads cannot pick arbitrary types.
func (c *Config) AllowedIssueType(requested string) string {
	for _, t := range c.JiraAllowedTypes {
		if strings.EqualFold(t, strings.TrimSpace(requested)) {
			return t
		}
	}
	return c.JiraIssueType
}

// Priority returns the Jira priority for an incident whose object asked
// for requested: requested when it is allowed (spelled as configured),
// else DEFAULT_PRIORITY ("" leaves Jira's default).
func (c *Config) Priority(requested string) string {
	for _, p := range c.AllowedPriorities {
		if strings.EqualFold(p, strings.TrimSpace(requested)) {
			return p
		}
	}
	return c.DefaultPriority
}

// BackstageOwner returns the entity to notify for an object: the mapping of
// "namespace/name" first, then of "namespace".
func (c *Config) BackstageOwner(namespace, name string) string {
	var byNS string
	for _, m := range c.BackstageOwners {
		k, v, _ := strings.Cut(m, "=")
		switch strings.TrimSpace(k) {
		case namespace + "/" + name:
			return strings.TrimSpace(v)
		case namespace:
			byNS = strings.TrimSpace(v)
		}
	}
	return byNS
}

// DataCenter reports whether Jira and Confluence are Data Center / Server.
func (c *Config) DataCenter() bool { return c.Deployment == "datacenter" }
