package inbound

import (
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"function/incident"
)

// source interprets one recognised payload.
type source interface {
	name() string
	// decide returns the decision for obj, whose JSON is raw. res says
	// whether obj came from a resource watch (ADD, UPDATE or DELETE, and
	// the object before an UPDATE).
	decide(raw []byte, obj map[string]json.RawMessage, res resource) (Decision, error)
}

func detectSource(obj map[string]json.RawMessage) (source, bool) {
	if _, ok := str(obj, "kind"); ok && has(obj, "apiVersion") && isObject(obj["metadata"]) {
		return objectSource{}, true
	}
	if _, ok := str(obj, "rolloutName"); ok {
		return rolloutsNotification{}, true
	}
	if app, ok := str(obj, "app"); ok && app != "" {
		for _, k := range []string{"healthStatus", "operationPhase", "syncStatus"} {
			if has(obj, k) {
				return argocdNotification{}, true
			}
		}
		if s, _ := str(obj, "source"); s == "argocd" {
			return argocdNotification{}, true
		}
	}
	return nil, false
}

// revisionInMessage finds the Rollout revision in the controller's abort
// message, "Rollout aborted update to revision 7: …" (argo-rollouts
// rollout/sync.go). The seed notification body carries no other revision, and
// without it the notification and the resource event of one rollback would
// not share a fingerprint.
var revisionInMessage = regexp.MustCompile(`aborted update to revision (\d+)`)

// metricAssessed finds the failed metric in the AnalysisRun's message,
// which the controller also puts into the Rollout's abort message:
// `Metric "success-rate" assessed Failed due to failed (3) > failureLimit (2)`
// (argo-rollouts analysis/analysis.go; "metric" in older versions). The
// reasons are failed/failureLimit, inconclusive/inconclusiveLimit and
// consecutiveErrors/consecutiveErrorLimit.
var metricAssessed = regexp.MustCompile(`[Mm]etric "([^"]+)" assessed ([A-Za-z]+) due to (([a-zA-Z]+) \((\d+)\) > ([a-zA-Z]+) \((-?\d+)\))`)

// analysisInMessage reads the failed metric a controller message names,
// with the run it belongs to when the caller knows it.
func analysisInMessage(run, msg string) (incident.Analysis, bool) {
	m := metricAssessed.FindStringSubmatch(msg)
	if m == nil {
		return incident.Analysis{}, false
	}
	a := incident.Analysis{Run: run, Metric: m[1], Phase: m[2], Assessment: m[3]}
	if m[4] == "failed" {
		a.Failed, _ = strconv.Atoi(m[5])
	}
	if m[6] == "failureLimit" {
		a.FailureLimit = m[7]
	}
	return a, true
}

// reasonPrefix is the "<Reason>: " that CalculateRolloutPhase puts in front
// of the condition message in status.message.
var reasonPrefix = regexp.MustCompile(`^([A-Z][A-Za-z]+): `)

// Kubernetes object names: DNS-1123 subdomains; namespaces: DNS-1123 labels.
// Checking them keeps garbage out of titles, labels and JQL, and turns a
// mis-templated notification (e.g. `["checkout-api"]`) into a clear 400.
// (Hand-written rather than regular expressions: compiling the bounded
// repetition costs milliseconds at start, which a scale-to-zero function
// pays on every cold start.)
var (
	dns1123Subdomain = dnsName{max: 253, dots: true}
	dns1123Label     = dnsName{max: 63}
)

type dnsName struct {
	max  int
	dots bool
}

// MatchString reports whether s is a valid name: lowercase letters, digits
// and '-' (and '.' for subdomains), starting and ending with a letter or
// digit, at most max long.
func (d dnsName) MatchString(s string) bool {
	if len(s) == 0 || len(s) > d.max {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !alnum(c) && c != '-' && !(d.dots && c == '.') {
			return false
		}
	}
	return alnum(s[0]) && alnum(s[len(s)-1])
}

