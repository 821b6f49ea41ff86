// Command atlassian-emulator serves the Jira Cloud REST v3 / Confluence
// Cloud REST v2 emulator (internal/emulator) for the local quick start and
// for people exploring what the function does, with an HTML view at /.
// The same state is served over Jira Data Center REST v2, the Confluence
// v1 content API (Cloud /wiki/rest/api and Data Center /rest/api), and a
// Backstage notifications backend under /api/notifications.
//
// Usage:
//
//	atlassian-emulator -listen 127.0.0.1:8081 -projects "OPS:Incident,Task,Bug" -spaces INCIDENTS
//
// Data Center clients can authenticate with a Personal Access Token, and
// Backstage clients with a static token whose members a small catalog
// resolves:
//
//	atlassian-emulator -bearer-token dc-pat -backstage-token backstage-token \
//		-backstage-group 'group:default/payments-team=user:default/alice,user:default/bob'
//
// To see how a client copes with a slow, rate-limiting or failing
// Atlassian, start it with faults, an outage or rate limits, e.g.
//
//	atlassian-emulator -fault 'POST /rest/api/3/issue=503x2' -fault '*=0,delay=40s' \
//		-outage 503:30s -rate-limit 10 -rate-burst 10 -per-issue-writes 20
//
// or with a write that takes effect and whose answer is lost, by a reset
// connection or by no answer until the client gives up:
//
//	atlassian-emulator -fault 'POST /rest/api/3/issue/{issueIdOrKey}/comment=0,applied,reset' \
//		-fault 'PUT /rest/api/content/{id}=0,applied'
//
// or change them at run time through the admin API under /_emulator/
// (internal/emulator/README.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"function/internal/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, time.Now); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "atlassian-emulator:", err)
		}
		os.Exit(2)
	}
}

// shutdownTimeout bounds how long in-flight requests may take after a
// signal.
const shutdownTimeout = 5 * time.Second

