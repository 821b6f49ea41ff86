package incident

import (
	"reflect"
	"testing"
	"time"
)

func at(min int) time.Time { return time.Date(2025, 6, 12, 14, min, 0, 0, time.UTC) }

func TestMerge(t *testing.T) {
	base := func() *Incident {
		return &Incident{Cluster: "c", Kind: KindRollout, Namespace: "payments", Name: "checkout-api", Revision: "7"}
	}
	tests := []struct {
		name  string
		into  func() *Incident
		later *Incident
		check func(t *testing.T, got *Incident)
	}{{
		name:  "fingerprint fields never change",
		into:  base,
		later: &Incident{Cluster: "other", Kind: KindApplication, Namespace: "argocd", Name: "app", Revision: "8", Phase: "Degraded"},
		check: func(t *testing.T, got *Incident) {
			if got.Fingerprint() != base().Fingerprint() {
				t.Errorf("fingerprint changed: %+v", got)
			}
			if got.Phase != "Degraded" {
				t.Errorf("phase %q", got.Phase)
			}
		},
	}, {
		name:  "a revision learnt later does not change the fingerprint",
		into:  func() *Incident { in := base(); in.Revision = ""; return in },
		later: &Incident{Revision: "7"},
		check: func(t *testing.T, got *Incident) {
			if got.Revision != "" {
				t.Errorf("revision %q", got.Revision)
			}
		},
	}, {
		name: "newer non-empty values win, empty ones do not erase",
		into: func() *Incident {
			in := base()
			in.PodHash, in.Strategy, in.Owner, in.Project = "old", "canary", "group:default/payments", "payments"
			return in
		},
		later: &Incident{PodHash: "6f9c7b8d5", Strategy: "", Owner: " ", RepoURL: "https://git.example.com/r.git"},
		check: func(t *testing.T, got *Incident) {
			if got.PodHash != "6f9c7b8d5" || got.Strategy != "canary" || got.Owner != "group:default/payments" ||
				got.Project != "payments" || got.RepoURL != "https://git.example.com/r.git" {
				t.Errorf("%+v", got)
			}
		},
	}, {
		name: "state follows the newest event by its own time; Time keeps the first failure",
		into: func() *Incident {
			in := base()
			in.Phase, in.Reason, in.Message, in.Time = "Degraded", "RolloutAborted", "aborted", at(27)
			return in
		},
		later: &Incident{Phase: "Failed", Reason: "AnalysisRunFailed", Message: "metric failed", Time: at(26)},
		check: func(t *testing.T, got *Incident) {
			if got.Phase != "Degraded" || got.Reason != "RolloutAborted" || got.Message != "aborted" {
				t.Errorf("older event changed the state: %+v", got)
			}
			if !got.Time.Equal(at(26)) || !got.StateAt.Equal(at(27)) {
				t.Errorf("time %v state at %v", got.Time, got.StateAt)
			}
		},
	}, {
		name: "a newer state replaces the older",
		into: func() *Incident {
			in := base()
			in.Phase, in.Reason, in.Time = "Failed", "AnalysisRunFailed", at(26)
			return in
		},
		later: &Incident{Phase: "Degraded", Reason: "RolloutAborted", Time: at(27)},
		check: func(t *testing.T, got *Incident) {
			if got.Reason != "RolloutAborted" || !got.Time.Equal(at(26)) || !got.StateAt.Equal(at(27)) {
				t.Errorf("%+v", got)
			}
		},
	}, {
		name:  "an event without a time is taken as newer",
		into:  func() *Incident { in := base(); in.Phase, in.Time = "Failed", at(26); return in },
		later: &Incident{Phase: "Degraded"},
		check: func(t *testing.T, got *Incident) {
			if got.Phase != "Degraded" || !got.Time.Equal(at(26)) {
				t.Errorf("%+v", got)
			}
		},
	}, {
		name:  "reporters each once, first first",
		into:  func() *Incident { in := base(); in.Source = "Argo Rollouts notification"; return in },
		later: &Incident{Sources: []string{"AnalysisRun object", "Argo Rollouts notification", "Argo CD notification"}},
		check: func(t *testing.T, got *Incident) {
			want := []string{"Argo Rollouts notification", "AnalysisRun object", "Argo CD notification"}
			if !reflect.DeepEqual(got.Reporters(), want) || got.Source != "Argo Rollouts notification" {
				t.Errorf("reporters %v source %q", got.Reporters(), got.Source)
			}
		},
	}, {
		name: "images merge by container, or by image when a side names none",
		into: func() *Incident {
			in := base()
			in.Images = []Image{{Image: "reg/app:1.42.0"}, {Container: "sidecar", Image: "reg/proxy:1"}}
			return in
		},
		later: &Incident{Images: []Image{{Container: "app", Image: "reg/app:1.42.0"}, {Container: "sidecar", Image: "reg/proxy:2"}, {Container: "init", Image: "reg/init:1"}}},
		check: func(t *testing.T, got *Incident) {
			want := []Image{{Container: "app", Image: "reg/app:1.42.0"}, {Container: "sidecar", Image: "reg/proxy:2"}, {Container: "init", Image: "reg/init:1"}}
			if !reflect.DeepEqual(got.Images, want) {
				t.Errorf("images %+v", got.Images)
			}
		},
	}, {
		name: "analysis: run-only, metric-only and full entries of one metric become one",
		into: func() *Incident {
			in := base()
			// The notification's message names the metric only.
			in.Analysis = []Analysis{{Metric: "success-rate", Phase: "Failed", Failed: 3, FailureLimit: "2"}}
			return in
		},
		later: &Incident{Analysis: []Analysis{
			// The Rollout's status names the run only.
			{Run: "checkout-api-6f9c7b8d5-7-2", Phase: "Failed", Message: "Metric \"success-rate\" assessed Failed"},
		}},
		check: func(t *testing.T, got *Incident) {
			// A run-only entry cannot be matched to a metric-only one: two
			// entries until the AnalysisRun names both.
			Merge(got, &Incident{Analysis: []Analysis{{
				Run: "checkout-api-6f9c7b8d5-7-2", Metric: "success-rate", Phase: "Failed", Provider: "prometheus",
				Count: 4, Failed: 3, FailureLimit: "2", Values: []string{"[0.9871]", "[0.9123]"},
			}}})
			if len(got.Analysis) != 1 {
				t.Fatalf("analysis %+v", got.Analysis)
			}
			a := got.Analysis[0]
			if a.Run != "checkout-api-6f9c7b8d5-7-2" || a.Metric != "success-rate" || a.Provider != "prometheus" ||
				a.Count != 4 || a.Failed != 3 || a.FailureLimit != "2" || len(a.Values) != 2 {
				t.Errorf("%+v", a)
			}
		},
	}, {
		name: "analysis: different metrics and runs stay apart; newer measurements replace older",
		into: func() *Incident {
			in := base()
			in.Analysis = []Analysis{{Run: "r1", Metric: "success-rate", Values: []string{"1"}}, {Run: "r1", Metric: "latency"}}
			return in
		},
		later: &Incident{Analysis: []Analysis{{Run: "r2", Metric: "success-rate"}, {Run: "r1", Metric: "success-rate", Values: []string{"1", "2"}}}},
		check: func(t *testing.T, got *Incident) {
			if len(got.Analysis) != 3 || !reflect.DeepEqual(got.Analysis[0].Values, []string{"1", "2"}) {
				t.Errorf("%+v", got.Analysis)
			}
		},
	}, {
		name: "resources by kind, namespace and name; links by URL; ReplicaSets by value",
		into: func() *Incident {
			in := base()
			in.Resources = []Resource{{Kind: "Rollout", Namespace: "payments", Name: "checkout-api", Health: "Progressing"}}
			in.Links = []Link{{Title: "Argo CD", URL: "https://cd/app"}}
			in.ReplicaSets = []string{"a (revision 6)"}
			return in
		},
		later: &Incident{
			Resources:   []Resource{{Kind: "Rollout", Namespace: "payments", Name: "checkout-api", Health: "Degraded", Message: "aborted"}, {Kind: "Service", Namespace: "payments", Name: "checkout-api", Health: "Missing"}},
			Links:       []Link{{Title: "Argo CD application", URL: "https://cd/app"}, {Title: "Grafana", URL: "https://g/d"}},
			ReplicaSets: []string{"a (revision 6)", "b (revision 7)"},
		},
		check: func(t *testing.T, got *Incident) {
			if len(got.Resources) != 2 || got.Resources[0].Health != "Degraded" || got.Resources[0].Message != "aborted" {
				t.Errorf("resources %+v", got.Resources)
			}
			if len(got.Links) != 2 || got.Links[0].Title != "Argo CD application" {
				t.Errorf("links %+v", got.Links)
			}
			if len(got.ReplicaSets) != 2 {
				t.Errorf("replica sets %v", got.ReplicaSets)
			}
		},
	}, {
		name:  "a recovery is taken",
		into:  func() *Incident { in := base(); in.Time = at(3); return in },
		later: &Incident{Recovery: &Recovery{Kind: KindRollout, Revision: "8", At: at(20)}},
		check: func(t *testing.T, got *Incident) {
			if got.Recovery == nil || got.Recovery.Revision != "8" {
				t.Errorf("recovery %+v", got.Recovery)
			}
		},
	}, {
		name: "a failure after the recovery drops it; an older one does not",
		into: func() *Incident {
			in := base()
			in.Time, in.Phase = at(3), "Degraded"
			in.Recovery = &Recovery{Kind: KindRollout, Revision: "7", At: at(20)}
			return in
		},
		later: &Incident{Phase: "Degraded", Time: at(10)},
		check: func(t *testing.T, got *Incident) {
			if got.Recovery == nil {
				t.Fatal("an older failure dropped the recovery")
			}
			Merge(got, &Incident{Phase: "Degraded", Time: at(30)})
			if got.Recovery != nil {
				t.Errorf("failed again at :30, still recovered %+v", got.Recovery)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			into := tt.into()
			Merge(into, tt.later)
			tt.check(t, into)
		})
	}
}

func TestMergeSharesNothing(t *testing.T) {
	later := &Incident{Images: []Image{{Container: "a", Image: "x"}}, Analysis: []Analysis{{Run: "r", Metric: "m", Values: []string{"1"}}}, Links: []Link{{URL: "https://x"}}}
	into := &Incident{}
	Merge(into, later)
	into.Images[0].Image = "changed"
	into.Analysis[0].Values[0] = "changed"
	into.Links[0].Title = "changed"
	if later.Images[0].Image != "x" || later.Analysis[0].Values[0] != "1" || later.Links[0].Title != "" {
		t.Errorf("merge shares storage with later: %+v", later)
	}
}

func TestMergeIdempotent(t *testing.T) {
	ev := &Incident{Phase: "Degraded", Time: at(3), Source: "s", Images: []Image{{Container: "a", Image: "x"}},
		Analysis: []Analysis{{Run: "r", Metric: "m"}}, Resources: []Resource{{Kind: "Rollout", Name: "n"}}, Links: []Link{{URL: "https://x"}}}
	into := &Incident{Cluster: "c", Kind: KindRollout, Name: "n"}
	if !Merge(into, ev) {
		t.Error("the first merge reports no change")
	}
	once := *into
	once.Images = append([]Image(nil), into.Images...)
	again := *ev
	again.EventID = "another-delivery"
	if Merge(into, &again) {
		t.Error("a repeat (another delivery id) reports a change")
	}
	if into.EventID = ""; !reflect.DeepEqual(*into, once) {
		t.Errorf("merging the same event twice changed the incident:\n%+v\n%+v", *into, once)
	}
	if !Merge(into, &Incident{Analysis: []Analysis{{Run: "r", Metric: "m", Provider: "prometheus"}}}) {
		t.Error("a new fact reports no change")
	}
}
