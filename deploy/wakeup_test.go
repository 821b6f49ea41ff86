package deploy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	aev1 "github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	eventsourcecommon "github.com/argoproj/argo-events/pkg/eventsources/common"
	"github.com/argoproj/argo-events/pkg/eventsources/sources/calendar"
	aemetrics "github.com/argoproj/argo-events/pkg/metrics"
	"github.com/argoproj/argo-events/pkg/shared/logging"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

// wakeupPeriod is how often both wake-ups call POST /reconcile; the alert
// rules in monitoring/ read the gauges over twice this window.
const wakeupPeriod = 5 * time.Minute

func loadWakeupSensor(t *testing.T) *aev1.Sensor {
	t.Helper()
	var s aev1.Sensor
	loadOne(t, "argo-events/sensor-wakeup.yaml", &s)
	return &s
}

// calendarEvent runs the calendar EventSource of deploy/argo-events with the
// real Argo Events v1.9.6 listener (pkg/eventsources/sources/calendar), its
// interval shortened from 5m to 1s, and returns the first event it
// dispatches, wrapped as the EventSource publishes it on the bus. (Not
// shorter: the listener's schedule rounds to whole seconds, and an interval
// below one second puts it in a catch-up loop that never looks at its
// context.)
func calendarEvent(t *testing.T) cloudevents.Event {
	t.Helper()
	es := loadEventSource(t, "argo-events/eventsource-calendar.yaml")
	if len(es.Spec.Calendar) != 1 {
		t.Fatalf("%s: want one calendar event, got %d", es.Name, len(es.Spec.Calendar))
	}
	for name, cal := range es.Spec.Calendar {
		el := &calendar.EventListener{EventSourceName: es.Name, EventName: name, CalendarEventSource: cal,
			Namespace: "argo-events", Metrics: aemetrics.NewMetrics("argo-events")}
		if err := el.ValidateEventSource(context.Background()); err != nil {
			t.Fatalf("calendar EventSource: %v", err)
		}
		el.CalendarEventSource.Interval = "1s"
		ctx, cancel := context.WithCancel(logging.WithLogger(context.Background(), zap.NewNop().Sugar()))
		got := make(chan []byte, 1)
		done := make(chan error, 1)
		go func() {
			done <- el.StartListening(ctx, func(b []byte, _ ...eventsourcecommon.Option) error {
				select {
				case got <- b:
				default:
				}
				return nil
			})
		}()
		select {
		case b := <-got:
			cancel()
			<-done
			return esEvent(t, es.Name, name, string(aev1.CalendarEvent), b)
		case err := <-done:
			cancel()
			t.Fatalf("calendar listener stopped: %v", err)
		case <-time.After(10 * time.Second):
			cancel()
			t.Fatal("the calendar listener dispatched nothing in 10 s")
		}
	}
	panic("unreachable")
}

// reconcileReply is the function's answer to POST /reconcile; the counts
// are pointers so that a missing one is seen.
type reconcileReply struct {
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	Finished  *int   `json:"finished"`
	Failed    *int   `json:"failed"`
	Abandoned *int   `json:"abandoned"`
	Pending   *int   `json:"pending"`
	Replayed  int    `json:"replayed,omitempty"`
}

// reconcileCounts asserts a trigger run got 200 reconciled with every count.
func reconcileCounts(t *testing.T, r triggerResult) reconcileReply {
	t.Helper()
	var rep reconcileReply
	if err := strictDecode(r.body, &rep); err != nil {
		t.Fatalf("reconcile answer %d %q: %v", r.status, r.body, err)
	}
	if r.err != nil || r.failed != nil || r.attempts != 1 || r.status != 200 || rep.Status != "reconciled" ||
		rep.Finished == nil || rep.Failed == nil || rep.Abandoned == nil || rep.Pending == nil {
		t.Fatalf("wake-up: err %v (attempt %v), %d attempts, answer %d %s; want 200 reconciled with counts",
			r.err, r.failed, r.attempts, r.status, r.body)
	}
	return rep
}

