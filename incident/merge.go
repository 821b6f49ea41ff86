package incident

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Merge adds what later says to into, so that the incident holds the facts
// of every event of the rollback, each once:
//
//   - the fields the fingerprint is made of (cluster, kind, namespace, name,
//     revision) never change;
//   - every other fact takes later's value when later has one (later is the
//     newer delivery), except the phase, reason and message, which follow the
//     newest event by its own time, and Time, which keeps the earliest
//     failure;
//   - lists merge by identity: images by container (by image when no
//     container is named), analysis by run and metric, resources by kind,
//     namespace and name, links by URL, ReplicaSets and reporters by value;
//     an entry present in both takes later's non-empty fields;
//   - a recovery in later is taken; a failure observed after into's
//     recovery means the object failed again, and the recovery is dropped.
//
// Merge never shares later's slices with into. It reports whether into
// changed (the delivery id aside, which is for logs): a repeat that brings
// nothing new needs no update in Jira or Confluence.
func Merge(into, later *Incident) (changed bool) {
	if into == nil || later == nil {
		return false
	}
	before := into.facts()
	merge(into, later)
	return !bytes.Equal(before, into.facts())
}

func merge(into, later *Incident) {
	intoState, laterState := into.stateTime(), later.stateTime()
	if laterState.IsZero() || intoState.IsZero() || !laterState.Before(intoState) {
		// later is the newer state, or one of the two does not say when.
		str(&into.Phase, later.Phase)
		str(&into.Reason, later.Reason)
		str(&into.Message, later.Message)
	}
	if laterState.After(intoState) {
		into.StateAt = laterState
	} else {
		into.StateAt = intoState
	}
	if into.Time.IsZero() || (!later.Time.IsZero() && later.Time.Before(into.Time)) {
		into.Time = later.Time
	}

	into.Sources = mergeStrings(into.reporters(), later.reporters())
	if into.Source == "" {
		into.Source = later.Source
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&into.PodHash, later.PodHash}, {&into.StableRS, later.StableRS},
		{&into.Strategy, later.Strategy}, {&into.Step, later.Step},
		{&into.Application, later.Application}, {&into.SyncRevision, later.SyncRevision},
		{&into.Project, later.Project}, {&into.RepoURL, later.RepoURL},
		{&into.TargetRevision, later.TargetRevision},
		{&into.DestinationServer, later.DestinationServer}, {&into.DestinationNS, later.DestinationNS},
		{&into.FailedNode, later.FailedNode},
		{&into.RevertedFrom, later.RevertedFrom}, {&into.RevertedTo, later.RevertedTo},
		{&into.InitiatedBy, later.InitiatedBy},
		{&into.Owner, later.Owner}, {&into.RequestedPriority, later.RequestedPriority},
		{&into.RequestedProject, later.RequestedProject}, {&into.RequestedIssueType, later.RequestedIssueType},
		{&into.Joins, later.Joins}, {&into.EventID, later.EventID},
	} {
		str(f.dst, f.src)
	}
	if !later.SyncedAt.IsZero() {
		into.SyncedAt = later.SyncedAt
	}

	into.Images = mergeImages(into.Images, later.Images)
	into.StableImages = mergeImages(into.StableImages, later.StableImages)
	into.ImagesBefore = mergeImages(into.ImagesBefore, later.ImagesBefore)
	into.Analysis = mergeAnalysis(into.Analysis, later.Analysis)
	into.Resources = mergeResources(into.Resources, later.Resources)
	into.Links = mergeLinks(into.Links, later.Links)
	into.ReplicaSets = mergeStrings(into.ReplicaSets, later.ReplicaSets)

	switch {
	case later.Recovery != nil:
		r := *later.Recovery
		into.Recovery = &r
	case into.Recovery != nil && !into.Recovery.At.IsZero() && laterState.After(into.Recovery.At) && later.Phase != "":
		// Failed again after it had recovered.
		into.Recovery = nil
	}
}

// facts is the incident as JSON without the delivery id, to tell whether
// a merge changed anything.
func (in *Incident) facts() []byte {
	c := *in
	c.EventID = ""
	b, err := json.Marshal(c)
	if err != nil {
		// Strings, numbers, times and slices of them always marshal.
		panic("incident: marshal: " + err.Error())
	}
	return b
}

