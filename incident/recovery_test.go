package incident

import (
	"slices"
	"testing"
)

func TestRecoveryEnds(t *testing.T) {
	rollout := &Incident{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "checkout-api", Revision: "7", Time: at(3),
		Application: "argocd/checkout-api-prod"}
	workflow := &Incident{Cluster: "c", Kind: KindWorkflow, Namespace: "payments", Name: "db-migrate-x7k2p", Revision: "0b6f3a2e-uid", Time: at(5)}
	app := &Incident{Cluster: "c", Kind: KindApplication, Namespace: "argocd", Name: "checkout-api-prod", Revision: "9f3c", Time: at(3)}
	tests := []struct {
		name string
		r    Recovery
		in   *Incident
		want bool
	}{
		{"rollout healthy at the next revision", Recovery{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "checkout-api", Revision: "8", At: at(20)}, rollout, true},
		{"rollout healthy at the same revision (retried)", Recovery{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "checkout-api", Revision: "7", At: at(20)}, rollout, true},
		{"rollout healthy at an older revision", Recovery{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "checkout-api", Revision: "6", At: at(20)}, rollout, false},
		{"rollout healthy, revision and time unknown", Recovery{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "checkout-api"}, rollout, true},
		{"healthy before it failed (late delivery)", Recovery{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "checkout-api", Revision: "8", At: at(1)}, rollout, false},
		{"another object", Recovery{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "cart", Revision: "8"}, rollout, false},
		{"another cluster", Recovery{Cluster: "d", Kind: KindRollout, Namespace: "payments", Name: "checkout-api", Revision: "8"}, rollout, false},
		{"the rollout's Argo CD application healthy and synced", Recovery{Cluster: "c", Kind: KindApplication, Namespace: "argocd", Name: "checkout-api-prod", Revision: "abc"}, rollout, true},
		{"another application", Recovery{Cluster: "c", Kind: KindApplication, Namespace: "argocd", Name: "cart-prod"}, rollout, false},
		{"application healthy at a new sync revision", Recovery{Cluster: "c", Kind: KindApplication, Namespace: "argocd", Name: "checkout-api-prod", Revision: "abcd", At: at(30)}, app, true},
		{"workflow retried and succeeded", Recovery{Cluster: "c", Kind: KindWorkflow, Namespace: "payments", Name: "db-migrate-x7k2p", Revision: "0b6f3a2e-uid", At: at(9)}, workflow, true},
		{"workflow of the same name, another run", Recovery{Cluster: "c", Kind: KindWorkflow, Namespace: "payments", Name: "db-migrate-x7k2p", Revision: "other-uid", At: at(9)}, workflow, false},
		{"a rollout recovery does not end a workflow", Recovery{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "db-migrate-x7k2p"}, workflow, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Ends(tt.in); got != tt.want {
				t.Errorf("Ends = %v, want %v", got, tt.want)
			}
			if tt.want && !slices.Contains(tt.in.ObjectKeys(), tt.r.ObjectFingerprint()) {
				t.Errorf("the recovery's key %s is not among the incident's %v: the opener could not find it", tt.r.ObjectFingerprint(), tt.in.ObjectKeys())
			}
		})
	}
}

func TestRecover(t *testing.T) {
	in := &Incident{Cluster: "c", Kind: KindRollout, Namespace: "n", Name: "x", Revision: "7", Time: at(3)}
	r := &Recovery{Cluster: "c", Kind: KindRollout, Namespace: "n", Name: "x", Revision: "8", At: at(20), State: "Healthy"}
	if !in.Recover(r) || in.Recovery == nil || in.Recovery.Revision != "8" {
		t.Fatalf("not recovered: %+v", in.Recovery)
	}
	r.Revision = "changed"
	if in.Recovery.Revision != "8" {
		t.Error("Recover keeps the caller's recovery")
	}
	if in.Recover(&Recovery{Cluster: "c", Kind: KindRollout, Namespace: "n", Name: "x", Revision: "8", At: at(20), State: "Healthy"}) {
		t.Error("the same recovery again is a change")
	}
	if in.Recover(&Recovery{Cluster: "c", Kind: KindRollout, Namespace: "n", Name: "x", Revision: "9", At: at(40), State: "Healthy"}) {
		t.Error("a later healthy event moved the recovery time")
	}
	if !in.Recover(&Recovery{Cluster: "c", Kind: KindRollout, Namespace: "n", Name: "x", Revision: "8", At: at(15), State: "Healthy"}) || !in.Recovery.At.Equal(at(15)) {
		t.Error("an earlier healthy moment is the recovery")
	}
	if in.Recover(&Recovery{Cluster: "c", Kind: KindRollout, Namespace: "n", Name: "other"}) {
		t.Error("another object's recovery taken")
	}
}
