// Package incident holds the one model every inbound event is normalised into,
// and the fingerprint that identifies a rollback across deliveries, envelopes
// and replicas. Both are defined here and nowhere else.
package incident

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"
)

// Kinds of the object an incident is about. An AnalysisRun failure is
// reported against the Rollout that owns it, so that the analysis failure,
// the abort and the Degraded phase of one rollback share one incident.
const (
	KindRollout     = "Rollout"
	KindApplication = "Application"
	KindWorkflow    = "Workflow"
	// KindDeployment is a Kubernetes Deployment, whose only incident is a
	// manual rollback seen in its ReplicaSets (`kubectl rollout undo`).
	KindDeployment = "Deployment"
)

// Incident is a failed deployment, normalised from whatever envelope and
// source reported it. Every string in it came from an event and is untrusted:
// renderers escape it for their output format.
type Incident struct {
	// Source says, for people, what reported the failure, e.g. "Argo
	// Rollouts notification" or "Argo Events resource event (UPDATE
	// Rollout)". Never part of the fingerprint.
	Source string
	// Sources lists every reporter of a merged incident, first reporter
	// first, each once (see Merge). Empty for a single decoded event: its
	// Source is the one.
	Sources []string

	Cluster   string
	Kind      string // KindRollout, KindApplication, KindWorkflow or KindDeployment
	Namespace string
	Name      string

	// Revision identifies the failed change: the Rollout revision
	// (rollout.argoproj.io/revision), the Argo CD sync revision, or the
	// Workflow uid. Empty when the event carried none.
	Revision string
	PodHash  string // Rollout pod-template hash of the failed ReplicaSet
	StableRS string // pod-template hash of the stable ReplicaSet

	Phase   string // Degraded, Failed, Error, ...
	Reason  string // RolloutAborted, AnalysisRunFailed, ProgressDeadlineExceeded, ...
	Message string

	// Time is when the failure happened (abortedAt, completion time, or the
	// notification timestamp); zero when unknown. A merged incident keeps
	// the earliest: the first sign of the failure.
	Time time.Time
	// StateAt is when Phase, Reason and Message were observed. Zero in a
	// decoded event (its Time is the moment); Merge sets it to the newest
	// event's time, so that a late delivery of an older event does not
	// take the incident back to an earlier state.
	StateAt time.Time

	Strategy string // "canary" or "blueGreen" for Rollouts
	Step     string // the step reached, e.g. "3/5"

	Images []Image // the failed (canary / new) images
	// StableImages are the images that stayed in service, when the event
	// says (the Rollout object itself does not).
	StableImages []Image
	Analysis     []Analysis
	Resources    []Resource // degraded resources reported by Argo CD
	Links        []Link

	// Argo CD facts.
	Application    string // "<namespace>/<name>" of the Argo CD Application, when the incident is its Rollout's
	SyncRevision   string // the Argo CD sync revision, when the incident is its Rollout's
	Project        string // Argo CD project
	RepoURL        string
	TargetRevision string
	// DestinationServer and DestinationNS say where the application deploys
	// to; shown to responders, not part of the fingerprint.
	DestinationServer string
	DestinationNS     string
	// SyncedAt is when Argo CD finished the sync that deployed the failed
	// change: the lead-up, not the failure.
	SyncedAt time.Time

	// Workflow facts.
	FailedNode string

	// Manual rollback facts: an older pod template made current again by
	// `kubectl argo rollouts undo`, the dashboard's Rollback button,
	// `kubectl rollout undo`, a revert in git or an Argo CD rollback.
	// Reason is ReasonManualRollback.
	RevertedFrom string   // the revision that was serving before the rollback
	RevertedTo   string   // the earlier revision whose template was restored
	ImagesBefore []Image  // the images of RevertedFrom (Images holds the restored ones)
	ReplicaSets  []string // the ReplicaSets involved, "name (revision N)"
	InitiatedBy  string   // who started it, when the object says (Argo CD's initiatedBy)

	// Owner is who owns the object, as the object says: the
	// rollback-incident/owner annotation, else the Backstage entity in the
	// backstage.io/entity-ref annotation, or the payload's "owner". An
	// entity reference (group:default/payments) also lets Backstage notify it.
	Owner string
	// RequestedPriority is the Jira priority the object asks for (the
	// rollback-incident/priority annotation or the payload's "priority").
	// Honoured only when allowed by configuration.
	RequestedPriority string

	// RequestedProject and RequestedIssueType are the Jira project and issue
	// type the payload asked for (jiraProject, jiraIssueType). Honoured only
	// when allowed by configuration.
	RequestedProject   string
	RequestedIssueType string

	// Joins names the fingerprint of an earlier incident this event belongs
	// to when that incident exists: a manual rollback that follows an
	// aborted rollout is news of the abort's incident, not a second one.
	// When no record exists under it, the event opens its own incident.
	Joins string

	// Recovery is set once the object is healthy again (see Recover).
	Recovery *Recovery

	// EventID is the delivery's id (CloudEvent id when there is one). It is
	// for logs only: every retry of one rollback carries a new id.
	EventID string
}

