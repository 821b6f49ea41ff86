// Command atlassian-emulator serves the Jira Cloud REST v3 / Confluence
// Cloud REST v2 emulator (internal/emulator) for the local quick start and
// for people exploring what the function does, with an HTML view at /.
//
// Usage:
//
//	atlassian-emulator -listen 127.0.0.1:8081 -projects "OPS:Incident,Task,Bug" -spaces INCIDENTS
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"function/internal/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
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
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("atlassian-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultToken := os.Getenv("ATLASSIAN_API_TOKEN")
	if defaultToken == "" {
		defaultToken = emulator.DefaultAPIToken
	}
	var (
		listen    = fs.String("listen", "127.0.0.1:8081", "address to listen on")
		baseURL   = fs.String("base-url", "", "public base URL used in self/webui links (default http://<listen address>)")
		email     = fs.String("email", emulator.DefaultEmail, "accepted Basic auth user (Atlassian account email)")
		token     = fs.String("token", defaultToken, "accepted Basic auth API token (default $ATLASSIAN_API_TOKEN or "+emulator.DefaultAPIToken+")")
		projects  = fs.String("projects", "OPS:Incident,Task,Bug", `Jira projects and their issue types, "KEY:Type,Type;KEY:Type"`)
		spaces    = fs.String("spaces", "INCIDENTS", "comma-separated Confluence space keys")
		searchLag = fs.Duration("search-lag", 0, "emulated /search/jql indexing lag for new issues")
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

	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Derive the base URL from the bound address so -listen :0 works.
	base := *baseURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	em := emulator.New(emulator.Options{
		BaseURL:   base,
		Email:     *email,
		APIToken:  *token,
		Projects:  projectMap,
		Spaces:    spaceKeys,
		SearchLag: *searchLag,
		Logger:    logger,
	})
	srv := &http.Server{Handler: em, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("atlassian emulator listening", "url", base, "addr", ln.Addr().String(),
		"email", *email, "projects", *projects, "spaces", spaceKeys, "searchLag", searchLag.String())
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
