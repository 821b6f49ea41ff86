package inbound

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"function/incident"
)

// A rollback made by hand sends no notification: Argo Rollouts has none for
// `kubectl argo rollouts undo` or the dashboard's Rollback button
// (argo-rollouts issue 3721), and a Deployment rolled back with `kubectl
// rollout undo` emits nothing either. The ReplicaSets show it, whoever made
// it. Both controllers keep one ReplicaSet per pod template and, when an
// older template becomes current again, reuse its ReplicaSet and give it the
// next revision: SetNewReplicaSetAnnotations (argo-rollouts
// utils/annotations, kubernetes pkg/controller/deployment/util) raises the
// revision annotation to the highest revision of the other ReplicaSets plus
// one, and only when it is lower. So an UPDATE of a ReplicaSet that already
// held a revision and now holds a higher one is a rollback to its template:
//
//   - a new rollout creates a new ReplicaSet (an ADD) and later UPDATEs only
//     scale it; scale-downs and status updates leave the revision alone;
//   - a controller resync that changes nothing writes nothing, and the
//     resource EventSource drops UPDATEs whose resourceVersion did not
//     change (eventsources/sources/resource, v1.9.6);
//   - the revision-history annotation is not a signal: Argo Rollouts appends
//     the current revision to it whenever it copies a changed Rollout
//     annotation, without any rollback.
//
// The revision before the rollback is the new revision minus one: the
// controller numbered the reused ReplicaSet after the newest other one.

// replicaSet is the part of an apps/v1 ReplicaSet the decision reads.
type replicaSet struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
		OwnerReferences []struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
			Controller bool   `json:"controller"`
		} `json:"ownerReferences"`
		ManagedFields []struct {
			Manager     string `json:"manager"`
			Operation   string `json:"operation"`
			Subresource string `json:"subresource"`
			Time        string `json:"time"`
		} `json:"managedFields"`
	} `json:"metadata"`
	Spec struct {
		Template podTemplate `json:"template"`
	} `json:"spec"`
}

// rsController is what differs between the two controllers that number
// ReplicaSets.
type rsController struct {
	kind      string // the incident kind: the owner's
	revision  string // revision annotation
	history   string // revision-history annotation
	hashLabel string // pod-template-hash label
}

// controllerOf returns the controller owning rs, if it is a Rollout or a
// Deployment.
func controllerOf(rs *replicaSet) (rsController, string, bool) {
	for _, o := range rs.Metadata.OwnerReferences {
		if !o.Controller {
			continue
		}
		switch {
		case o.Kind == "Rollout" && strings.HasPrefix(o.APIVersion, "argoproj.io/"):
			return rsController{incident.KindRollout, "rollout.argoproj.io/revision", "rollout.argoproj.io/revision-history", "rollouts-pod-template-hash"}, o.Name, true
		case o.Kind == "Deployment" && strings.HasPrefix(o.APIVersion, "apps/"):
			return rsController{incident.KindDeployment, "deployment.kubernetes.io/revision", "deployment.kubernetes.io/revision-history", "pod-template-hash"}, o.Name, true
		}
	}
	return rsController{}, "", false
}

// Annotations an owner may carry, copied to its ReplicaSets by both
// controllers: the Jira project and issue type, as for notifications.
const (
	jiraProjectAnnotation   = "rollback-incident/jira-project"
	jiraIssueTypeAnnotation = "rollback-incident/jira-issue-type"
)

// phaseRolledBack is the phase of a manual rollback incident: the object
// serves an older template (or revision) again.
const phaseRolledBack = "RolledBack"