// ReasonManualRollback is the Reason of an incident about a rollback made
// by hand (or by a revert), which Argo never announces.
const ReasonManualRollback = "ManualRollback"

// Image is a container image of the failed workload.
type Image struct {
	Container string
	Image     string
}

// Analysis is one failed analysis metric.
type Analysis struct {
	Run          string // AnalysisRun name
	Metric       string
	Phase        string
	Message      string
	Provider     string
	FailureLimit string
	Count        int
	Failed       int
	Values       []string // measured values, oldest first
	// Assessment is why the controller assessed the metric so, in its own
	// words: "failed (3) > failureLimit (2)".
	Assessment string
}

// Resource is a Kubernetes resource reported unhealthy.
type Resource struct {
	Kind      string
	Namespace string
	Name      string
	Health    string
	Message   string
}

// Link is a URL a responder may want to open.
type Link struct {
	Title string
	URL   string
}

// Subject is "<namespace>/<name>", or the name alone for cluster-scoped
// objects.
func (in *Incident) Subject() string {
	if in.Namespace == "" {
		return in.Name
	}
	return in.Namespace + "/" + in.Name
}

// Fingerprint identifies one rollback: the same failed change of the same
// object in the same cluster, whichever source, envelope or delivery reported
// it. It never depends on a delivery id or on the time the event arrived.
func (in *Incident) Fingerprint() string {
	return hashParts(in.Cluster, in.Kind, in.Namespace, in.Name, in.Revision)
}

func hashParts(parts ...string) string {
	h := sha256.New()
	for _, part := range parts {
		// Length-prefix each part so that ("a/b", "c") and ("a", "b/c")
		// cannot collide.
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write([]byte(strings.ToLower(part)))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ObjectFingerprint identifies the object whatever the revision: incidents
// of one object share it, so a new failure can link to the previous one.
func (in *Incident) ObjectFingerprint() string {
	return hashParts(in.Cluster, in.Kind, in.Namespace, in.Name)
}

// NewsHash identifies what this event says about the rollback (phase,
// reason, message). Deliveries that say the same thing share it, whatever
// the envelope or source; a change (analysis failed → aborted → degraded)
// is news for the timeline.
func (in *Incident) NewsHash() string {
	return hashParts(in.Phase, in.Reason, in.Message)
}

// Label is the Jira label that carries the fingerprint. Labels may not hold
// white space, and a fixed prefix keeps them greppable.
func (in *Incident) Label() string { return LabelPrefix + in.Fingerprint() }

// ObjectLabel is the Jira label shared by every incident of the object.
func (in *Incident) ObjectLabel() string { return ObjectLabelPrefix + in.ObjectFingerprint() }

// Label prefixes: fixed, so that the labels are greppable and the two kinds
// cannot be confused.
const (
	LabelPrefix       = "rbk-"
	ObjectLabelPrefix = "rbk-obj-"
)
