// Command quickstart runs the whole job on one machine: the Atlassian
// emulator, the function served by the real func-go runtime in a process of
// its own (this binary again, as cmd/rollback-incident runs it), and the
// bundled sample rollback sent the way an Argo Events Sensor sends it (a
// binary-mode CloudEvent). It prints the Jira key and the postmortem URL,
// then stays up for curl until interrupted.
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
	"strings"
	"syscall"
	"time"

	"function/internal/emulator"
	"function/internal/funcmain"
	"function/internal/proc"
)

//go:embed sample-rollback.json
var sample []byte

// roleEnv set to "function" makes this binary the function's process: the
// quick start starts itself again that way, so it needs no second build.
const roleEnv = "QUICKSTART_ROLE"

func main() {
	if os.Getenv(roleEnv) == "function" {
		if err := funcmain.Run(); err != nil {
			fmt.Fprintln(os.Stderr, err.Error())
			os.Exit(1)
		}
		return
	}
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
	env := os.Environ()
	env = setDefault(env, "JIRA_URL", emuURL)
	env = setDefault(env, "ATLASSIAN_EMAIL", emulator.DefaultEmail)
	env = setDefault(env, "ATLASSIAN_API_TOKEN", emulator.DefaultAPIToken)
	env = setDefault(env, "CLUSTER_NAME", "quickstart")
	env = setDefault(env, "LISTEN_ADDRESS", listen)
	if os.Getenv("AUTH_TOKEN") == "" {
		env = setDefault(env, "ALLOW_UNAUTHENTICATED", "true")
		p.step("note: no AUTH_TOKEN set, so this local run accepts unauthenticated callers (ALLOW_UNAUTHENTICATED=true)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	p.step("starting the function with the func-go runtime in its own process (its JSON log lines go to stderr)")
	fn, err := proc.Start(ctx, proc.Options{Path: self, Env: append(env, roleEnv+"=function"), Output: os.Stderr})
	if err != nil {
		return fmt.Errorf("function: %w%s", err, inUseHint(err, "-listen"))
	}
	defer fn.Stop(25 * time.Second) // the function lets attempts in flight finish for up to 20 s
	fnURL := fn.URL
	p.step("function listening on %s", fnURL)
	if err := fn.Ready(30 * time.Second); err != nil {
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
		return nil
	case <-fn.Exited():
		return fmt.Errorf("function stopped: %v", fn.Err())
	}
}

// inUseHint names the way out when an address is taken, most often by a
// quick start still running (the function's process says so in its
// output, which the error carries).
func inUseHint(err error, flagName string) string {
	if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
		return fmt.Sprintf(" (another quick start still running? stop it, or pick another address with %s)", flagName)
	}
	return ""
}

// setDefault adds key=value to env unless env sets key already.
func setDefault(env []string, key, value string) []string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key && v != "" {
			return env
		}
	}
	return append(env, key+"="+value)
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