func decideReplicaSet(raw []byte, res resource) (Decision, error) {
	var rs replicaSet
	if err := json.Unmarshal(raw, &rs); err != nil {
		return Decision{}, inputErrorf("ReplicaSet: %s", jsonErrText(err))
	}
	m := &rs.Metadata
	if err := checkNames("metadata.namespace", m.Namespace, "metadata.name", m.Name); err != nil {
		return Decision{}, err
	}
	what := fmt.Sprintf("replica set %s/%s", m.Namespace, m.Name)
	ctl, owner, ok := controllerOf(&rs)
	if !ok {
		return Decision{Ignored: what + " is not controlled by a Rollout or a Deployment"}, nil
	}
	if err := checkNames("metadata.namespace", m.Namespace, "ownerReferences.name", owner); err != nil {
		return Decision{}, err
	}
	if res.oldBody == nil {
		how := "a lone object"
		if res.event != "" {
			how = "an " + res.event + " event"
		}
		return Decision{Ignored: fmt.Sprintf("%s: a rollback shows only in an UPDATE whose revision rises, and %s carries no previous state", what, how)}, nil
	}
	var old replicaSet
	if err := json.Unmarshal(res.oldBody, &old); err != nil {
		return Decision{}, inputErrorf("ReplicaSet oldBody: %s", jsonErrText(err))
	}
	if old.Metadata.Name != m.Name || old.Metadata.Namespace != m.Namespace || (old.Metadata.UID != "" && m.UID != "" && old.Metadata.UID != m.UID) {
		return Decision{}, inputErrorf("ReplicaSet oldBody is another object than body (%s)", quoteShort(old.Metadata.Namespace+"/"+old.Metadata.Name, 80))
	}
	newRev, ok := parseRevision(m.Annotations[ctl.revision])
	if !ok {
		return Decision{Ignored: fmt.Sprintf("%s has no revision (%s)", what, ctl.revision)}, nil
	}
	oldRev, ok := parseRevision(old.Metadata.Annotations[ctl.revision])
	switch {
	case !ok:
		return Decision{Ignored: fmt.Sprintf("%s had no revision before this update (created or adopted): not a rollback", what)}, nil
	case newRev == oldRev:
		return Decision{Ignored: fmt.Sprintf("%s stays at revision %d (a scale, status or annotation change): not a rollback", what, newRev)}, nil
	case newRev < oldRev:
		return Decision{Ignored: fmt.Sprintf("%s went from revision %d down to %d, which no controller does: not a rollback", what, oldRev, newRev)}, nil
	}

	from := newRev - 1
	in := &incident.Incident{
		Kind:               ctl.kind,
		Namespace:          m.Namespace,
		Name:               owner,
		Revision:           strconv.FormatInt(newRev, 10),
		RevertedFrom:       strconv.FormatInt(from, 10),
		RevertedTo:         strconv.FormatInt(oldRev, 10),
		PodHash:            m.Labels[ctl.hashLabel],
		Phase:              phaseRolledBack,
		Reason:             incident.ReasonManualRollback,
		Time:               lastSpecWrite(&rs),
		Images:             rs.Spec.Template.images(),
		ReplicaSets:        []string{replicaSetText(m.Name, newRev, oldRev, m.Annotations[ctl.history])},
		Owner:              m.Annotations[ownerAnnotation],
		RequestedProject:   m.Annotations[jiraProjectAnnotation],
		RequestedIssueType: m.Annotations[jiraIssueTypeAnnotation],
	}
	in.Message = fmt.Sprintf("%s %s/%s reverted from revision %d to revision %d: ReplicaSet %s, which served revision %d, is current again as revision %d",
		ctl.kind, m.Namespace, owner, from, oldRev, m.Name, oldRev, newRev)
	if imgs := imagesText(in.Images); imgs != "" {
		in.Message += " (" + imgs + ")"
	}
	dec := Decision{Incident: in}
	if ctl.kind == incident.KindRollout {
		// An undo after an abort restores the stable template: the aborted
		// revision is the one before, and its incident (if any) is this
		// rollback's too.
		dec.joins = &incident.Incident{Kind: incident.KindRollout, Namespace: m.Namespace, Name: owner, Revision: in.RevertedFrom}
	}
	return dec, nil
}

func parseRevision(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil && n > 0
}

// lastSpecWrite is when the ReplicaSet's metadata or spec was last written
// (the managedFields entry of an Update that is not a status write): for the
// rollback UPDATE, the moment the controller gave it the new revision.
func lastSpecWrite(rs *replicaSet) (t time.Time) {
	for _, f := range rs.Metadata.ManagedFields {
		if f.Operation != "Update" || f.Subresource != "" {
			continue
		}
		if ft := parseTime(f.Time); ft.After(t) {
			t = ft
		}
	}
	return t
}

// replicaSetText names the reused ReplicaSet with its revisions, e.g.
// "checkout-api-5d8f9c6b7 (revision 8, earlier 6)". The history annotation
// may repeat a revision (see above), so the earlier ones are deduplicated.
func replicaSetText(name string, rev, prev int64, history string) string {
	earlier := []int64{prev}
	for _, h := range strings.Split(history, ",") {
		if n, ok := parseRevision(h); ok && n != rev {
			earlier = append(earlier, n)
		}
	}
	slices.Sort(earlier)
	earlier = slices.Compact(earlier)
	parts := make([]string, len(earlier))
	for i, n := range earlier {
		parts[i] = strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%s (revision %d, earlier %s)", name, rev, strings.Join(parts, ", "))
}

// imagesText lists images as "container=image, …" for a message.
func imagesText(imgs []incident.Image) string {
	parts := make([]string, 0, len(imgs))
	for _, i := range imgs {
		if i.Container != "" {
			parts = append(parts, i.Container+"="+i.Image)
		} else {
			parts = append(parts, i.Image)
		}
	}
	return strings.Join(parts, ", ")
}
