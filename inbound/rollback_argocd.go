package inbound

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"function/incident"
)

// An Argo CD rollback (`argocd app rollback`, the UI's Rollback button) is
// "just a convenience around Sync" (server/application/application.go
// Rollback): an operation that syncs to the revision and source of an older
// entry of status.history, initiatedBy the user. `argocd app sync
// --revision <older>` does the same. When a sync succeeds, the controller
// first appends an entry to status.history (controller/state.go
// persistRevisionHistory: the synced revision, the operation's startedAt as
// deployStartedAt, its initiatedBy), then marks the operation Succeeded
// (appcontroller.go setOperationState). So a rollback is a succeeded sync
// whose history entry goes back to the revision of an entry older than the
// one it replaced; a sync of the current revision again, or of a new one, is
// not.

// historyEntry is one entry of an Application's status.history.
type historyEntry struct {
	ID              int64     `json:"id"`
	Revision        string    `json:"revision"`
	Revisions       []string  `json:"revisions"` // multi-source applications
	DeployStartedAt string    `json:"deployStartedAt"`
	DeployedAt      string    `json:"deployedAt"`
	InitiatedBy     initiator `json:"initiatedBy"`
}

// key is what identifies the deployed revision of the entry.
func (h historyEntry) key() string {
	if h.Revision != "" {
		return h.Revision
	}
	return strings.Join(h.Revisions, ",")
}

// initiator is an Argo CD OperationInitiator.
type initiator struct {
	Username  string `json:"username"`
	Automated bool   `json:"automated"`
}

func (i initiator) String() string {
	switch {
	case i.Username != "":
		return i.Username
	case i.Automated:
		return "automated sync"
	}
	return ""
}

// syncOperation is the part of status.operationState the decision reads.
type syncOperation struct {
	Phase      string        `json:"phase"`
	StartedAt  string        `json:"startedAt"`
	FinishedAt string        `json:"finishedAt"`
	Operation  argoOperation `json:"operation"`
}

// argoOperation is an Argo CD Operation.
type argoOperation struct {
	Sync *struct {
		DryRun bool `json:"dryRun"`
		// Resources makes a partial sync, which adds no history entry.
		Resources []json.RawMessage `json:"resources"`
	} `json:"sync"`
	InitiatedBy initiator `json:"initiatedBy"`
}

// appRollback is a rollback found in an application's history: last went
// back to target's revision, replacing prev.
type appRollback struct {
	last, prev, target historyEntry
	by                 string
}

// findRollback reports whether op is a succeeded sync whose history entry
// returns to an older revision.
func findRollback(history []historyEntry, op *syncOperation) (appRollback, bool) {
	if op == nil || op.Phase != "Succeeded" || op.Operation.Sync == nil || op.Operation.Sync.DryRun || len(op.Operation.Sync.Resources) > 0 {
		return appRollback{}, false
	}
	h := slices.Clone(history)
	slices.SortFunc(h, func(a, b historyEntry) int { return cmp.Compare(a.ID, b.ID) })
	n := len(h)
	if n < 3 {
		return appRollback{}, false
	}
	last, prev := h[n-1], h[n-2]
	// The newest entry must be this operation's: a later partial or
	// dry-run sync adds none, and must not be taken for the rollback.
	if last.DeployStartedAt != "" && op.StartedAt != "" && !parseTime(last.DeployStartedAt).Equal(parseTime(op.StartedAt)) {
		return appRollback{}, false
	}
	if last.key() == "" || last.key() == prev.key() {
		return appRollback{}, false
	}
	for i := n - 3; i >= 0; i-- {
		if h[i].key() == last.key() {
			by := cmp.Or(op.Operation.InitiatedBy.String(), last.InitiatedBy.String())
			return appRollback{last: last, prev: prev, target: h[i], by: by}, true
		}
	}
	return appRollback{}, false
}

// appFacts is what both the Application object and the on-rollback
// notification say about an application.
type appFacts struct {
	namespace, name                   string
	project, repoURL, targetRevision  string
	destServer, destNS                string
	images                            []string
	resources                         []incident.Resource
	links                             []incident.Link
	owner, jiraProject, jiraIssueType string
}

// rollbackIncident is the incident for rb. It joins the incident of what
// the rollback undid: the aborted Rollout when the application still shows
// exactly one (so that the Argo CD rollback and the Rollout's ReplicaSet
// are one incident with the abort), else the application's own incident at
// the revision it left.
func (f *appFacts) rollbackIncident(rb appRollback, op *syncOperation) Decision {
	in := &incident.Incident{
		Kind:               incident.KindApplication,
		Namespace:          f.namespace,
		Name:               f.name,
		Revision:           rb.last.key(),
		RevertedFrom:       rb.prev.key(),
		RevertedTo:         rb.target.key(),
		Phase:              phaseRolledBack,
		Reason:             incident.ReasonManualRollback,
		Time:               parseTime(cmp.Or(op.FinishedAt, rb.last.DeployedAt)),
		InitiatedBy:        rb.by,
		Project:            f.project,
		RepoURL:            f.repoURL,
		TargetRevision:     f.targetRevision,
		DestinationServer:  f.destServer,
		DestinationNS:      f.destNS,
		Resources:          f.resources,
		Links:              f.links,
		Owner:              f.owner,
		RequestedProject:   f.jiraProject,
		RequestedIssueType: f.jiraIssueType,
	}
	for _, img := range f.images {
		in.Images = append(in.Images, incident.Image{Image: img})
	}
	in.Message = fmt.Sprintf("Argo CD application %s/%s reverted from revision %s (history %d) to revision %s (history %d), deployed again as history %d",
		f.namespace, f.name, rb.prev.key(), rb.prev.ID, rb.target.key(), rb.target.ID, rb.last.ID)
	if rb.by != "" {
		in.Message += " by " + rb.by
	}
	dec := Decision{Incident: in}
	if r, ok := soleAbortedRollout(f.resources, f.destNS); ok {
		dec.joins = &incident.Incident{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Revision: r.Revision}
	} else {
		dec.joins = &incident.Incident{Kind: incident.KindApplication, Namespace: f.namespace, Name: f.name, Revision: rb.prev.key()}
	}
	return dec
}

