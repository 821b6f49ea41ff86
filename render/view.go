package render

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"function/incident"
)

// Context is what the documents show beyond the incident's own facts:
// where the incident lives, when it was opened and recovered, who owns it,
// the earlier incident of the object, the configured links and the
// timeline the record holds. Every field is optional; the zero value
// renders the incident alone.
type Context struct {
	JiraKey string
	JiraURL string
	PageURL string // the postmortem page, which the description links to

	// Opened is when the incident was opened (the issue created).
	Opened time.Time
	// Failed is when the failure happened; zero: the incident's Time.
	Failed time.Time
	// Recovered is when the object was healthy again; zero: the
	// incident's Recovery.At, or not recovered.
	Recovered time.Time

	PreviousKey string // the object's previous incident, if any
	PreviousURL string
	// Related are further Jira issues (or other records) to name.
	Related []incident.Link

	// Owner and Priority are the ones decided for the incident (the
	// object's annotation, a configured map, a default); zero: the
	// incident's Owner, and no priority shown.
	Owner    string
	Priority string

	// Base URLs of the web UIs, for links when the event carried none:
	// Argo CD (ARGOCD_URL, e.g. https://argocd.example.com), the Argo
	// Rollouts dashboard with its root path (e.g.
	// https://rollouts.example.com/rollouts) and Argo Workflows.
	ArgoCDURL            string
	RolloutsDashboardURL string
	WorkflowsURL         string
	// Links are the configured links rendered for this incident
	// (LINK_TEMPLATES, see RenderLinks).
	Links []incident.Link

	// Timeline is every entry the record holds, in any order; the page's
	// timeline is rendered from it alone (plus the opening and the
	// recovery), so rendering again never adds a row twice.
	Timeline []TimelineRow
}

// Related and PageContext are the names Description and Page took their
// context by before both took the whole Context.
type (
	Related     = Context
	PageContext = Context
)

// TimelineRow is one row of the timeline.
type TimelineRow struct {
	At   time.Time
	Text string
}

// view is the incident and its context, with what both imply worked out
// once for every document.
type view struct {
	in                *incident.Incident
	c                 Context
	failed, recovered time.Time
}

