package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	texttemplate "text/template"
	"unicode"

	"function/incident"
)

// FieldsTemplate is the optional template of extra Jira fields.
const FieldsTemplate = "jira-fields.tmpl"

// reservedFields are set by the function; a template may not replace them.
var reservedFields = map[string]bool{"project": true, "issuetype": true, "summary": true, "description": true}

// fieldsView is what the fields template sees: every string JSON-escaped
// (without quotes), so that event text placed in a JSON string stays in it,
// whatever it contains.
type fieldsView struct {
	Cluster, Kind, Namespace, Name, Revision, PodHash, Phase, Reason, Message, Strategy, Project, Fingerprint string
	// Title is the default title (see Title); Owner and RequestedPriority
	// are what the object's annotations ask for.
	Title, Owner, RequestedPriority string
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s) // marshalling a string cannot fail
	return string(b[1 : len(b)-1])
}

func parseFields(fsys fs.FS) (*texttemplate.Template, error) {
	if _, err := fs.Stat(fsys, FieldsTemplate); err != nil {
		return nil, nil // optional
	}
	t, err := texttemplate.New(FieldsTemplate).Option("missingkey=error").ParseFS(fsys, FieldsTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", FieldsTemplate, err)
	}
	return t, nil
}

// Fields renders the extra Jira fields for in. Labels are returned apart,
// with white space replaced (Jira refuses labels with spaces).
func (r *Renderer) Fields(in *incident.Incident) (fields map[string]json.RawMessage, labels []string, err error) {
	if r.fields == nil {
		return nil, nil, nil
	}
	v := fieldsView{}
	for dst, src := range map[*string]string{
		&v.Cluster: in.Cluster, &v.Kind: in.Kind, &v.Namespace: in.Namespace, &v.Name: in.Name, &v.Revision: in.Revision,
		&v.PodHash: in.PodHash, &v.Phase: in.Phase, &v.Reason: in.Reason, &v.Message: in.Message, &v.Strategy: in.Strategy,
		&v.Project: in.Project, &v.Fingerprint: in.Fingerprint(),
		&v.Title: Title(in), &v.Owner: in.Owner, &v.RequestedPriority: in.RequestedPriority,
	} {
		*dst = jsonEscape(src)
	}
	var b bytes.Buffer
	if err := r.fields.Execute(&b, v); err != nil {
		return nil, nil, fmt.Errorf("render %s: %w", FieldsTemplate, err)
	}
	if err := json.Unmarshal(b.Bytes(), &fields); err != nil {
		return nil, nil, fmt.Errorf("render %s: not a JSON object: %w", FieldsTemplate, err)
	}
	for k := range fields {
		if reservedFields[k] {
			return nil, nil, fmt.Errorf("render %s: field %q is set by the function", FieldsTemplate, k)
		}
	}
	if raw, ok := fields["labels"]; ok {
		var ls []string
		if err := json.Unmarshal(raw, &ls); err != nil {
			return nil, nil, fmt.Errorf("render %s: labels must be a list of strings", FieldsTemplate)
		}
		for _, l := range ls {
			l = strings.Join(strings.FieldsFunc(l, unicode.IsSpace), "-")
			if l != "" && len(l) <= 255 {
				labels = append(labels, l)
			}
		}
		delete(fields, "labels")
	}
	return fields, labels, nil
}

// LinkTemplate is a configured link, e.g. Grafana with
// https://grafana.example.com/d/x?var-namespace={{.Namespace}}.
type LinkTemplate struct {
	Title string
	t     *texttemplate.Template
}

// ParseLinks parses "Title=template" entries separated by newlines or
// "; ". Values reach the URL query-escaped, so event text cannot change the
// link's structure.
func ParseLinks(spec string) ([]LinkTemplate, error) {
	var out []LinkTemplate
	for _, entry := range strings.FieldsFunc(spec, func(r rune) bool { return r == '\n' || r == ';' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		title, tmpl, ok := strings.Cut(entry, "=")
		if !ok || strings.TrimSpace(title) == "" {
			return nil, fmt.Errorf("link %q: want Title=URL template", entry)
		}
		t, err := texttemplate.New(title).Option("missingkey=error").Parse(strings.TrimSpace(tmpl))
		if err != nil {
			return nil, fmt.Errorf("link %q: %w", title, err)
		}
		lt := LinkTemplate{Title: strings.TrimSpace(title), t: t}
		if _, err := lt.render(&incident.Incident{Cluster: "c", Kind: "Rollout", Namespace: "n", Name: "x", Revision: "1"}); err != nil {
			return nil, fmt.Errorf("link %q: %w", title, err)
		}
		out = append(out, lt)
	}
	return out, nil
}

type linkView struct{ Cluster, Kind, Namespace, Name, Revision, PodHash, Fingerprint string }

func (lt LinkTemplate) render(in *incident.Incident) (string, error) {
	q := url.QueryEscape
	v := linkView{q(in.Cluster), q(in.Kind), q(in.Namespace), q(in.Name), q(in.Revision), q(in.PodHash), in.Fingerprint()}
	var b bytes.Buffer
	if err := lt.t.Execute(&b, v); err != nil {
		return "", err
	}
	u, err := url.Parse(b.String())
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("does not make an absolute http(s) URL: %q", b.String())
	}
	return b.String(), nil
}

// RenderLinks renders the configured links for the incident, for
// Context.Links. A link that does not render is left out and reported; the
// others are returned.
func RenderLinks(in *incident.Incident, links []LinkTemplate) ([]incident.Link, error) {
	var out []incident.Link
	var errs []error
	for _, lt := range links {
		u, err := lt.render(in)
		if err != nil {
			errs = append(errs, fmt.Errorf("link %s: %w", lt.Title, err))
			continue
		}
		out = append(out, incident.Link{Title: lt.Title, URL: u})
	}
	return out, errors.Join(errs...)
}

// AddLinks appends the configured links to the incident.
func AddLinks(in *incident.Incident, links []LinkTemplate) error {
	out, err := RenderLinks(in, links)
	in.Links = append(in.Links, out...)
	return err
}