// The calendar EventSource + Sensor of deploy/argo-events, run by the real
// Argo Events code: the HTTP trigger reaches the running function's
// /reconcile with the caller token and gets 200 reconciled; without the
// token it gets 401, which fails the trigger once, with no retry and no
// dead letter.
func TestWakeupSensorReconciles(t *testing.T) {
	s := startStack(t)
	useSensorSecret(t)
	sensor := loadWakeupSensor(t)
	es := loadEventSource(t, "argo-events/eventsource-calendar.yaml")

	if len(sensor.Spec.Dependencies) != 1 || len(sensor.Spec.Triggers) != 1 {
		t.Fatalf("want one dependency and one trigger: %+v", sensor.Spec)
	}
	dep, tr := sensor.Spec.Dependencies[0], sensor.Spec.Triggers[0]
	cal, ok := es.Spec.Calendar[dep.EventName]
	if dep.EventSourceName != es.Name || !ok {
		t.Fatalf("dependency %s/%s does not name the calendar EventSource %s", dep.EventSourceName, dep.EventName, es.Name)
	}
	if d, err := time.ParseDuration(cal.Interval); err != nil || d != wakeupPeriod {
		t.Errorf("calendar interval %q, want %s", cal.Interval, wakeupPeriod)
	}
	if tr.AtLeastOnce || tr.RetryStrategy != nil || tr.DlqTrigger != nil {
		t.Errorf("the wake-up retries or dead-letters (atLeastOnce %v, retryStrategy %v, dlqTrigger %v): a missed tick is replaced by the next one", tr.AtLeastOnce, tr.RetryStrategy, tr.DlqTrigger)
	}
	// Above the function's REQUEST_DEADLINE (25 s, the longest a reconcile
	// works) with room for a cold start, and below the period.
	if to := time.Duration(tr.Template.HTTP.Timeout) * time.Second; to < 45*time.Second || to >= wakeupPeriod {
		t.Errorf("HTTP timeout %s", to)
	}
	main := loadSensor(t)
	if got, want := tr.Template.HTTP.SecureHeaders, main.Spec.Triggers[0].Template.HTTP.SecureHeaders; len(got) != 1 || got[0].Name != want[0].Name ||
		*got[0].ValueFrom.SecretKeyRef != *want[0].ValueFrom.SecretKeyRef {
		t.Errorf("secureHeaders %+v, want the rollback Sensor's %+v", got, want)
	}

	r := runSensorTrigger(t, sensor, dep.Name, calendarEvent(t))
	reconcileCounts(t, r)
	ex := clusterProxy.take(functionHost)
	if len(ex) != 1 {
		t.Fatalf("the function got %d requests", len(ex))
	}
	e := ex[0]
	var body struct {
		Calendar struct {
			EventTime string `json:"eventTime"`
		} `json:"calendar"`
	}
	if err := strictDecode(e.Body, &body); err != nil || body.Calendar.EventTime == "" {
		t.Errorf("body %s: %v", e.Body, err)
	}
	if e.Method != "POST" || e.Path != "/reconcile" || e.Header.Get("Authorization") != "Bearer "+testToken ||
		e.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s, Authorization %q, Content-Type %q", e.Method, e.Path, e.Header.Get("Authorization"), e.Header.Get("Content-Type"))
	}
	if !strings.Contains(s.fn.Output(), `"msg":"reconciled"`) {
		t.Errorf("the function did not log the reconcile")
	}

	noToken := sensor.DeepCopy()
	noToken.Spec.Triggers[0].Template.HTTP.SecureHeaders = nil
	r = runSensorTrigger(t, noToken, dep.Name, calendarEvent(t))
	if r.err != nil || r.failed == nil || !strings.Contains(r.failed.Error(), "is not allowed") || r.status != 401 ||
		r.attempts != 1 || r.deadLetters != 0 {
		t.Fatalf("without the token: listener err %v, trigger err %v, status %d, %d attempts, %d dead letters; want one failed trigger on 401 and nothing else",
			r.err, r.failed, r.status, r.attempts, r.deadLetters)
	}
	clusterProxy.take(functionHost)
}

