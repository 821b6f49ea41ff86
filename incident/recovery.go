package incident

import (
	"strconv"
	"strings"
	"time"
)

// Recovery says that an object that may have failed is healthy again: a
// Rollout Healthy (at a newer revision, or the same one retried), an Argo
// CD Application Healthy and Synced, a Workflow that succeeded on retry.
// It names the object, not the failure: the healthy revision is usually
// not the failed one, so it finds its incident through ObjectFingerprint
// (see Incident.ObjectKeys) and Ends decides.
type Recovery struct {
	Cluster   string
	Kind      string // KindRollout, KindApplication or KindWorkflow
	Namespace string
	Name      string
	// Revision is what is healthy: the Rollout revision, the Argo CD sync
	// revision, the Workflow uid. Empty when the event does not say.
	Revision string
	// State says what healthy means here, for people: "Healthy",
	// "Healthy and Synced", "Succeeded".
	State string
	// At is when the object became healthy; zero when the event does not
	// say (the opener then uses the time it learnt it).
	At time.Time
	// Source says what reported it, like Incident.Source.
	Source string
}

// Subject is "<namespace>/<name>".
func (r *Recovery) Subject() string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// ObjectFingerprint is the object's fingerprint, the same as
// Incident.ObjectFingerprint of any incident of the object.
func (r *Recovery) ObjectFingerprint() string {
	return hashParts(r.Cluster, r.Kind, r.Namespace, r.Name)
}

// ObjectKeys are the object fingerprints under which a recovery may find
// the incident: its own object's, and for a Rollout incident that an Argo CD
// Application's event joined, the Application's too (an Application
// Healthy and Synced again ends its Rollout's incident).
func (in *Incident) ObjectKeys() []string {
	keys := []string{in.ObjectFingerprint()}
	if ns, name, ok := strings.Cut(in.Application, "/"); ok && in.Kind != KindApplication {
		keys = append(keys, hashParts(in.Cluster, KindApplication, ns, name))
	}
	return keys
}

// Ends reports whether r ends the incident in: the same object (or the
// Argo CD Application the incident's Rollout belongs to), healthy no earlier
// than the incident's latest failure, at the failed revision or a later one
// for a Rollout (revisions only grow), at the same run for a Workflow (a
// retry keeps the uid; a resubmission is another Workflow).
func (r *Recovery) Ends(in *Incident) bool {
	if r == nil || in == nil || !strings.EqualFold(r.Cluster, in.Cluster) {
		return false
	}
	same := strings.EqualFold(r.Kind, in.Kind) && strings.EqualFold(r.Namespace, in.Namespace) && strings.EqualFold(r.Name, in.Name)
	viaApp := r.Kind == KindApplication && in.Kind != KindApplication && in.Application != "" && strings.EqualFold(in.Application, r.Subject())
	if !same && !viaApp {
		return false
	}
	if failed := in.stateTime(); !r.At.IsZero() && !failed.IsZero() && r.At.Before(failed) {
		// A healthy state older than the failure: a late delivery.
		return false
	}
	if !same {
		return true
	}
	switch in.Kind {
	case KindRollout:
		healthy, err1 := strconv.Atoi(r.Revision)
		failed, err2 := strconv.Atoi(in.Revision)
		if err1 == nil && err2 == nil && healthy < failed {
			return false
		}
	case KindWorkflow:
		if r.Revision != "" && in.Revision != "" && !strings.EqualFold(r.Revision, in.Revision) {
			return false
		}
	}
	return true
}

// Recover records r on the incident when r ends it. It reports whether the
// incident changed: false when r does not end it or says what the incident
// already holds (a repeat of the same recovery costs nothing).
func (in *Incident) Recover(r *Recovery) bool {
	if !r.Ends(in) {
		return false
	}
	if in.Recovery != nil && *in.Recovery == *r {
		return false
	}
	if in.Recovery != nil && !in.Recovery.At.IsZero() && (r.At.IsZero() || r.At.After(in.Recovery.At)) {
		// Already recovered: the first moment it was healthy again is the
		// recovery; later healthy events repeat it.
		return false
	}
	c := *r
	in.Recovery = &c
	return true
}
