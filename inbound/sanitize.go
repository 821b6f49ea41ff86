package inbound

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"function/incident"
	"function/internal/clip"
)

// Length caps per field, in runes. A Rollout message is a few hundred
// characters; anything far longer is noise that would only bloat the issue.
const (
	maxMessage = 4000
	maxShort   = 512
)

// sanitize cleans every string of the incident once, here, so that no
// renderer sees control characters, invalid UTF-8 or bidirectional overrides
// (which XML rejects or which can disguise text), and nothing unbounded.
func sanitize(in *incident.Incident) {
	for _, p := range []*string{
		&in.Source, &in.Cluster, &in.Kind, &in.Namespace, &in.Name, &in.Revision, &in.PodHash,
		&in.StableRS, &in.Phase, &in.Reason, &in.Strategy, &in.Step, &in.Project, &in.RepoURL,
		&in.TargetRevision, &in.DestinationServer, &in.DestinationNS, &in.RequestedProject,
		&in.RequestedIssueType, &in.EventID, &in.Owner, &in.Application, &in.SyncRevision,
		&in.RequestedPriority, &in.RevertedFrom, &in.RevertedTo, &in.InitiatedBy,
	} {
		*p = clip.Text(cleanString(*p), maxShort)
	}
	in.Message = clip.Text(cleanString(in.Message), maxMessage)
	in.FailedNode = clip.Text(cleanString(in.FailedNode), maxMessage)
	for i := range in.ReplicaSets {
		in.ReplicaSets[i] = clip.Text(cleanString(in.ReplicaSets[i]), maxShort)
	}
	for _, imgs := range [][]incident.Image{in.Images, in.StableImages, in.ImagesBefore} {
		for i := range imgs {
			imgs[i].Container = clip.Text(cleanString(imgs[i].Container), maxShort)
			imgs[i].Image = clip.Text(cleanString(imgs[i].Image), maxShort)
		}
	}
	for i := range in.Analysis {
		a := &in.Analysis[i]
		for _, p := range []*string{&a.Run, &a.Metric, &a.Phase, &a.Provider, &a.FailureLimit, &a.Assessment} {
			*p = clip.Text(cleanString(*p), maxShort)
		}
		a.Message = clip.Text(cleanString(a.Message), maxMessage)
		for j := range a.Values {
			a.Values[j] = clip.Text(cleanString(a.Values[j]), maxShort)
		}
	}
	for i := range in.Resources {
		r := &in.Resources[i]
		for _, p := range []*string{&r.Kind, &r.Namespace, &r.Name, &r.Health} {
			*p = clip.Text(cleanString(*p), maxShort)
		}
		r.Message = clip.Text(cleanString(r.Message), maxMessage)
	}
	links := in.Links[:0]
	for _, l := range in.Links {
		l.Title = clip.Text(cleanString(l.Title), maxShort)
		if safeURL(l.URL) {
			links = append(links, l)
		}
	}
	in.Links = links
}

func sanitizeRecovery(r *incident.Recovery) {
	for _, p := range []*string{&r.Cluster, &r.Kind, &r.Namespace, &r.Name, &r.Revision, &r.State, &r.Source} {
		*p = clip.Text(cleanString(*p), maxShort)
	}
}

// cleanString drops control characters other than newline and tab, invalid
// UTF-8, and Unicode bidirectional controls.
func cleanString(s string) string {
	clean := true
	for _, r := range s {
		if !keepRune(r) {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "") {
		if keepRune(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func keepRune(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return true
	case r == utf8.RuneError, r == 0xFFFE, r == 0xFFFF:
		return false
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F:
		return false
	case unicode.IsControl(r):
		return false
	}
	return true
}

// safeURL accepts only absolute http(s) URLs without white space, so that a
// link from an event cannot become javascript: or data: in any renderer.
func safeURL(u string) bool {
	if len(u) > 2048 || strings.ContainsAny(u, " \t\n\r\"'<>`") {
		return false
	}
	lu := strings.ToLower(u)
	return strings.HasPrefix(lu, "https://") || strings.HasPrefix(lu, "http://")
}