func newView(in *incident.Incident, c Context) view {
	v := view{in: in, c: c, failed: firstTime(c.Failed, in.Time), recovered: c.Recovered}
	if v.recovered.IsZero() && in.Recovery != nil {
		v.recovered = in.Recovery.At
	}
	return v
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// isRecovered reports whether the object is healthy again.
func (v view) isRecovered() bool { return v.in.Recovery != nil || !v.c.Recovered.IsZero() }

func (v view) owner() string { return cmp.Or(v.c.Owner, v.in.Owner) }

// Durations of an incident; a zero field is unknown (or not over yet).
type Durations struct {
	// TimeToDetect: from the failure to the incident's opening.
	TimeToDetect time.Duration
	// TimeToRecover: from the failure to the object healthy again.
	TimeToRecover time.Duration
	// Duration: how long the incident was open, from its opening to the
	// recovery.
	Duration time.Duration
}

func (v view) durations() Durations {
	between := func(a, b time.Time) time.Duration {
		if a.IsZero() || b.IsZero() || b.Before(a) {
			return 0
		}
		return b.Sub(a)
	}
	return Durations{
		TimeToDetect:  between(v.failed, v.c.Opened),
		TimeToRecover: between(v.failed, v.recovered),
		Duration:      between(v.c.Opened, v.recovered),
	}
}

// formatDuration says a duration the way people do: 14s, 17m 38s, 2h 5m,
// 3d 4h.
func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

// durationFacts are the durations known, each with what it measures.
func (v view) durationFacts() []Fact {
	d := v.durations()
	var fs []Fact
	add := func(name string, dur time.Duration, known bool) {
		if dur > 0 || known {
			fs = append(fs, Fact{name, formatDuration(dur)})
		}
	}
	recovered := v.isRecovered() && !v.recovered.IsZero()
	add("Time to detect (failure → incident opened)", d.TimeToDetect, !v.failed.IsZero() && !v.c.Opened.IsZero() && !v.c.Opened.Before(v.failed))
	// An open incident has neither yet; its status says it is open.
	add("Time to recover (failure → recovered)", d.TimeToRecover, recovered && !v.failed.IsZero() && !v.recovered.Before(v.failed))
	add("Duration (incident opened → recovered)", d.Duration, recovered && !v.c.Opened.IsZero() && !v.recovered.Before(v.c.Opened))
	return fs
}

// timeFacts are the moments of the incident.
func (v view) timeFacts() []Fact {
	var fs []Fact
	add := func(name string, t time.Time) {
		if !t.IsZero() {
			fs = append(fs, Fact{name, formatTime(t)})
		}
	}
	add("Failed at", v.failed)
	add("Incident opened", v.c.Opened)
	add("Recovered at", v.recovered)
	return fs
}

// ---- titles -------------------------------------------------------------

// headline is what happened, in the words a responder uses for this kind
// of failure: the start of the title and the panel's caption. Fixed words,
// never event text.
func headline(in *incident.Incident) string {
	switch {
	case in.Reason == incident.ReasonManualRollback:
		return "Manual rollback"
	case in.Kind == incident.KindWorkflow:
		return "Workflow failed"
	case in.Kind == incident.KindApplication && in.Reason == "SyncFailed":
		return "Sync failed"
	case in.Kind == incident.KindApplication:
		return "Degraded"
	case in.Reason == "AnalysisRunError":
		return "Analysis error"
	case in.Reason == "AnalysisRunInconclusive":
		return "Analysis inconclusive"
	case strings.HasPrefix(in.Reason, "AnalysisRun"):
		return "Analysis failed"
	}
	return "Rollback detected"
}

// Title names the incident: "Rollback detected: payments/checkout-api",
// "Sync failed: argocd/shop", "Workflow failed: payments/db-migrate-x7k2p",
// "Manual rollback: payments/checkout-api reverted from revision 7 to
// revision 5". The default summary template is "[INCIDENT] " and this.
func Title(in *incident.Incident) string {
	s := headline(in) + ": " + in.Subject()
	if in.Reason == incident.ReasonManualRollback {
		switch {
		case in.RevertedFrom != "" && in.RevertedTo != "":
			s += " reverted from revision " + in.RevertedFrom + " to revision " + in.RevertedTo
		case in.RevertedTo != "":
			s += " reverted to revision " + in.RevertedTo
		}
	}
	return s
}

// revisionLabel names what Revision holds for the kind: a Workflow's is
// its uid, which is no revision.
func revisionLabel(in *incident.Incident) string {
	switch in.Kind {
	case incident.KindWorkflow:
		return "Workflow uid"
	case incident.KindApplication:
		return "Sync revision"
	}
	return "Revision"
}

// revisionPhrase is " revision 7" / " sync revision 9f3c2e1a", or "" for a
// Workflow (whose uid is no revision) or an unknown revision.
func revisionPhrase(in *incident.Incident) string {
	if in.Revision == "" || in.Kind == incident.KindWorkflow {
		return ""
	}
	if in.Kind == incident.KindApplication {
		return " sync revision " + shortRevision(in.Revision)
	}
	return " revision " + in.Revision
}

// ---- facts --------------------------------------------------------------

// Fact is one line of a facts table.
type Fact struct{ Name, Value string }

func imageList(imgs []incident.Image) string {
	var out []string
	for _, img := range imgs {
		if img.Container != "" {
			out = append(out, img.Container+": "+img.Image)
		} else {
			out = append(out, img.Image)
		}
	}
	return strings.Join(out, ", ")
}

// Facts lists what the events told about the object and the change, in
// the order a responder reads them; absent facts are left out rather than
// shown empty. Times, owner and priority are the context's (see
// Description and Page).
func Facts(in *incident.Incident) []Fact {
	var fs []Fact
	add := func(name, value string) {
		if strings.TrimSpace(value) != "" {
			fs = append(fs, Fact{name, value})
		}
	}
	add("Object", in.Kind+" "+in.Subject())
	add("Cluster", in.Cluster)
	add(revisionLabel(in), in.Revision)
	add("Pod template hash", in.PodHash)
	add("Stable ReplicaSet hash", in.StableRS)
	add("Strategy", in.Strategy)
	add("Step", in.Step)
	add("Phase", in.Phase)
	if in.Reason != in.Phase {
		add("Reason", in.Reason)
	}
	switch {
	case len(in.ImagesBefore) > 0:
		add("Images (before → after)", imageList(in.ImagesBefore)+" → "+cmp.Or(imageList(in.Images), "not reported"))
	case len(in.StableImages) > 0:
		add("Images (stable → failed)", imageList(in.StableImages)+" → "+cmp.Or(imageList(in.Images), "not reported"))
	default:
		add("Images", imageList(in.Images))
	}
	add("Reverted from revision", in.RevertedFrom)
	add("Reverted to revision", in.RevertedTo)
	add("ReplicaSets", strings.Join(in.ReplicaSets, ", "))
	add("Initiated by", in.InitiatedBy)
	add("Argo CD application", in.Application)
	add("Argo CD sync revision", in.SyncRevision)
	add("Argo CD project", in.Project)
	add("Repository", in.RepoURL)
	add("Target revision", in.TargetRevision)
	switch {
	case in.DestinationServer != "" && in.DestinationNS != "":
		add("Destination", "namespace "+in.DestinationNS+" on "+in.DestinationServer)
	default:
		add("Destination", in.DestinationServer+in.DestinationNS)
	}
	add("Synced at", formatTime(in.SyncedAt))
	add("Failed step", in.FailedNode)
	add("Reported by", strings.Join(in.Reporters(), ", "))
	return fs
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 MST")
}

// ---- analysis -------------------------------------------------------------

// AnalysisRow is one failed metric, every cell filled.
type AnalysisRow struct {
	Metric   string // name, and the AnalysisRun it ran in
	Provider string
	Result   string
	Values   string // the last measured values
	Limit    string // the failure limit
}

// notReported fills a cell whose fact no event carried.
const notReported = "not reported"

// maxValues is how many of the last measurements a row shows.
const maxValues = 5

// AnalysisRows is the failed-analysis table: one row per failed metric.
func AnalysisRows(in *incident.Incident) []AnalysisRow {
	var rows []AnalysisRow
	for _, a := range in.Analysis {
		r := AnalysisRow{
			Metric:   cmp.Or(a.Metric, notReported),
			Provider: cmp.Or(a.Provider, notReported),
			Result:   AnalysisResult(a),
			Values:   notReported,
			Limit:    cmp.Or(a.FailureLimit, notReported),
		}
		if a.Run != "" {
			r.Metric += " (AnalysisRun " + a.Run + ")"
		}
		switch n := len(a.Values); {
		case n > maxValues:
			r.Values = strings.Join(a.Values[n-maxValues:], ", ") + fmt.Sprintf(" (last %d of %d)", maxValues, n)
		case n > 0:
			r.Values = strings.Join(a.Values, ", ")
		case a.Phase == "Error" && a.Message != "":
			r.Values = "none: " + a.Message
		}
		rows = append(rows, r)
	}
	return rows
}

// AnalysisResult says how a metric failed, e.g. "Failed: 3 of 4
// measurements failed".
func AnalysisResult(a incident.Analysis) string {
	s := cmp.Or(a.Phase, "Failed")
	switch {
	case a.Count > 0 && a.Failed > 0:
		s += fmt.Sprintf(": %d of %d measurements failed", a.Failed, a.Count)
	case a.Failed > 0:
		s += fmt.Sprintf(": %d measurements failed", a.Failed)
	case a.Assessment != "":
		s += ": " + a.Assessment
	}
	return s
}

// analysisPhrase says in words why the first failed metric failed:
// "metric success-rate failed 3 of 4 measurements (failure limit 2)".
func analysisPhrase(a incident.Analysis) string {
	s := "analysis"
	if a.Metric != "" {
		s = "metric " + a.Metric
	}
	switch {
	case a.Count > 0 && a.Failed > 0:
		s += fmt.Sprintf(" failed %d of %d measurements", a.Failed, a.Count)
	case a.Failed > 0:
		s += fmt.Sprintf(" failed %d measurements", a.Failed)
	case a.Assessment != "":
		s += " assessed " + cmp.Or(a.Phase, "Failed") + ": " + a.Assessment
	default:
		s += " " + strings.ToLower(cmp.Or(a.Phase, "Failed"))
	}
	if a.FailureLimit != "" && a.Failed > 0 {
		s += " (failure limit " + a.FailureLimit + ")"
	}
	return s
}

// resourceText describes a degraded resource; its message is left out
// when it is the incident's own, shown already.
func resourceText(r incident.Resource, shown string) string {
	s := r.Kind + " " + strings.Trim(r.Namespace+"/"+r.Name, "/")
	if r.Health != "" {
		s += " is " + r.Health
	}
	if r.Message != "" && r.Message != shown {
		s += ": " + r.Message
	}
	return s
}

// ---- sentences ------------------------------------------------------------

// abortPrefix is what the controller puts before the reason of an abort:
// "RolloutAborted: Rollout aborted update to revision 7: ".
func stripAbortPrefix(msg string) string {
	rest := msg
	if m := reasonPrefix(rest); m != "" {
		rest = strings.TrimPrefix(rest, m+": ")
	}
	if strings.HasPrefix(rest, "Rollout aborted update to revision ") {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return after
		}
		return ""
	}
	return msg
}