// The CronJob of deploy/wakeup-cronjob, its container's command, args and
// env run as written by /bin/sh and a local curl against the running
// function (the cluster URL reaches it through the test proxy, which curl
// uses through http_proxy: nothing in the script is substituted): 200
// reconciled, the token never on a command line, and a wrong token fails
// the Job.
func TestWakeupCronJobReconciles(t *testing.T) {
	for _, tool := range []string{"curl", "/bin/sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the CronJob's script: %v", tool, err)
		}
	}
	var cj batchv1.CronJob
	loadOne(t, "wakeup-cronjob/cronjob.yaml", &cj)
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	sched, err := cron.ParseStandard(cj.Spec.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if next := sched.Next(t0); sched.Next(next).Sub(next) != wakeupPeriod {
		t.Errorf("schedule %q: not every %s", cj.Spec.Schedule, wakeupPeriod)
	}
	job := cj.Spec.JobTemplate.Spec
	if job.ActiveDeadlineSeconds == nil || time.Duration(*job.ActiveDeadlineSeconds)*time.Second >= wakeupPeriod {
		t.Errorf("activeDeadlineSeconds %v: a Job must end before the next tick", job.ActiveDeadlineSeconds)
	}
	if job.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q", job.Template.Spec.RestartPolicy)
	}
	c := job.Template.Spec.Containers[0]
	if !regexp.MustCompile(`:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$`).MatchString(c.Image) {
		t.Errorf("image %q is not pinned to a version", c.Image)
	}

	// The token comes from the Secret and key the function's AUTH_TOKEN
	// reads (deploy/function/service.yaml, func.yaml).
	var svc servingv1.Service
	loadOne(t, "function/service.yaml", &svc)
	var fnRef *corev1.SecretKeySelector
	for _, e := range svc.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "AUTH_TOKEN" {
			fnRef = e.ValueFrom.SecretKeyRef
		}
	}
	env := func(token string) []string {
		out := []string{"PATH=" + os.Getenv("PATH"), "http_proxy=" + clusterProxy.srv.URL}
		found := false
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
				out = append(out, e.Name+"="+e.Value)
			case e.ValueFrom.SecretKeyRef != nil && fnRef != nil && *e.ValueFrom.SecretKeyRef == *fnRef:
				out = append(out, e.Name+"="+token)
				found = true
			default:
				t.Fatalf("env %s: unexpected source %+v", e.Name, e.ValueFrom)
			}
		}
		if !found {
			t.Fatalf("no env from the function's AUTH_TOKEN Secret %+v: %+v", fnRef, c.Env)
		}
		return out
	}
	run := func(token, path string) (stdout string, code int) {
		t.Helper()
		cmd := exec.Command(c.Command[0], append(append([]string{}, c.Command[1:]...), c.Args...)...)
		cmd.Env = env(token)
		if path != "" {
			cmd.Env[0] = "PATH=" + path + string(os.PathListSeparator) + os.Getenv("PATH")
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		if strings.Contains(errb.String(), token) || strings.Contains(out.String(), token) {
			t.Errorf("the script printed the token")
		}
		return out.String(), code
	}

	s := startStack(t)
	out, code := run(testToken, "")
	var rep reconcileReply
	if err := strictDecode([]byte(out), &rep); code != 0 || err != nil || rep.Status != "reconciled" || rep.Pending == nil {
		t.Fatalf("exit %d, output %q (%v)\n%s", code, out, err, s.fn.Output())
	}
	ex := clusterProxy.take(functionHost)
	if len(ex) != 1 || ex[0].Method != "POST" || ex[0].Path != "/reconcile" || ex[0].Header.Get("Authorization") != "Bearer "+testToken ||
		string(ex[0].Body) != "{}" || ex[0].Status != 200 {
		t.Fatalf("requests: %+v", ex)
	}

	// A wrong token: 401, curl exits 22, the Job fails; one request (401
	// is not retried).
	out, code = run("not-the-token", "")
	if code != 22 || !strings.Contains(out, "unauthorized") {
		t.Errorf("wrong token: exit %d, output %q; want exit 22 with the function's answer", code, out)
	}
	if ex := clusterProxy.take(functionHost); len(ex) != 1 || ex[0].Status != 401 {
		t.Errorf("wrong token: %d requests", len(ex))
	}

	// The token is handed to curl on stdin, never as an argument: a curl
	// that records what it gets.
	dir := t.TempDir()
	fake := `#!/bin/sh
printf '%s\n' "$@" > "` + filepath.Join(dir, "argv") + `"
cat > "` + filepath.Join(dir, "stdin") + `"
`
	if err := os.WriteFile(filepath.Join(dir, "curl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, code := run(testToken, dir); code != 0 {
		t.Fatalf("fake curl: exit %d", code)
	}
	argv, _ := os.ReadFile(filepath.Join(dir, "argv"))
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	if strings.Contains(string(argv), testToken) {
		t.Errorf("the token is on curl's command line: %q", argv)
	}
	if !strings.Contains(string(stdin), `header = "Authorization: Bearer `+testToken+`"`) {
		t.Errorf("curl's config on stdin: %q", stdin)
	}
	if !strings.Contains(string(argv), "http://"+functionHost+"/reconcile") {
		t.Errorf("the script does not call the cluster URL: %q", argv)
	}
}