func checkNames(field, namespace, nameField, name string) error {
	if name == "" {
		return inputErrorf("%s is missing", nameField)
	}
	if !dns1123Subdomain.MatchString(name) {
		return inputErrorf("%s %s is not a valid Kubernetes name", nameField, quoteShort(name, 64))
	}
	if namespace == "" {
		return inputErrorf("%s is missing for %s", field, quoteShort(name, 64))
	}
	if !dns1123Label.MatchString(namespace) {
		return inputErrorf("%s %s is not a valid Kubernetes namespace", field, quoteShort(namespace, 64))
	}
	return nil
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// ---- Argo Rollouts notification body ----------------------------------------

// rolloutsNotification is the body the Rollouts notification webhook
// template renders: the seed's fields, plus richer optional ones.
type rolloutsNotification struct{}

func (rolloutsNotification) name() string { return "rollouts-notification" }

func (rolloutsNotification) decide(_ []byte, obj map[string]json.RawMessage, _ resource) (Decision, error) {
	get := func(k string) string { s, _ := str(obj, k); return s }
	name, ns := get("rolloutName"), get("namespace")
	if err := checkNames("namespace", ns, "rolloutName", name); err != nil {
		return Decision{}, err
	}
	in := &incident.Incident{
		Source:             "Argo Rollouts notification",
		Kind:               incident.KindRollout,
		Namespace:          ns,
		Name:               name,
		Phase:              get("phase"),
		Message:            get("message"),
		Reason:             cmp.Or(get("reason"), get("trigger")),
		Revision:           cmp.Or(get("revision"), get("rolloutRevision")),
		PodHash:            cmp.Or(get("podHash"), get("currentPodHash"), get("podTemplateHash")),
		StableRS:           get("stableRS"),
		Strategy:           get("strategy"),
		Step:               get("step"),
		Time:               parseTime(cmp.Or(get("abortedAt"), get("timestamp"))),
		RequestedProject:   get("jiraProject"),
		RequestedIssueType: get("jiraIssueType"),
		RequestedPriority:  get("priority"),
		Owner:              cmp.Or(get("owner"), get("entityRef")),
	}
	if in.Revision == "" {
		if m := revisionInMessage.FindStringSubmatch(in.Message); m != nil {
			in.Revision = m[1]
		}
	}
	if m := reasonPrefix.FindStringSubmatch(in.Message); m != nil && (in.Reason == "" || strings.HasPrefix(in.Reason, "on-")) {
		in.Reason = m[1]
	}
	if a, ok := analysisInMessage(get("analysisRun"), in.Message); ok {
		in.Analysis = append(in.Analysis, a)
	}
	in.Images = notificationImages(obj, "images", "image")
	in.StableImages = notificationImages(obj, "stableImages", "stableImage")
	for _, k := range []string{"rolloutURL", "dashboardURL", "appURL"} {
		if u := get(k); u != "" {
			in.Links = append(in.Links, incident.Link{Title: linkTitle(k), URL: u})
		}
	}

	aborted := get("abortedAt") != "" || boolField(obj, "aborted")
	switch {
	case in.Phase == "Degraded" || aborted:
		if in.Phase == "" {
			in.Phase = "Degraded"
		}
	case failureReason(in.Reason):
		// on-analysis-run-failed / -error fire before the phase turns Degraded.
	case in.Phase == "":
		return Decision{}, inputErrorf("notification for rollout %s has no phase: cannot tell whether it failed", quoteShort(name, 64))
	default:
		dec := Decision{Ignored: fmt.Sprintf("rollout %s/%s is %s, not a failure", ns, name, in.Phase)}
		if in.Phase == "Healthy" {
			// e.g. on-rollout-completed: healthy again, if it had failed.
			dec.Recovery = &incident.Recovery{
				Kind: incident.KindRollout, Namespace: ns, Name: name, Revision: in.Revision,
				State: "Healthy", At: in.Time, Source: in.Source,
			}
		}
		return dec, nil
	}
	return Decision{Incident: in}, nil
}

// failureReason reports whether a Kubernetes event reason (or the trigger
// named after it) means the rollout failed.
func failureReason(r string) bool {
	switch strings.TrimPrefix(r, "on-") {
	case "RolloutAborted", "rollout-aborted", "AnalysisRunFailed", "analysis-run-failed",
		"AnalysisRunError", "analysis-run-error", "ProgressDeadlineExceeded":
		return true
	}
	return false
}

func boolField(obj map[string]json.RawMessage, k string) bool {
	var b bool
	if json.Unmarshal(obj[k], &b) == nil {
		return b
	}
	s, _ := str(obj, k)
	v, _ := strconv.ParseBool(s)
	return v
}

// notificationImages accepts a list field as ["img", …] or
// [{"container","image"}, …], or a single image field.
func notificationImages(obj map[string]json.RawMessage, list, single string) []incident.Image {
	var out []incident.Image
	var strs []string
	if json.Unmarshal(obj[list], &strs) == nil {
		for _, s := range strs {
			if s != "" {
				out = append(out, incident.Image{Image: s})
			}
		}
		return out
	}
	var objs []struct {
		Container string `json:"container"`
		Name      string `json:"name"`
		Image     string `json:"image"`
	}
	if json.Unmarshal(obj[list], &objs) == nil {
		for _, o := range objs {
			if o.Image != "" {
				out = append(out, incident.Image{Container: cmp.Or(o.Container, o.Name), Image: o.Image})
			}
		}
		return out
	}
	if s, ok := str(obj, single); ok && s != "" {
		out = append(out, incident.Image{Image: s})
	}
	return out
}

func linkTitle(key string) string {
	switch key {
	case "appURL":
		return "Argo CD application"
	case "rolloutURL", "dashboardURL":
		return "Argo Rollouts dashboard"
	}
	return key
}

// ---- Argo CD notification body ------------------------------------------------

type argocdNotification struct{}

func (argocdNotification) name() string { return "argocd-notification" }

func (argocdNotification) decide(raw []byte, obj map[string]json.RawMessage, _ resource) (Decision, error) {
	if has(obj, "history") {
		// The on-rollback template sends the application's history: the
		// decision is whether the last sync went back to an older entry.
		return decideArgoCDRollbackNotification(raw)
	}
	var b struct {
		App                  string `json:"app"`
		AppNamespace         string `json:"appNamespace"`
		Project              string `json:"project"`
		DestinationNamespace string `json:"destinationNamespace"`
		DestinationServer    string `json:"destinationServer"`
		RepoURL              string `json:"repoURL"`
		TargetRevision       string `json:"targetRevision"`
		HealthStatus         string `json:"healthStatus"`
		HealthMessage        string `json:"healthMessage"`
		SyncStatus           string `json:"syncStatus"`
		SyncRevision         string `json:"syncRevision"`
		OperationPhase       string `json:"operationPhase"`
		OperationMessage     string `json:"operationMessage"`
		OperationRevision    string `json:"operationRevision"`
		FinishedAt           string `json:"finishedAt"`
		// HealthTransitionTime is optional: the template may add
		// status.health.lastTransitionTime (Argo CD 2.x and later).
		HealthTransitionTime string          `json:"healthLastTransitionTime"`
		Trigger              string          `json:"trigger"`
		DegradedResources    argoCDResources `json:"degradedResources"`
		AppURL               string          `json:"appURL"`
		Images               []string        `json:"images"`
		JiraProject          string          `json:"jiraProject"`
		JiraIssueType        string          `json:"jiraIssueType"`
		Owner                string          `json:"owner"`
		Priority             string          `json:"priority"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return Decision{}, inputErrorf("Argo CD notification: %s", jsonErrText(err))
	}
	ns := cmp.Or(b.AppNamespace, "argocd")
	if err := checkNames("appNamespace", ns, "app", b.App); err != nil {
		return Decision{}, err
	}
	in := &incident.Incident{
		Source:             "Argo CD notification",
		Kind:               incident.KindApplication,
		Namespace:          ns,
		Name:               b.App,
		Revision:           cmp.Or(b.OperationRevision, b.SyncRevision),
		Project:            b.Project,
		RepoURL:            b.RepoURL,
		TargetRevision:     b.TargetRevision,
		DestinationServer:  b.DestinationServer,
		DestinationNS:      b.DestinationNamespace,
		RequestedProject:   b.JiraProject,
		RequestedIssueType: b.JiraIssueType,
		RequestedPriority:  b.Priority,
		Owner:              b.Owner,
	}
	in.Resources = b.DegradedResources.resources()
	for _, img := range b.Images {
		in.Images = append(in.Images, incident.Image{Image: img})
	}
	if b.AppURL != "" {
		in.Links = append(in.Links, incident.Link{Title: "Argo CD application", URL: b.AppURL})
	}
	switch {
	case b.OperationPhase == "Failed" || b.OperationPhase == "Error":
		in.Phase, in.Reason = "Sync"+b.OperationPhase, "SyncFailed"
		in.Message = cmp.Or(b.OperationMessage, b.HealthMessage)
		// The failed operation's end is the failure.
		in.Time = parseTime(b.FinishedAt)
	case b.HealthStatus == "Degraded":
		in.Phase, in.Reason = "Degraded", "HealthDegraded"
		in.Message = cmp.Or(b.HealthMessage, firstResourceMessage(in.Resources))
		// finishedAt is the end of the sync that deployed the change, the
		// lead-up: the health turned later, at a time the catalog's
		// template does not carry.
		in.Time = parseTime(b.HealthTransitionTime)
		if b.OperationPhase == "Succeeded" {
			in.SyncedAt = parseTime(b.FinishedAt)
		}
	default:
		what := cmp.Or(b.HealthStatus, b.OperationPhase, b.SyncStatus, "in an unknown state")
		dec := Decision{Ignored: fmt.Sprintf("Argo CD application %s/%s is %s, not a failure", ns, b.App, what)}
		if b.HealthStatus == "Healthy" && b.SyncStatus == "Synced" {
			dec.Ignored = fmt.Sprintf("Argo CD application %s/%s is Healthy and Synced, not a failure", ns, b.App)
			dec.Recovery = &incident.Recovery{
				Kind: incident.KindApplication, Namespace: ns, Name: b.App,
				Revision: cmp.Or(b.OperationRevision, b.SyncRevision), State: "Healthy and Synced",
				At: parseTime(b.HealthTransitionTime), Source: in.Source,
			}
		}
		return dec, nil
	}
	attributeToRollout(in)
	return Decision{Incident: in}, nil
}

// attributeToRollout files a degraded Application under its Rollout when
// exactly one Rollout is why: one rollback fires the Rollouts abort and Argo
// CD's health-degraded notification, and responders want one incident. The
// Rollout's health message carries the revision ("Rollout aborted update to
// revision 7"), so the fingerprint matches the one the Rollout's own events
// give; phase, reason and message become the Rollout's too, so that the
// same state is no news on the timeline. Without a revision in the message
// the incident stays the Application's.
func attributeToRollout(in *incident.Incident) {
	if in.Kind != incident.KindApplication || in.Reason != "HealthDegraded" {
		return
	}
	r, ok := soleAbortedRollout(in.Resources, in.DestinationNS)
	if !ok {
		return
	}
	in.Application, in.SyncRevision = in.Subject(), in.Revision
	in.Kind, in.Namespace, in.Name, in.Revision = incident.KindRollout, r.Namespace, r.Name, r.Revision
	in.Phase, in.Message = "Degraded", r.Message
	if m := reasonPrefix.FindStringSubmatch(r.Message); m != nil {
		in.Reason = m[1]
	}
	if a, ok := analysisInMessage("", r.Message); ok {
		in.Analysis = append(in.Analysis, a)
	}
}

// soleAbortedRollout returns the Rollout (kind, namespace, name, the
// revision its health message names, and that message) when exactly one
// Rollout among an application's resources is Degraded and its message
// names the revision ("Rollout aborted update to revision 7").
func soleAbortedRollout(resources []incident.Resource, destinationNS string) (incident.Incident, bool) {
	var rollouts []incident.Resource
	for _, r := range resources {
		if r.Kind == incident.KindRollout && r.Health == "Degraded" {
			rollouts = append(rollouts, r)
		}
	}
	if len(rollouts) != 1 {
		return incident.Incident{}, false
	}
	r := rollouts[0]
	rev := revisionInMessage.FindStringSubmatch(r.Message)
	ns := cmp.Or(r.Namespace, destinationNS)
	if rev == nil || checkNames("namespace", ns, "name", r.Name) != nil {
		return incident.Incident{}, false
	}
	return incident.Incident{Kind: incident.KindRollout, Namespace: ns, Name: r.Name, Revision: rev[1], Message: r.Message}, true
}

func firstResourceMessage(rs []incident.Resource) string {
	for _, r := range rs {
		if r.Message != "" {
			return r.Message
		}
	}
	return ""
}

// argoCDResources is the degradedResources list the Argo CD notification
// templates send.
type argoCDResources []struct {
	Kind          string `json:"kind"`
	Namespace     string `json:"namespace"`
	Name          string `json:"name"`
	HealthStatus  string `json:"healthStatus"`
	HealthMessage string `json:"healthMessage"`
}

func (rs argoCDResources) resources() []incident.Resource {
	var out []incident.Resource
	for _, r := range rs {
		out = append(out, incident.Resource{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Health: r.HealthStatus, Message: r.HealthMessage})
	}
	return out
}