// reasonPrefix returns the "Reason" of a "Reason: message" text, if any.
func reasonPrefix(msg string) string {
	head, _, ok := strings.Cut(msg, ": ")
	if !ok || head == "" || strings.ContainsAny(head, " \t") || head[0] < 'A' || head[0] > 'Z' {
		return ""
	}
	return head
}

// what says in one sentence what failed, from the facts.
func (v view) what() string {
	in := v.in
	where := ""
	if in.Cluster != "" {
		where = " in cluster " + in.Cluster
	}
	switch {
	case in.Reason == incident.ReasonManualRollback:
		s := "Rollout " + in.Subject() + where + " was rolled back by hand"
		if in.RevertedFrom != "" {
			s += " from revision " + in.RevertedFrom
		}
		if in.RevertedTo != "" {
			s += " to revision " + in.RevertedTo
		}
		if in.InitiatedBy != "" {
			s += ", by " + in.InitiatedBy
		}
		return s + "."
	case in.Kind == incident.KindWorkflow:
		s := "Workflow " + in.Subject() + where + " " + strings.ToLower(cmp.Or(in.Phase, "failed"))
		if in.FailedNode != "" {
			s += " at step " + in.FailedNode
		}
		return s + "."
	case in.Kind == incident.KindApplication && in.Reason == "SyncFailed":
		return "Argo CD could not sync application " + in.Subject() + where + " to" + cmp.Or(revisionPhrase(in), " its target revision") + "."
	case in.Kind == incident.KindApplication:
		s := "Argo CD application " + in.Subject() + where + " is Degraded"
		if p := revisionPhrase(in); p != "" {
			s += " at" + p
		}
		return s + "."
	}
	// Rollouts.
	because, detail := "", ""
	if len(in.Analysis) > 0 {
		because = " because " + analysisPhrase(in.Analysis[0])
		detail = ": " + analysisPhrase(in.Analysis[0])
	}
	switch {
	case strings.HasPrefix(in.Reason, "AnalysisRun"):
		return "The analysis of Rollout " + in.Subject() + where + revisionAt(in) + " " + strings.ToLower(cmp.Or(in.Phase, "failed")) + detail + "."
	case in.Reason == "ProgressDeadlineExceeded":
		return "Rollout " + in.Subject() + where + " did not progress to" + cmp.Or(revisionPhrase(in), " its new revision") + " in time."
	case in.Reason == "RolloutAborted" || strings.Contains(in.Message, "Rollout aborted update"):
		return "Argo Rollouts aborted the update of Rollout " + in.Subject() + where + " to" + cmp.Or(revisionPhrase(in), " its new revision") + because + "."
	}
	s := "Rollout " + in.Subject() + where + " is " + cmp.Or(in.Phase, "failed") + revisionAt(in)
	if in.Reason != "" {
		s += " (" + in.Reason + ")"
	}
	return s + "."
}

