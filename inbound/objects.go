package inbound

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"function/incident"
)

// objectSource reads a Kubernetes object (a resource EventSource body, or an
// object posted as is) and decides from its status whether it failed: the
// function's own judgement, for senders that forward every change (method B
// of the seed article).
type objectSource struct{}

func (objectSource) name() string { return "object" }

// objectMeta is the part of ObjectMeta the function reads.
type objectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	UID             string            `json:"uid"`
	Labels          map[string]string `json:"labels"`
	Annotations     map[string]string `json:"annotations"`
	OwnerReferences []struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"ownerReferences"`
}

const (
	revisionAnnotation = "rollout.argoproj.io/revision"
	// ownerAnnotation names who owns the object, for this function;
	// entityRefAnnotation names the Backstage entity that owns it.
	ownerAnnotation     = "rollback-incident/owner"
	entityRefAnnotation = "backstage.io/entity-ref"
	// priorityAnnotation asks for a Jira priority (honoured when allowed).
	priorityAnnotation = "rollback-incident/priority"
)

// owner is who the object's annotations say owns it.
func (m objectMeta) owner() string {
	return cmp.Or(strings.TrimSpace(m.Annotations[ownerAnnotation]), strings.TrimSpace(m.Annotations[entityRefAnnotation]))
}

// annotate sets what every object's annotations tell.
func (m objectMeta) annotate(in *incident.Incident) {
	in.Owner = m.owner()
	in.RequestedPriority = strings.TrimSpace(m.Annotations[priorityAnnotation])
}

func (objectSource) decide(raw []byte, obj map[string]json.RawMessage, res resource) (Decision, error) {
	kind, _ := str(obj, "kind")
	event := res.event
	var (
		dec Decision
		err error
	)
	switch kind {
	case "Rollout":
		dec, err = decideRollout(raw)
	case "AnalysisRun":
		dec, err = decideAnalysisRun(raw)
	case "Application":
		dec, err = decideApplication(raw, res)
	case "ReplicaSet":
		dec, err = decideReplicaSet(raw, res)
	case "Workflow":
		dec, err = decideWorkflow(raw)
	default:
		return Decision{}, inputErrorf("unsupported object kind %s: expected Rollout, AnalysisRun, Application, Workflow or ReplicaSet", quoteShort(kind, 40))
	}
	if err != nil {
		return Decision{}, err
	}
	dec.Shape = "object." + kind
	if event == "DELETE" {
		// A deleted object is no new failure, whatever its last status
		// said, and no recovery either.
		return Decision{Ignored: fmt.Sprintf("%s was deleted", kind), Shape: dec.Shape}, nil
	}
	source := kind + " object"
	if event != "" {
		source = "Argo Events resource event (" + event + " " + kind + ")"
	}
	if dec.Incident != nil {
		dec.Incident.Source = source
	}
	if dec.Recovery != nil {
		dec.Recovery.Source = source
	}
	return dec, nil
}

// ---- Rollout ----------------------------------------------------------------

type analysisRunStatus struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

type rollout struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Strategy struct {
			Canary *struct {
				Steps []json.RawMessage `json:"steps"`
			} `json:"canary"`
			BlueGreen *json.RawMessage `json:"blueGreen"`
		} `json:"strategy"`
		Template podTemplate `json:"template"`
	} `json:"spec"`
	Status struct {
		Abort            bool               `json:"abort"`
		AbortedAt        string             `json:"abortedAt"`
		Phase            string             `json:"phase"`
		Message          string             `json:"message"`
		CurrentPodHash   string             `json:"currentPodHash"`
		StableRS         string             `json:"stableRS"`
		CurrentStepIndex *int               `json:"currentStepIndex"`
		Conditions       []rolloutCondition `json:"conditions"`
		Canary           struct {
			CurrentStepAnalysisRunStatus       *analysisRunStatus `json:"currentStepAnalysisRunStatus"`
			CurrentBackgroundAnalysisRunStatus *analysisRunStatus `json:"currentBackgroundAnalysisRunStatus"`
		} `json:"canary"`
		BlueGreen struct {
			PrePromotionAnalysisRunStatus  *analysisRunStatus `json:"prePromotionAnalysisRunStatus"`
			PostPromotionAnalysisRunStatus *analysisRunStatus `json:"postPromotionAnalysisRunStatus"`
		} `json:"blueGreen"`
	} `json:"status"`
}

type rolloutCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
	LastTransitionTime string `json:"lastTransitionTime"`
}

// healthyAt is when a Healthy rollout became so: the Healthy condition's
// transition (utils/conditions: RolloutHealthy "Rollout is healthy"), else
// the Completed one's.
func healthyAt(cs []rolloutCondition) time.Time {
	for _, typ := range []string{"Healthy", "Completed"} {
		for _, c := range cs {
			if c.Type == typ && c.Status == "True" {
				if t := parseTime(c.LastTransitionTime); !t.IsZero() {
					return t
				}
			}
		}
	}
	return time.Time{}
}

type podTemplate struct {
	Spec struct {
		Containers []struct {
			Name  string `json:"name"`
			Image string `json:"image"`
		} `json:"containers"`
	} `json:"spec"`
}

func (t podTemplate) images() []incident.Image {
	var out []incident.Image
	for _, c := range t.Spec.Containers {
		if c.Image != "" {
			out = append(out, incident.Image{Container: c.Name, Image: c.Image})
		}
	}
	return out
}

func decideRollout(raw []byte) (Decision, error) {
	var r rollout
	if err := json.Unmarshal(raw, &r); err != nil {
		return Decision{}, inputErrorf("Rollout: %s", jsonErrText(err))
	}
	m, st := r.Metadata, r.Status
	if err := checkNames("metadata.namespace", m.Namespace, "metadata.name", m.Name); err != nil {
		return Decision{}, err
	}
	// CalculateRolloutPhase makes an aborted or timed-out rollout Degraded;
	// status.abort covers the short window before the phase is recomputed.
	if st.Phase != "Degraded" && !st.Abort {
		phase := cmp.Or(st.Phase, "without a phase")
		dec := Decision{Ignored: fmt.Sprintf("rollout %s/%s is %s, not a failure", m.Namespace, m.Name, phase)}
		if st.Phase == "Healthy" {
			// CalculateRolloutPhase says Healthy only once the update is
			// complete and not aborted: at a new revision, or the same
			// one retried.
			dec.Recovery = &incident.Recovery{
				Kind: incident.KindRollout, Namespace: m.Namespace, Name: m.Name,
				Revision: m.Annotations[revisionAnnotation], State: "Healthy", At: healthyAt(st.Conditions),
			}
		}
		return dec, nil
	}
	in := &incident.Incident{
		Kind:      incident.KindRollout,
		Namespace: m.Namespace,
		Name:      m.Name,
		Revision:  m.Annotations[revisionAnnotation],
		PodHash:   st.CurrentPodHash,
		StableRS:  st.StableRS,
		Phase:     cmp.Or(st.Phase, "Degraded"),
		Message:   st.Message,
		Time:      parseTime(st.AbortedAt),
		Images:    r.Spec.Template.images(),
	}
	m.annotate(in)
	for _, c := range st.Conditions {
		if c.Reason == "RolloutAborted" || c.Reason == "ProgressDeadlineExceeded" || c.Type == "InvalidSpec" {
			in.Reason = c.Reason
			if in.Time.IsZero() {
				in.Time = parseTime(c.LastTransitionTime)
			}
			if in.Message == "" {
				in.Message = c.Message
			}
		}
	}
	if in.Reason == "" {
		if mm := reasonPrefix.FindStringSubmatch(st.Message); mm != nil {
			in.Reason = mm[1]
		} else if st.Abort {
			in.Reason = "RolloutAborted"
		}
	}
	if in.Revision == "" {
		if mm := revisionInMessage.FindStringSubmatch(in.Message); mm != nil {
			in.Revision = mm[1]
		}
	}
	switch {
	case r.Spec.Strategy.Canary != nil:
		in.Strategy = "canary"
		if n := len(r.Spec.Strategy.Canary.Steps); n > 0 && st.CurrentStepIndex != nil && !st.Abort {
			// On abort the controller resets the index to 0, so it says
			// nothing about the step reached; the AnalysisRun's step-index
			// label does.
			in.Step = fmt.Sprintf("%d/%d", *st.CurrentStepIndex, n)
		}
	case r.Spec.Strategy.BlueGreen != nil:
		in.Strategy = "blueGreen"
	}
	for _, ar := range []*analysisRunStatus{
		st.Canary.CurrentStepAnalysisRunStatus, st.Canary.CurrentBackgroundAnalysisRunStatus,
		st.BlueGreen.PrePromotionAnalysisRunStatus, st.BlueGreen.PostPromotionAnalysisRunStatus,
	} {
		if ar != nil && (ar.Status == "Failed" || ar.Status == "Error" || ar.Status == "Inconclusive") {
			a, ok := analysisInMessage(ar.Name, ar.Message)
			if !ok {
				a = incident.Analysis{Run: ar.Name}
			}
			a.Phase, a.Message = ar.Status, ar.Message
			in.Analysis = append(in.Analysis, a)
		}
	}
	return Decision{Incident: in}, nil
}

// ---- AnalysisRun ------------------------------------------------------------

type analysisRun struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Metrics []struct {
			Name         string                     `json:"name"`
			FailureLimit json.RawMessage            `json:"failureLimit"`
			Provider     map[string]json.RawMessage `json:"provider"`
		} `json:"metrics"`
	} `json:"spec"`
	Status struct {
		Phase         string `json:"phase"`
		Message       string `json:"message"`
		StartedAt     string `json:"startedAt"`
		CompletedAt   string `json:"completedAt"`
		MetricResults []struct {
			Name         string `json:"name"`
			Phase        string `json:"phase"`
			Message      string `json:"message"`
			Count        int    `json:"count"`
			Failed       int    `json:"failed"`
			Measurements []struct {
				Phase   string `json:"phase"`
				Value   string `json:"value"`
				Message string `json:"message"`
			} `json:"measurements"`
		} `json:"metricResults"`
	} `json:"status"`
}

func decideAnalysisRun(raw []byte) (Decision, error) {
	var ar analysisRun
	if err := json.Unmarshal(raw, &ar); err != nil {
		return Decision{}, inputErrorf("AnalysisRun: %s", jsonErrText(err))
	}
	m, st := ar.Metadata, ar.Status
	if err := checkNames("metadata.namespace", m.Namespace, "metadata.name", m.Name); err != nil {
		return Decision{}, err
	}
	if st.Phase != "Failed" && st.Phase != "Error" {
		phase := cmp.Or(st.Phase, "without a phase")
		return Decision{Ignored: fmt.Sprintf("analysis run %s/%s is %s, not a failure", m.Namespace, m.Name, phase)}, nil
	}
	// The incident is about the Rollout that owns the run, so that the
	// analysis failure and the abort it causes are one incident.
	owner := ""
	for _, o := range m.OwnerReferences {
		if o.Kind == "Rollout" {
			owner = o.Name
		}
	}
	if owner == "" {
		return Decision{}, inputErrorf("analysis run %s has no Rollout owner reference", quoteShort(m.Name, 64))
	}
	// The owner's name becomes the incident's identity: it meets the same
	// check as every other name.
	if err := checkNames("metadata.namespace", m.Namespace, "ownerReferences.name", owner); err != nil {
		return Decision{}, err
	}
	in := &incident.Incident{
		Kind:      incident.KindRollout,
		Namespace: m.Namespace,
		Name:      owner,
		Revision:  m.Annotations[revisionAnnotation],
		PodHash:   m.Labels["rollouts-pod-template-hash"],
		Phase:     st.Phase,
		Reason:    "AnalysisRun" + st.Phase,
		Message:   st.Message,
		Time:      parseTime(cmp.Or(st.CompletedAt, st.StartedAt)),
	}
	m.annotate(in)
	if idx, ok := m.Labels["step-index"]; ok {
		in.Step = "step " + idx
	}
	for _, mr := range st.MetricResults {
		if mr.Phase != "Failed" && mr.Phase != "Error" && mr.Phase != "Inconclusive" {
			continue
		}
		a := incident.Analysis{Run: m.Name, Metric: mr.Name, Phase: mr.Phase, Message: mr.Message, Count: mr.Count, Failed: mr.Failed}
		lastError := ""
		for _, ms := range mr.Measurements {
			if ms.Value != "" {
				a.Values = append(a.Values, ms.Value)
			}
			if ms.Phase == "Error" && ms.Message != "" {
				lastError = ms.Message
			}
		}
		if a.Message == "" {
			// An Error metric often measured nothing: the provider's error
			// is what there is to see.
			a.Message = lastError
		}
		for _, spec := range ar.Spec.Metrics {
			if spec.Name != mr.Name {
				continue
			}
			// failureLimit defaults to 0 (analysis_types.go).
			a.FailureLimit = cmp.Or(scalarText(spec.FailureLimit), "0")
			// A metric has exactly one provider; sorted for a stable
			// answer should a hand-written one carry more.
			providers := slices.Sorted(maps.Keys(spec.Provider))
			if len(providers) > 0 {
				a.Provider = providers[0]
			}
		}
		if st.Message != "" && strings.Contains(st.Message, `"`+mr.Name+`"`) {
			if a.Message == "" {
				a.Message = st.Message
			}
			if parsed, ok := analysisInMessage(m.Name, st.Message); ok && parsed.Metric == mr.Name {
				a.Assessment = parsed.Assessment
			}
		}
		in.Analysis = append(in.Analysis, a)
	}
	return Decision{Incident: in}, nil
}

// scalarText renders a JSON number or string ("2", "25%") as text.
func scalarText(raw json.RawMessage) string {
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// ---- Argo CD Application ----------------------------------------------------

type application struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Project     string `json:"project"`
		Destination struct {
			Server    string `json:"server"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
		Source struct {
			RepoURL        string `json:"repoURL"`
			TargetRevision string `json:"targetRevision"`
		} `json:"source"`
	} `json:"spec"`
	Status struct {
		Health struct {
			Status             string `json:"status"`
			Message            string `json:"message"`
			LastTransitionTime string `json:"lastTransitionTime"`
		} `json:"health"`
		Sync struct {
			Status   string `json:"status"`
			Revision string `json:"revision"`
		} `json:"sync"`
		History        []historyEntry `json:"history"`
		OperationState *struct {
			Phase      string        `json:"phase"`
			Message    string        `json:"message"`
			StartedAt  string        `json:"startedAt"`
			FinishedAt string        `json:"finishedAt"`
			Operation  argoOperation `json:"operation"`
			SyncResult struct {
				Revision string `json:"revision"`
			} `json:"syncResult"`
		} `json:"operationState"`
		Resources []struct {
			Kind      string `json:"kind"`
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			Health    *struct {
				Status  string `json:"status"`
				Message string `json:"message"`
			} `json:"health"`
		} `json:"resources"`
		Summary struct {
			Images       []string `json:"images"`
			ExternalURLs []string `json:"externalURLs"`
		} `json:"summary"`
	} `json:"status"`
}

