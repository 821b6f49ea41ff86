// Package templates holds the default templates, embedded so that the
// function needs no files at run time.
//
//   - summary.tmpl: the Jira summary (text/template, one line; the
//     incident's fields and .Title, the default title for its kind).
//   - postmortem.storage.tmpl: the Confluence postmortem page in storage
//     format (html/template, so every value is escaped for XHTML whatever
//     the template does); generated sections sit between {{generated
//     "name"}} and {{endgenerated "name"}} so that updates can refresh them.
//   - jira-fields.tmpl: extra Jira fields (priority, components, labels,
//     custom fields) as a JSON object; event values arrive JSON-escaped.
package templates

import (
	"embed"
	"errors"
	"io/fs"
	"os"
	"slices"
)

// FS holds the default templates.
//
//go:embed *.tmpl
var FS embed.FS

// WithOverrides returns the templates with the files in dir taking the
// place of the embedded defaults of the same name (TEMPLATES_DIR, e.g. a
// mounted ConfigMap). Files dir lacks keep their default.
func WithOverrides(dir string) fs.FS {
	return overlay{top: os.DirFS(dir), base: FS}
}

type overlay struct{ top, base fs.FS }

func (o overlay) Open(name string) (fs.File, error) {
	f, err := o.top.Open(name)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return o.base.Open(name)
}

// Glob lets template.ParseFS find a file in either layer: each name once,
// in lexical order, as fs.Glob gives them.
func (o overlay) Glob(pattern string) ([]string, error) {
	a, err := fs.Glob(o.top, pattern)
	if err != nil {
		return nil, err
	}
	b, err := fs.Glob(o.base, pattern)
	if err != nil {
		return nil, err
	}
	names := append(a, b...)
	slices.Sort(names)
	return slices.Compact(names), nil
}