// operation returns the application's last operation as findRollback
// reads it.
func (app *application) operation() *syncOperation {
	op := app.Status.OperationState
	if op == nil {
		return nil
	}
	return &syncOperation{Phase: op.Phase, StartedAt: op.StartedAt, FinishedAt: op.FinishedAt, Operation: op.Operation}
}

// decideApplicationRollback decides an Application object already decoded.
// rolledBack is false when the object shows no rollback that this event
// reports; the caller then judges the application's health and sync.
func decideApplicationRollback(app *application, res resource) (dec Decision, rolledBack bool, err error) {
	op := app.operation()
	rb, ok := findRollback(app.Status.History, op)
	if !ok {
		return Decision{}, false, nil
	}
	switch res.event {
	case "ADD", "DELETE":
		// An ADD is every application again when the watch restarts: the
		// rollback was reported by the UPDATE that completed it.
		return Decision{}, false, nil
	case "UPDATE":
		if res.oldBody != nil {
			var old application
			if err := json.Unmarshal(res.oldBody, &old); err != nil {
				return Decision{}, false, inputErrorf("Application oldBody: %s", jsonErrText(err))
			}
			if orb, ok := findRollback(old.Status.History, old.operation()); ok && orb.last.ID == rb.last.ID {
				// A later change of an application rolled back earlier.
				return Decision{}, false, nil
			}
		}
	}
	m := app.Metadata
	f := appFacts{
		namespace: m.Namespace, name: m.Name,
		project: app.Spec.Project, repoURL: app.Spec.Source.RepoURL, targetRevision: app.Spec.Source.TargetRevision,
		destServer: app.Spec.Destination.Server, destNS: app.Spec.Destination.Namespace,
		images: app.Status.Summary.Images,
		owner:  m.Annotations[ownerAnnotation], jiraProject: m.Annotations[jiraProjectAnnotation], jiraIssueType: m.Annotations[jiraIssueTypeAnnotation],
	}
	for _, r := range app.Status.Resources {
		if r.Health != nil && (r.Health.Status == "Degraded" || r.Health.Status == "Missing") {
			f.resources = append(f.resources, incident.Resource{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Health: r.Health.Status, Message: r.Health.Message})
		}
	}
	return f.rollbackIncident(rb, op), true, nil
}

// decideArgoCDRollbackNotification decides the body of the on-rollback
// notification template (deploy/argocd): the application's history and
// operation, rendered when the trigger saw a sync go back to an older
// revision.
func decideArgoCDRollbackNotification(raw []byte) (Decision, error) {
	var b struct {
		App                  string          `json:"app"`
		AppNamespace         string          `json:"appNamespace"`
		Project              string          `json:"project"`
		DestinationNamespace string          `json:"destinationNamespace"`
		DestinationServer    string          `json:"destinationServer"`
		RepoURL              string          `json:"repoURL"`
		TargetRevision       string          `json:"targetRevision"`
		OperationPhase       string          `json:"operationPhase"`
		OperationStartedAt   string          `json:"operationStartedAt"`
		FinishedAt           string          `json:"finishedAt"`
		Operation            argoOperation   `json:"operation"`
		History              []historyEntry  `json:"history"`
		Images               []string        `json:"images"`
		DegradedResources    argoCDResources `json:"degradedResources"`
		AppURL               string          `json:"appURL"`
		JiraProject          string          `json:"jiraProject"`
		JiraIssueType        string          `json:"jiraIssueType"`
		Owner                string          `json:"owner"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return Decision{}, inputErrorf("Argo CD rollback notification: %s", jsonErrText(err))
	}
	ns := cmp.Or(b.AppNamespace, "argocd")
	if err := checkNames("appNamespace", ns, "app", b.App); err != nil {
		return Decision{}, err
	}
	op := &syncOperation{Phase: b.OperationPhase, StartedAt: b.OperationStartedAt, FinishedAt: b.FinishedAt, Operation: b.Operation}
	rb, ok := findRollback(b.History, op)
	if !ok {
		return Decision{Ignored: fmt.Sprintf("Argo CD application %s/%s: its last sync did not go back to an older revision", ns, b.App)}, nil
	}
	f := appFacts{
		namespace: ns, name: b.App,
		project: b.Project, repoURL: b.RepoURL, targetRevision: b.TargetRevision,
		destServer: b.DestinationServer, destNS: b.DestinationNamespace,
		images: b.Images,
		owner:  b.Owner, jiraProject: b.JiraProject, jiraIssueType: b.JiraIssueType,
	}
	f.resources = b.DegradedResources.resources()
	if b.AppURL != "" {
		f.links = append(f.links, incident.Link{Title: "Argo CD application", URL: b.AppURL})
	}
	dec := f.rollbackIncident(rb, op)
	dec.Incident.Source = "Argo CD notification (on-rollback)"
	return dec, nil
}