func revisionAt(in *incident.Incident) string {
	if p := revisionPhrase(in); p != "" {
		return " at" + p
	}
	return ""
}

// recoverySentence says how the object recovered, or that it has not.
func (v view) recoverySentence() string {
	if !v.isRecovered() {
		healthy := "is Healthy again"
		switch v.in.Kind {
		case incident.KindApplication:
			healthy = "is Healthy and Synced again"
		case incident.KindWorkflow:
			healthy = "succeeds on retry"
		}
		return "Not recovered yet: this is updated when " + v.in.Kind + " " + v.in.Subject() + " " + healthy + "."
	}
	s := "Recovered"
	if t := formatTime(v.recovered); t != "" {
		s += " at " + t
	}
	if r := v.in.Recovery; r != nil {
		s += ": " + RecoveryEntry(r)
		if r.Source != "" {
			s += ", reported by " + r.Source
		}
	}
	return s + "."
}

// detection says how the failure was noticed: by which check, reported
// through what, and when the incident was opened.
func (v view) detection() string {
	in := v.in
	var s string
	switch {
	case len(in.Analysis) > 0:
		a := in.Analysis[0]
		s = "Argo Rollouts analysis detected it"
		if a.Metric != "" {
			s += " (metric " + a.Metric
			if a.Provider != "" {
				s += ", " + a.Provider
			}
			s += ")"
		}
	case in.Reason == incident.ReasonManualRollback:
		s = "The rollback itself was detected"
	case in.Kind == incident.KindApplication:
		s = "Argo CD detected it"
	case in.Kind == incident.KindWorkflow:
		s = "Argo Workflows detected it"
	default:
		s = "Argo Rollouts detected it"
	}
	if t := formatTime(v.failed); t != "" {
		s += " at " + t
	}
	s += "."
	if rs := in.Reporters(); len(rs) > 0 {
		s += " Reported by: " + strings.Join(rs, ", ") + "."
	}
	if !v.c.Opened.IsZero() {
		s += " The incident"
		if v.c.JiraKey != "" {
			s += " " + v.c.JiraKey
		}
		s += " was opened automatically at " + formatTime(v.c.Opened) + "."
	}
	return s
}