// run parses args, serves until ctx is done, then shuts down gracefully.
// now is the emulator's clock (timed outages, rate limits, timestamps).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("atlassian-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultToken := os.Getenv("ATLASSIAN_API_TOKEN")
	if defaultToken == "" {
		defaultToken = emulator.DefaultAPIToken
	}
	defaultPAT := os.Getenv("ATLASSIAN_BEARER_TOKEN")
	defaultBackstageToken := os.Getenv("BACKSTAGE_TOKEN")
	if defaultBackstageToken == "" {
		defaultBackstageToken = emulator.DefaultBackstageToken
	}
	var faults faultFlags
	groups := groupFlags{}
	extraTokens := pairFlags{m: map[string]string{}, form: "SUBJECT=TOKEN"}
	fs.Var(&extraTokens, "backstage-extra-token", `a further Backstage static token and its subject (repeatable): "SUBJECT=TOKEN", e.g. "argocd-notifications=…": another sender, another origin`)
	owners := pairFlags{m: map[string]string{}, form: "ENTITY=OWNER"}
	fs.Var(&owners, "backstage-owner", `a Backstage catalog entity and its owner (repeatable): "ENTITY=OWNER", e.g. "component:default/checkout-api=group:default/payments-team"; a notification to the entity goes to the owner`)
	fs.Var(&groups, "backstage-group", `a Backstage catalog group and its members (repeatable): "GROUP=MEMBER,MEMBER", e.g. "group:default/payments-team=user:default/alice,group:default/payments-oncall"`)
	fs.Var(&faults, "fault", `inject a fault at start-up (repeatable): "ROUTE=STATUS[xCOUNT][,delay=2s][,delay-after=2s][,applied][,retry-after=N][,reason=R][,reset][,no-retry-after][,only-reset-header]"; ROUTE is a route pattern such as "POST /rest/api/3/issue" or *; "ROUTE=0,applied,reset" and "ROUTE=0,applied" make a write take effect and lose its answer (reset, or none until the client gives up)`)
	var (
		outage         = fs.String("outage", "", `start with an outage of every API route, "STATUS[:DURATION]", e.g. 503:30s (no duration: until cleared through the admin API)`)
		rateLimit      = fs.Float64("rate-limit", 0, "requests per second per tenant over all API routes, as Jira's burst token bucket (0: unlimited)")
		rateBurst      = fs.Int("rate-burst", 0, "token bucket size for -rate-limit (default: the -rate-limit value)")
		perIssueWrites = fs.Int("per-issue-writes", 0, "writes per issue in any 2 s window before 429 jira-per-issue-on-write (0: unlimited; Jira: 20)")
	)
	var (
		listen    = fs.String("listen", "127.0.0.1:8081", "address to listen on")
		baseURL   = fs.String("base-url", "", "public base URL used in self/webui links (default http://<listen address>)")
		email     = fs.String("email", emulator.DefaultEmail, "accepted Basic auth user (Atlassian account email)")
		token     = fs.String("token", defaultToken, "accepted Basic auth API token (default $ATLASSIAN_API_TOKEN or "+emulator.DefaultAPIToken+")")
		projects  = fs.String("projects", "OPS:Incident,Task,Bug", `Jira projects and their issue types, "KEY:Type,Type;KEY:Type"`)
		spaces    = fs.String("spaces", "INCIDENTS", "comma-separated Confluence space keys")
		searchLag = fs.Duration("search-lag", 0, "emulated /search/jql indexing lag for new issues")
		pat       = fs.String("bearer-token", defaultPAT, "Data Center Personal Access Token accepted as \"Authorization: Bearer\" on /rest/api/2 and /rest/api/content|space (default $ATLASSIAN_BEARER_TOKEN; empty: Bearer rejected)")
		bsToken   = fs.String("backstage-token", defaultBackstageToken, "static token the Backstage notifications backend accepts as Bearer (default $BACKSTAGE_TOKEN or "+emulator.DefaultBackstageToken+")")
		bsSubject = fs.String("backstage-subject", emulator.DefaultBackstageSubject, "subject of the Backstage static token: the origin of the notifications")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	projectMap, err := emulator.ParseProjects(*projects)
	if err != nil {
		return fmt.Errorf("-projects: %w", err)
	}
	var spaceKeys []string
	for _, s := range strings.Split(*spaces, ",") {
		if s = strings.TrimSpace(s); s != "" {
			spaceKeys = append(spaceKeys, s)
		}
	}
	if len(spaceKeys) == 0 {
		return errors.New("-spaces: at least one space key is required")
	}
	if *rateLimit < 0 || *rateBurst < 0 || *perIssueWrites < 0 {
		return errors.New("-rate-limit, -rate-burst and -per-issue-writes must not be negative")
	}
	if *rateBurst > 0 && *rateLimit == 0 {
		return errors.New("-rate-burst needs -rate-limit")
	}
	if err := emulator.ValidateBackstageToken(*bsToken, *bsSubject); err != nil {
		return fmt.Errorf("-backstage-token/-backstage-subject: %w", err)
	}
	for subject, token := range extraTokens.m {
		if err := emulator.ValidateBackstageToken(token, subject); err != nil {
			return fmt.Errorf("-backstage-extra-token %s: %w", subject, err)
		}
	}
	if strings.IndexFunc(*pat, unicode.IsSpace) >= 0 {
		return errors.New("-bearer-token: a token has no white space")
	}
	var outageStatus int
	var outageFor time.Duration
	if *outage != "" {
		if outageStatus, outageFor, err = emulator.ParseOutage(*outage); err != nil {
			return fmt.Errorf("-outage: %w", err)
		}
	}

	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	em := emulator.New(emulator.Options{
		BaseURL:   *baseURL,
		Email:     *email,
		APIToken:  *token,
		Projects:  projectMap,
		Spaces:    spaceKeys,
		SearchLag: *searchLag,
		Logger:    logger,
		Now:       now,
		RateLimit: emulator.RateLimit{PerSecond: *rateLimit, Burst: *rateBurst, PerIssueWrites: *perIssueWrites},

		BearerToken:      *pat,
		BackstageToken:   *bsToken,
		BackstageSubject: *bsSubject,
		BackstageGroups:  groups,
		BackstageOwners:  owners.m,
		BackstageExtraTokens: func() map[string]string {
			m := map[string]string{}
			for subject, token := range extraTokens.m {
				m[token] = subject
			}
			return m
		}(),
	})
	// Only the emulator knows its routes, so a misspelt route is caught
	// here rather than becoming a fault that never fires.
	for _, f := range faults {
		if _, err := em.AddFault(f.route, f.fault, f.n); err != nil {
			return fmt.Errorf("-fault %q: %w", f.flag, err)
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Derive the base URL from the bound address so -listen :0 works.
	base := *baseURL
	if base == "" {
		base = "http://" + ln.Addr().String()
		em.SetBaseURL(base)
	}
	if *outage != "" {
		// Started once listening, so a timed outage lasts as long as asked.
		em.SetOutageFor(outageStatus, outageFor)
	}
	srv := &http.Server{Handler: em, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("atlassian emulator listening", "url", base, "addr", ln.Addr().String(),
		"email", *email, "projects", *projects, "spaces", spaceKeys, "searchLag", searchLag.String(),
		"faults", faults.String(), "outage", *outage, "rateLimit", em.RateLimits(),
		"bearerToken", *pat != "", "backstageSubject", *bsSubject, "backstageGroups", groups.String(), "backstageOwners", owners.String(), "backstageExtraSubjects", extraTokens.String())
	fmt.Fprintln(stdout, base)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// pairFlags collects a repeatable KEY=VALUE flag (-backstage-owner,
// -backstage-extra-token).
type pairFlags struct {
	m    map[string]string
	form string // e.g. "ENTITY=OWNER", for errors
}

// String lists the keys only: a value may be a token.
func (p *pairFlags) String() string {
	if p == nil {
		return ""
	}
	keys := slices.Sorted(maps.Keys(p.m))
	return strings.Join(keys, ", ")
}

func (p *pairFlags) Set(s string) error {
	k, v, _ := strings.Cut(s, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if k == "" || v == "" {
		return fmt.Errorf("want %s", p.form)
	}
	p.m[k] = v
	return nil
}

// groupFlags collects the repeatable -backstage-group flag.
type groupFlags map[string][]string

func (g groupFlags) String() string {
	var out []string
	for k, v := range g {
		out = append(out, k+"="+strings.Join(v, ","))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

func (g groupFlags) Set(s string) error {
	group, members, ok := strings.Cut(s, "=")
	group = strings.TrimSpace(group)
	if !ok || group == "" {
		return fmt.Errorf("backstage group %q: want GROUP=MEMBER,MEMBER", s)
	}
	var list []string
	for _, m := range strings.Split(members, ",") {
		if m = strings.TrimSpace(m); m != "" {
			list = append(list, m)
		}
	}
	g[group] = append(g[group], list...)
	return nil
}

// faultFlags collects the repeatable -fault flag, parsed as it is read so
// that a malformed fault is reported like any other flag error.
type faultFlags []parsedFault

type parsedFault struct {
	flag  string
	route string
	fault emulator.Fault
	n     int
}

func (ff *faultFlags) String() string {
	if ff == nil {
		return ""
	}
	specs := make([]string, len(*ff))
	for i, f := range *ff {
		specs[i] = f.flag
	}
	return strings.Join(specs, "; ")
}

func (ff *faultFlags) Set(s string) error {
	route, f, n, err := emulator.ParseFault(s)
	if err != nil {
		return err
	}
	*ff = append(*ff, parsedFault{flag: s, route: route, fault: f, n: n})
	return nil
}
