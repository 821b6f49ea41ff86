// Package templates holds the default templates, embedded so that the
// function needs no files at run time.
//
//   - summary.tmpl: the Jira summary (text/template, one line).
//   - postmortem.storage.tmpl: the Confluence postmortem page in storage
//     format (html/template, so every value is escaped for XHTML whatever
//     the template does).
package templates

import "embed"

// FS holds the default templates.
//
//go:embed *.tmpl
var FS embed.FS