// mitigation says what the platform already did, when the facts tell.
func (v view) mitigation() string {
	in := v.in
	if in.Kind != incident.KindRollout || in.Reason == incident.ReasonManualRollback {
		return ""
	}
	if in.Reason != "RolloutAborted" && !strings.HasPrefix(in.Reason, "AnalysisRun") && !strings.Contains(in.Message, "Rollout aborted update") {
		return ""
	}
	s := "Mitigated automatically: Argo Rollouts shifted traffic back to the stable ReplicaSet"
	if in.StableRS != "" {
		s += " (" + in.StableRS + ")"
	}
	return s + " when it aborted the update" + revisionTo(in) + "."
}

func revisionTo(in *incident.Incident) string {
	if p := revisionPhrase(in); p != "" {
		return " to" + p
	}
	return ""
}

// ---- timeline -------------------------------------------------------------

// TimelineEntry is the timeline text of one event, in words that fit its
// kind.
func TimelineEntry(in *incident.Incident) string {
	s := ""
	switch {
	case in.Reason == incident.ReasonManualRollback:
		s = cmp.Or(in.Kind, incident.KindRollout) + " " + in.Subject() + " rolled back by hand"
		if in.RevertedFrom != "" {
			s += " from revision " + in.RevertedFrom
		}
		if in.RevertedTo != "" {
			s += " to revision " + in.RevertedTo
		}
		if in.InitiatedBy != "" {
			s += " by " + in.InitiatedBy
		}
		// The restored images: the news a joined incident would otherwise
		// not show, since its facts keep the failed ones.
		var imgs []string
		for _, im := range in.Images {
			imgs = append(imgs, im.Image)
		}
		if len(imgs) > 0 {
			s += "; restored " + strings.Join(imgs, ", ")
		}
		return s
	case in.Kind == incident.KindWorkflow:
		s = "Workflow " + in.Subject() + " " + strings.ToLower(cmp.Or(in.Phase, "failed"))
		if in.FailedNode != "" {
			return s + " at step " + in.FailedNode
		}
	case in.Kind == incident.KindApplication && in.Reason == "SyncFailed":
		s = "Argo CD sync of application " + in.Subject() + revisionTo(in) + " failed"
	case in.Kind == incident.KindApplication:
		s = "Argo CD application " + in.Subject() + " Degraded"
	case in.Application != "":
		// An Argo CD event filed under its Rollout.
		s = "Argo CD application " + in.Application + " Degraded: Rollout " + in.Subject() + " " + cmp.Or(in.Phase, "failed")
	case strings.HasPrefix(in.Reason, "AnalysisRun"):
		run := ""
		if len(in.Analysis) > 0 && in.Analysis[0].Run != "" {
			run = " " + in.Analysis[0].Run
		}
		s = "AnalysisRun" + run + revisionOf(in) + " " + strings.ToLower(cmp.Or(in.Phase, "failed"))
	case in.Reason == "RolloutAborted":
		s = "Argo Rollouts aborted the update of Rollout " + in.Subject() + revisionTo(in)
		if rest := stripAbortPrefix(in.Message); rest != "" && rest != in.Message {
			return s + ": " + rest
		}
		return s
	default:
		s = "Rollout " + in.Subject() + " " + cmp.Or(in.Phase, "failed") + revisionAt(in)
		if in.Reason != "" {
			s += " (" + in.Reason + ")"
		}
	}
	if in.Message != "" {
		s += ": " + in.Message
	}
	return s
}