func decideApplication(raw []byte, res resource) (Decision, error) {
	var app application
	if err := json.Unmarshal(raw, &app); err != nil {
		return Decision{}, inputErrorf("Application: %s", jsonErrText(err))
	}
	m, st := app.Metadata, app.Status
	if err := checkNames("metadata.namespace", m.Namespace, "metadata.name", m.Name); err != nil {
		return Decision{}, err
	}
	// A sync that went back to an older revision is a rollback; anything
	// else is judged by the application's health and sync.
	if dec, rolledBack, err := decideApplicationRollback(&app, res); err != nil || rolledBack {
		return dec, err
	}
	in := &incident.Incident{
		Kind:              incident.KindApplication,
		Namespace:         m.Namespace,
		Name:              m.Name,
		Revision:          st.Sync.Revision,
		Project:           app.Spec.Project,
		RepoURL:           app.Spec.Source.RepoURL,
		TargetRevision:    app.Spec.Source.TargetRevision,
		DestinationServer: app.Spec.Destination.Server,
		DestinationNS:     app.Spec.Destination.Namespace,
	}
	m.annotate(in)
	for _, r := range st.Resources {
		if r.Health != nil && (r.Health.Status == "Degraded" || r.Health.Status == "Missing") {
			in.Resources = append(in.Resources, incident.Resource{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Health: r.Health.Status, Message: r.Health.Message})
		}
	}
	for _, img := range st.Summary.Images {
		in.Images = append(in.Images, incident.Image{Image: img})
	}
	for _, u := range st.Summary.ExternalURLs {
		in.Links = append(in.Links, incident.Link{Title: "Application URL", URL: u})
	}
	op := st.OperationState
	if op != nil && op.SyncResult.Revision != "" {
		in.Revision = op.SyncResult.Revision
	}
	switch {
	case op != nil && (op.Phase == "Failed" || op.Phase == "Error"):
		in.Phase, in.Reason = "Sync"+op.Phase, "SyncFailed"
		in.Message = op.Message
		in.Time = parseTime(op.FinishedAt)
	case st.Health.Status == "Degraded":
		in.Phase, in.Reason = "Degraded", "HealthDegraded"
		in.Message = cmp.Or(st.Health.Message, firstResourceMessage(in.Resources))
		in.Time = parseTime(st.Health.LastTransitionTime)
		if op != nil && op.Phase == "Succeeded" {
			in.SyncedAt = parseTime(op.FinishedAt)
		}
	default:
		what := cmp.Or(st.Health.Status, "without a health status")
		dec := Decision{Ignored: fmt.Sprintf("Argo CD application %s/%s is %s, not a failure", m.Namespace, m.Name, what)}
		if st.Health.Status == "Healthy" && st.Sync.Status == "Synced" && (op == nil || op.Phase == "Succeeded") {
			dec.Recovery = &incident.Recovery{
				Kind: incident.KindApplication, Namespace: m.Namespace, Name: m.Name,
				Revision: in.Revision, State: "Healthy and Synced", At: parseTime(st.Health.LastTransitionTime),
			}
		}
		return dec, nil
	}
	attributeToRollout(in)
	return Decision{Incident: in}, nil
}