// stateTime is when the incident's phase, reason and message were seen.
func (in *Incident) stateTime() time.Time {
	if !in.StateAt.IsZero() {
		return in.StateAt
	}
	return in.Time
}

// Reporters lists who reported the incident, first reporter first.
func (in *Incident) Reporters() []string { return in.reporters() }

func (in *Incident) reporters() []string {
	if len(in.Sources) > 0 {
		return in.Sources
	}
	if in.Source != "" {
		return []string{in.Source}
	}
	return nil
}

func str(dst *string, src string) {
	if strings.TrimSpace(src) != "" {
		*dst = src
	}
}

func mergeStrings(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// mergeImages identifies an image by its container, or by the image itself
// when either side names no container (Argo CD lists images without
// containers).
func mergeImages(a, b []Image) []Image {
	out := slices.Clone(a)
	for _, img := range b {
		i := slices.IndexFunc(out, func(o Image) bool {
			if o.Container != "" && img.Container != "" {
				return o.Container == img.Container
			}
			return o.Image == img.Image
		})
		switch {
		case i < 0:
			out = append(out, img)
		default:
			str(&out[i].Container, img.Container)
			str(&out[i].Image, img.Image)
		}
	}
	return out
}

// sameAnalysis says whether two entries describe the same metric of the
// same run. A side that does not know the run (a notification's message
// names only the metric) or the metric (a Rollout's status names only the
// run) matches the entry that knows both.
func sameAnalysis(a, b Analysis) bool {
	switch {
	case a.Metric != "" && b.Metric != "":
		return a.Metric == b.Metric && (a.Run == b.Run || a.Run == "" || b.Run == "")
	case a.Run != "" && b.Run != "":
		return a.Run == b.Run
	}
	return false
}

func mergeAnalysis(a, b []Analysis) []Analysis {
	out := make([]Analysis, 0, len(a)+len(b))
	for _, x := range a {
		x.Values = slices.Clone(x.Values)
		out = append(out, x)
	}
	for _, x := range b {
		i := slices.IndexFunc(out, func(o Analysis) bool { return sameAnalysis(o, x) })
		if i < 0 {
			x.Values = slices.Clone(x.Values)
			out = append(out, x)
			continue
		}
		o := &out[i]
		for _, f := range []struct {
			dst *string
			src string
		}{
			{&o.Run, x.Run}, {&o.Metric, x.Metric}, {&o.Phase, x.Phase}, {&o.Message, x.Message},
			{&o.Provider, x.Provider}, {&o.FailureLimit, x.FailureLimit}, {&o.Assessment, x.Assessment},
		} {
			str(f.dst, f.src)
		}
		if x.Count > 0 {
			o.Count = x.Count
		}
		if x.Failed > 0 {
			o.Failed = x.Failed
		}
		if len(x.Values) > 0 {
			// The measurements are the run's whole list so far: the
			// newer list replaces the older.
			o.Values = slices.Clone(x.Values)
		}
	}
	// A run-only entry that a later entry of the same run named a metric
	// for is that metric: drop the run-only one when a metric entry of
	// the run exists.
	return slices.DeleteFunc(out, func(o Analysis) bool {
		return o.Metric == "" && o.Run != "" && slices.ContainsFunc(out, func(m Analysis) bool { return m.Metric != "" && m.Run == o.Run })
	})
}

func mergeResources(a, b []Resource) []Resource {
	out := slices.Clone(a)
	for _, r := range b {
		i := slices.IndexFunc(out, func(o Resource) bool {
			return o.Kind == r.Kind && o.Namespace == r.Namespace && o.Name == r.Name
		})
		if i < 0 {
			out = append(out, r)
			continue
		}
		str(&out[i].Health, r.Health)
		str(&out[i].Message, r.Message)
	}
	return out
}

func mergeLinks(a, b []Link) []Link {
	out := slices.Clone(a)
	for _, l := range b {
		i := slices.IndexFunc(out, func(o Link) bool { return o.URL == l.URL })
		if i < 0 {
			out = append(out, l)
			continue
		}
		str(&out[i].Title, l.Title)
	}
	return out
}