func revisionOf(in *incident.Incident) string {
	if p := revisionPhrase(in); p != "" {
		return " of" + p
	}
	return ""
}

// RecoveryEntry is the timeline text of a recovery.
func RecoveryEntry(r *incident.Recovery) string {
	switch r.Kind {
	case incident.KindWorkflow:
		return "Workflow " + r.Subject() + " " + strings.ToLower(cmp.Or(r.State, "succeeded")) + " on retry"
	case incident.KindApplication:
		s := "Argo CD application " + r.Subject() + " " + cmp.Or(r.State, "Healthy and Synced")
		if r.Revision != "" {
			s += " at sync revision " + shortRevision(r.Revision)
		}
		return s
	}
	s := r.Kind + " " + r.Subject() + " " + cmp.Or(r.State, "Healthy") + " again"
	if r.Revision != "" {
		s += " at revision " + r.Revision
	}
	return s
}

// Timeline is the timeline the documents show: the context's rows (or,
// with none, the incident's own event), the opening and the recovery, in
// time order, each once. Rows without a time come last.
func Timeline(in *incident.Incident, c Context) []TimelineRow {
	return newView(in, c).timeline()
}

func (v view) timeline() []TimelineRow {
	rows := slices.Clone(v.c.Timeline)
	if len(rows) == 0 && !v.in.Time.IsZero() {
		rows = append(rows, TimelineRow{v.in.Time, TimelineEntry(v.in)})
	}
	if !v.c.Opened.IsZero() {
		text := "Incident opened automatically"
		if v.c.JiraKey != "" {
			text = "Incident " + v.c.JiraKey + " opened automatically"
		}
		rows = append(rows, TimelineRow{v.c.Opened, text})
	}
	if v.isRecovered() && !v.recovered.IsZero() {
		text := "Recovered"
		if v.in.Recovery != nil {
			text = RecoveryEntry(v.in.Recovery)
		}
		rows = append(rows, TimelineRow{v.recovered, text})
	}
	slices.SortStableFunc(rows, func(a, b TimelineRow) int {
		switch {
		case a.At.IsZero() && b.At.IsZero():
			return 0
		case a.At.IsZero():
			return 1
		case b.At.IsZero():
			return -1
		}
		return a.At.Compare(b.At)
	})
	return slices.CompactFunc(rows, func(a, b TimelineRow) bool { return a.At.Equal(b.At) && a.Text == b.Text })
}

// ---- next steps -------------------------------------------------------------

// Command is a command a responder runs, and what it shows.
type Command struct {
	Line string
	Why  string
}

// NextSteps are the commands to inspect the object, per kind. Names that
// are not valid Kubernetes names (which the decoder checks for the object
// itself, but not for everything an event mentions) are left out: a
// command is for pasting into a shell.
func NextSteps(in *incident.Incident) []Command {
	var cmds []Command
	add := func(why, line string, names ...string) {
		for _, n := range names {
			if !isDNSName(n) {
				return
			}
		}
		cmds = append(cmds, Command{line, why})
	}
	ns, name := in.Namespace, in.Name
	switch in.Kind {
	case incident.KindRollout:
		add("steps, ReplicaSets, pods and analysis runs of the rollout",
			"kubectl argo rollouts get rollout "+name+" -n "+ns, name, ns)
		add("its status now: Healthy, Progressing, Paused or Degraded",
			"kubectl argo rollouts status "+name+" -n "+ns, name, ns)
		seen := map[string]bool{}
		for _, a := range in.Analysis {
			if a.Run != "" && !seen[a.Run] {
				seen[a.Run] = true
				add("the analysis run, every measurement included",
					"kubectl get analysisrun "+a.Run+" -n "+ns+" -o yaml", a.Run, ns)
			}
		}
		if appNS, app, ok := strings.Cut(in.Application, "/"); ok {
			add("the Argo CD application's sync history, to see what changed",
				"argocd app history "+appRef(appNS, app), appNS, app)
		}
	case incident.KindApplication:
		add("health, sync state and resources of the application",
			"argocd app get "+appRef(ns, name), ns, name)
		add("its sync history, to see what changed",
			"argocd app history "+appRef(ns, name), ns, name)
		for _, r := range in.Resources {
			if r.Kind == incident.KindRollout {
				rns := cmp.Or(r.Namespace, in.DestinationNS)
				add("the degraded rollout "+r.Name, "kubectl argo rollouts get rollout "+r.Name+" -n "+rns, r.Name, rns)
			}
		}
	case incident.KindWorkflow:
		add("the workflow's steps and the one that failed", "argo get "+name+" -n "+ns, name, ns)
		add("the logs of its pods", "argo logs "+name+" -n "+ns, name, ns)
	}
	return cmds
}