// ---- Argo Workflows Workflow ------------------------------------------------

type workflow struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Templates []struct {
			Container *struct {
				Image string `json:"image"`
			} `json:"container"`
			Name string `json:"name"`
		} `json:"templates"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		Message    string `json:"message"`
		FinishedAt string `json:"finishedAt"`
		Nodes      map[string]struct {
			DisplayName string `json:"displayName"`
			Name        string `json:"name"`
			Type        string `json:"type"`
			Phase       string `json:"phase"`
			Message     string `json:"message"`
			FinishedAt  string `json:"finishedAt"`
		} `json:"nodes"`
	} `json:"status"`
}

func decideWorkflow(raw []byte) (Decision, error) {
	var wf workflow
	if err := json.Unmarshal(raw, &wf); err != nil {
		return Decision{}, inputErrorf("Workflow: %s", jsonErrText(err))
	}
	m, st := wf.Metadata, wf.Status
	if err := checkNames("metadata.namespace", m.Namespace, "metadata.name", m.Name); err != nil {
		return Decision{}, err
	}
	if st.Phase != "Failed" && st.Phase != "Error" {
		phase := cmp.Or(st.Phase, "without a phase")
		dec := Decision{Ignored: fmt.Sprintf("workflow %s/%s is %s, not a failure", m.Namespace, m.Name, phase)}
		if st.Phase == "Succeeded" {
			// `argo retry` runs the failed Workflow again under the same
			// uid: its success ends the failure's incident.
			dec.Recovery = &incident.Recovery{
				Kind: incident.KindWorkflow, Namespace: m.Namespace, Name: m.Name,
				Revision: m.UID, State: "Succeeded", At: parseTime(st.FinishedAt),
			}
		}
		return dec, nil
	}
	in := &incident.Incident{
		Kind:      incident.KindWorkflow,
		Namespace: m.Namespace,
		Name:      m.Name,
		Revision:  m.UID, // every run is its own incident
		Phase:     st.Phase,
		Reason:    "Workflow" + st.Phase,
		Message:   st.Message,
		Time:      parseTime(st.FinishedAt),
	}
	m.annotate(in)
	// The failed leaf (a Pod node) says what broke; the parents only repeat
	// "child '…' failed". Pick the earliest-finished one, by name for ties,
	// so the choice does not depend on map order.
	var ids []string
	for id, n := range st.Nodes {
		if n.Type == "Pod" && (n.Phase == "Failed" || n.Phase == "Error") {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := strings.Compare(st.Nodes[a].FinishedAt, st.Nodes[b].FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	if len(ids) > 0 {
		n := st.Nodes[ids[0]]
		in.FailedNode = cmp.Or(n.DisplayName, n.Name)
		if n.Message != "" {
			in.FailedNode += ": " + n.Message
		}
	}
	seen := map[string]bool{}
	for _, t := range wf.Spec.Templates {
		if t.Container != nil && t.Container.Image != "" && !seen[t.Container.Image] {
			seen[t.Container.Image] = true
			in.Images = append(in.Images, incident.Image{Container: t.Name, Image: t.Container.Image})
		}
	}
	return Decision{Incident: in}, nil
}
