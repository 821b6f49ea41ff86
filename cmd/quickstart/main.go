// Command quickstart runs the whole job on one machine: the Atlassian
// emulator, the function served by the real func-go runtime, and the bundled
// sample rollback sent the way an Argo Events Sensor sends it (a binary-mode
// CloudEvent). It prints the Jira key and the postmortem URL, then stays up
// for curl until interrupted.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	fhttp "knative.dev/func-go/http"

	function "function"
	"function/internal/emulator"
)

//go:embed sample-rollback.json
var sample []byte

func main() {
	// The first line a newcomer sees from the quick start itself: `go run`
	// prints nothing while it compiles (minutes on an empty cache).
	started := time.Now()
	fmt.Println("quickstart: compiled and started; each step below shows the seconds since this line")
	listen := flag.String("listen", "127.0.0.1:8080", "address of the function")
	emuListen := flag.String("emulator", "127.0.0.1:8081", "address of the Atlassian emulator")
	once := flag.Bool("once", false, "exit after the sample incident is opened (for scripts and tests)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, progress{w: os.Stdout, start: started, now: time.Now}, *listen, *emuListen, *once)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// progress prints the quick start's steps as they happen, each with the
// time since the process started.
type progress struct {
	w     io.Writer
	start time.Time
	now   func() time.Time
}

func (p progress) step(format string, args ...any) {
	fmt.Fprintf(p.w, "[%5.1fs] %s\n", p.now().Sub(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, p progress, listen, emuListen string, once bool) error {
	// The emulator, on its own port, as a real Atlassian site would be.
	ln, err := net.Listen("tcp", emuListen)
	if err != nil {
		return fmt.Errorf("emulator: %w%s", err, inUseHint(err, "-emulator"))
	}
	emuURL := "http://" + ln.Addr().String()
	emu := emulator.New(emulator.Options{BaseURL: emuURL})
	emuSrv := &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = emuSrv.Serve(ln) }()
	defer emuSrv.Close()
	p.step("Atlassian emulator (Jira and Confluence) listening on %s/", emuURL)

	// The function reads its configuration from the environment, as in a
	// cluster; what the user already exported wins.
	setDefault("JIRA_URL", emuURL)
	setDefault("ATLASSIAN_EMAIL", emulator.DefaultEmail)
	setDefault("ATLASSIAN_API_TOKEN", emulator.DefaultAPIToken)
	setDefault("CLUSTER_NAME", "quickstart")
	setDefault("LISTEN_ADDRESS", listen)
	if os.Getenv("AUTH_TOKEN") == "" {
		setDefault("ALLOW_UNAUTHENTICATED", "true")
		p.step("note: no AUTH_TOKEN set, so this local run accepts unauthenticated callers (ALLOW_UNAUTHENTICATED=true)")
	}

	fnCtx, fnCancel := context.WithCancel(ctx)
	defer fnCancel()
	fnDone := make(chan error, 1)
	fnURL := "http://" + os.Getenv("LISTEN_ADDRESS")
	p.step("starting the function with the func-go runtime on %s (its JSON log lines go to stderr)", fnURL)
	go func() { fnDone <- fhttp.New(function.New()).Start(fnCtx) }()
	if err := waitReady(ctx, fnURL+"/health/readiness", fnDone); err != nil {
		return err
	}
	p.step("function ready (GET /health/readiness answered 200)")
	p.step("sending the sample rollback the way an Argo Events Sensor does (binary-mode CloudEvent)")
	reply, err := sendSample(ctx, fnURL)
	if err != nil {
		return err
	}
	p.step("incident %s: Jira issue %s, postmortem page, linked", reply.Status, reply.JiraKey)
	fmt.Fprintf(p.w, "\nrollback-incident is running at %s (Atlassian emulator at %s/)\n\n", fnURL, emuURL)
	fmt.Fprintf(p.w, "sample rollback: %s\n", reply.Reason)
	fmt.Fprintf(p.w, "  Jira issue:        %s  %s\n", reply.JiraKey, reply.JiraURL)
	fmt.Fprintf(p.w, "  Confluence page:   %s\n", reply.ConfluenceURL)
	fmt.Fprintf(p.w, "  fingerprint:       %s\n\n", reply.Fingerprint)
	if once {
		return nil
	}
	fmt.Fprintf(p.w, "Send more events, e.g.:\n  curl -sS -X POST %s/ -H 'Content-Type: application/json' --data-binary @testdata/fixtures/argocd-app-health-degraded.json\n", fnURL)
	fmt.Fprintln(p.w, "Press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		fnCancel()
		<-fnDone
		return nil
	case err := <-fnDone:
		return err
	}
}

// inUseHint names the way out when an address is taken, most often by a
// quick start still running.
func inUseHint(err error, flagName string) string {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Sprintf(" (another quick start still running? stop it, or pick another address with %s)", flagName)
	}
	return ""
}

func setDefault(key, value string) {
	if os.Getenv(key) == "" {
		os.Setenv(key, value)
	}
}

func waitReady(ctx context.Context, url string, fnDone <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-fnDone:
			return fmt.Errorf("function stopped: %w%s", err, inUseHint(err, "-listen"))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("function did not become ready in 30 s")
}

type reply struct {
	Status        string `json:"status"`
	Reason        string `json:"reason"`
	Fingerprint   string `json:"fingerprint"`
	JiraKey       string `json:"jiraKey"`
	JiraURL       string `json:"jiraUrl"`
	ConfluenceURL string `json:"confluenceUrl"`
}

// sendSample posts the sample as the Argo Events Sensor of deploy/ does:
// binary-mode CloudEvent headers, the notification body as data.
func sendSample(ctx context.Context, fnURL string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fnURL+"/", bytes.NewReader(sample))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", fmt.Sprintf("quickstart-%d", time.Now().UnixNano()))
	req.Header.Set("Ce-Source", "argo-events/sensor/rollback-sensor")
	req.Header.Set("Ce-Type", "io.argoproj.rollouts.rollback")
	req.Header.Set("Ce-Subject", "payments/checkout-api")
	if tok := os.Getenv("AUTH_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("send sample: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r reply
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil || r.JiraKey == "" {
		return reply{}, fmt.Errorf("sample rollback: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return r, nil
}