// appRef is how the argocd CLI names an application: the bare name in the
// control plane's namespace, namespace/name elsewhere (apps in any
// namespace).
func appRef(ns, name string) string {
	if ns == "" || ns == "argocd" || ns == "openshift-gitops" {
		return name
	}
	return ns + "/" + name
}

func commandsText(cmds []Command) string {
	var b strings.Builder
	for i, c := range cmds {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("# " + c.Why + "\n" + c.Line)
	}
	return b.String()
}

// isDNSName reports whether s is a DNS-1123 subdomain: lowercase letters,
// digits, '-' and '.', starting and ending with a letter or digit.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return alnum(s[0]) && alnum(s[len(s)-1])
}

// Link titles the function gives, shared with the decoder's.
const (
	titleArgoCD    = "Argo CD application"
	titleDashboard = "Argo Rollouts dashboard"
	titleWorkflows = "Argo Workflows"
)

// links are the links a responder opens: the ones the events carried, the
// UIs from the configured base URLs when the events carried none, and the
// configured link templates; each URL once.
func (v view) links() []incident.Link {
	in := v.in
	out := slices.Clone(in.Links)
	has := func(title string) bool {
		return slices.ContainsFunc(out, func(l incident.Link) bool { return l.Title == title })
	}
	join := func(base string, parts ...string) string {
		u := strings.TrimRight(base, "/")
		for _, p := range parts {
			u += "/" + url.PathEscape(p)
		}
		return u
	}
	appNS, app := in.Namespace, in.Name
	if in.Kind != incident.KindApplication {
		appNS, app, _ = strings.Cut(in.Application, "/")
	}
	if base := v.c.ArgoCDURL; base != "" && app != "" && !has(titleArgoCD) {
		// /applications/<namespace>/<name>: the Argo CD UI route that
		// works in every namespace (2.5 and later).
		out = append(out, incident.Link{Title: titleArgoCD, URL: join(base, "applications", appNS, app)})
	}
	if base := v.c.RolloutsDashboardURL; base != "" && in.Kind == incident.KindRollout && !has(titleDashboard) {
		// The dashboard's route is <root path>/rollout/<namespace>/<name>.
		out = append(out, incident.Link{Title: titleDashboard, URL: join(base, "rollout", in.Namespace, in.Name)})
	}
	if base := v.c.WorkflowsURL; base != "" && in.Kind == incident.KindWorkflow && !has(titleWorkflows) {
		out = append(out, incident.Link{Title: titleWorkflows, URL: join(base, "workflows", in.Namespace, in.Name)})
	}
	out = append(out, v.c.Links...)
	return uniqueURLs(out)
}

// uniqueURLs drops the links whose URL an earlier one has.
func uniqueURLs(ls []incident.Link) []incident.Link {
	var out []incident.Link
	for _, l := range ls {
		if !slices.ContainsFunc(out, func(o incident.Link) bool { return o.URL == l.URL }) {
			out = append(out, l)
		}
	}
	return out
}

// shortRevision shortens git SHAs and uids the way people quote them.
func shortRevision(rev string) string {
	if len(rev) >= 32 && isHex(strings.ReplaceAll(rev, "-", "")) {
		return rev[:8]
	}
	return rev
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return s != ""
}

// ownerFacts are the owner and the priority; an unknown owner says how
// to name one, as the object is the place to do it.
func (v view) ownerFacts() []Fact {
	fs := []Fact{{"Owner", cmp.Or(v.owner(), "not known: annotate the object with rollback-incident/owner")}}
	if v.c.Priority != "" {
		fs = append(fs, Fact{"Priority", v.c.Priority})
	}
	return fs
}

// statusText is the incident's state for the status badge and the panel.
func (v view) statusText() string {
	if v.isRecovered() {
		return "Recovered"
	}
	return "Open"
}
