package emulator

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The emulator understands a small JQL subset: AND-joined clauses of the
// form
//
//	field = value | field != value | field in (v, ...) | field not in (v, ...)
//
// over project, labels, key (issuekey, id), status, issuetype (type) and
// statusCategory, optionally followed by ORDER BY created|updated|key|id
// [ASC|DESC], .... Values are bare words or "double"/'single' quoted
// strings with backslash escapes. Anything else (OR, parentheses, NOT,
// IS EMPTY, ~, functions, other fields) is rejected with a 400 in Jira's
// "Error in the JQL Query" form, so a client never silently gets results
// for a query the emulator only half understood.

// jqlQuery is a parsed query.
type jqlQuery struct {
	clauses []jqlClause
	orderBy []jqlOrder
}

// bounded reports whether the query restricts the result set; Jira's
// enhanced search refuses unbounded queries.
func (q *jqlQuery) bounded() bool { return len(q.clauses) > 0 }

type jqlClause struct {
	field  string // canonical: project, labels, key, status, issuetype, statuscategory
	name   string // as written, for error messages
	negate bool   // != or not in
	values []string
}

type jqlOrder struct {
	field string // canonical: created, updated, key
	desc  bool
}

// maxOrderBy is Jira's limit on ORDER BY fields.
const maxOrderBy = 7

// jqlError is a JQL syntax or semantic error; Error() is the message Jira
// puts in errorMessages.
type jqlError struct {
	msg string
}

func (e *jqlError) Error() string { return e.msg }

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokWord
	tokString
	tokOp
	tokLParen
	tokRParen
	tokComma
)

type token struct {
	kind tokenKind
	text string
	pos  int // byte offset in the query
}

func (t token) is(word string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, word)
}

func (t token) describe() string {
	if t.kind == tokEOF {
		return "EOF"
	}
	return "'" + t.text + "'"
}

type jqlParser struct {
	src  string
	toks []token
	i    int
}

// parseJQL parses the supported subset. The returned error is a *jqlError.
func parseJQL(src string) (*jqlQuery, error) {
	p := &jqlParser{src: src}
	if err := p.lex(); err != nil {
		return nil, err
	}
	return p.parse()
}

// location renders Jira's "(line L, character C)" suffix.
func (p *jqlParser) location(pos int) string {
	line, col := 1, 1
	for _, r := range p.src[:min(pos, len(p.src))] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("(line %d, character %d)", line, col)
}

func (p *jqlParser) errorf(pos int, format string, args ...any) error {
	return &jqlError{msg: "Error in the JQL Query: " + fmt.Sprintf(format, args...) + " " + p.location(pos)}
}

func isWordRune(r rune) bool {
	return !unicode.IsSpace(r) && !strings.ContainsRune(`"'(),=!<>~`, r)
}

func (p *jqlParser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsSpace(r):
			i += size
		case r == '(':
			p.toks = append(p.toks, token{tokLParen, "(", i})
			i++
		case r == ')':
			p.toks = append(p.toks, token{tokRParen, ")", i})
			i++
		case r == ',':
			p.toks = append(p.toks, token{tokComma, ",", i})
			i++
		case r == '"' || r == '\'':
			text, n, err := p.lexQuoted(i, r)
			if err != nil {
				return err
			}
			p.toks = append(p.toks, token{tokString, text, i})
			i += n
		case strings.ContainsRune("=!<>~", r):
			j := i + 1
			if j < len(s) && (s[j] == '=' || s[j] == '~') && r != '=' && r != '~' {
				j++
			}
			p.toks = append(p.toks, token{tokOp, s[i:j], i})
			i = j
		default:
			j := i
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if !isWordRune(r) {
					break
				}
				j += size
			}
			p.toks = append(p.toks, token{tokWord, s[i:j], i})
			i = j
		}
	}
	p.toks = append(p.toks, token{tokEOF, "", len(s)})
	return nil
}

// lexQuoted reads a quoted string starting at s[start] and returns its
// unescaped text and its length in bytes including the quotes.
func (p *jqlParser) lexQuoted(start int, quote rune) (string, int, error) {
	s := p.src
	var sb strings.Builder
	for i := start + 1; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == quote:
			return sb.String(), i + size - start, nil
		case r == '\\':
			if i+1 >= len(s) {
				return "", 0, p.errorf(i, "The escape sequence at the end of the query is incomplete.")
			}
			e, esize := utf8.DecodeRuneInString(s[i+1:])
			switch e {
			case 'n':
				sb.WriteByte('\n')
			case 't':
				sb.WriteByte('\t')
			case 'r':
				sb.WriteByte('\r')
			case 'u':
				if i+6 > len(s) {
					return "", 0, p.errorf(i, "The unicode escape sequence is incomplete.")
				}
				v, err := strconv.ParseUint(s[i+2:i+6], 16, 32)
				if err != nil {
					return "", 0, p.errorf(i, "The unicode escape sequence '%s' is illegal.", s[i:i+6])
				}
				sb.WriteRune(rune(v))
				i += 6
				continue
			case '"', '\'', '\\', ' ':
				sb.WriteRune(e)
			default:
				return "", 0, p.errorf(i, "The escape sequence '\\%c' is illegal.", e)
			}
			i += 1 + esize
		default:
			sb.WriteRune(r)
			i += size
		}
	}
	return "", 0, p.errorf(start, "The quoted string '%s' has not been completed.", s[start:])
}

func (p *jqlParser) peek() token { return p.toks[p.i] }

func (p *jqlParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *jqlParser) parse() (*jqlQuery, error) {
	q := &jqlQuery{}
	if p.peek().kind == tokEOF {
		return q, nil
	}
	if !p.peek().is("order") {
		for {
			c, err := p.parseClause()
			if err != nil {
				return nil, err
			}
			q.clauses = append(q.clauses, c)
			t := p.peek()
			if t.is("and") {
				p.next()
				continue
			}
			if t.kind == tokEOF || t.is("order") {
				break
			}
			if t.is("or") {
				return nil, p.errorf(t.pos, "The emulator supports only AND between clauses, not 'OR'.")
			}
			return nil, p.errorf(t.pos, "Expecting either 'OR' or 'AND' but got %s.", t.describe())
		}
	}
	if p.peek().is("order") {
		order, err := p.parseOrderBy()
		if err != nil {
			return nil, err
		}
		q.orderBy = order
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t.pos, "Expecting end of query but got %s.", t.describe())
	}
	return q, nil
}

// canonicalField maps a searchable field name (and its aliases) to the
// emulator's name for it.
func canonicalField(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "project":
		return "project", true
	case "labels", "label":
		return "labels", true
	case "key", "issuekey", "id", "issue":
		return "key", true
	case "status":
		return "status", true
	case "issuetype", "type":
		return "issuetype", true
	case "statuscategory":
		return "statuscategory", true
	}
	return "", false
}

// otherJiraField reports whether name is a Jira system field the emulator
// does not search on, to tell "unsupported here" apart from "unknown".
func otherJiraField(name string) bool {
	switch strings.ToLower(name) {
	case "summary", "description", "environment", "text", "comment", "assignee", "reporter", "creator",
		"priority", "created", "createddate", "updated", "updateddate", "resolution", "resolutiondate",
		"resolved", "component", "fixversion", "affectedversion", "duedate", "due", "parent", "sprint":
		return true
	}
	return false
}

func (p *jqlParser) parseField() (string, string, error) {
	t := p.next()
	switch {
	case t.kind == tokLParen:
		return "", "", p.errorf(t.pos, "The emulator does not support parenthesised sub-queries.")
	case t.is("not"):
		return "", "", p.errorf(t.pos, "The emulator does not support 'NOT' before a clause.")
	case t.kind != tokWord && t.kind != tokString:
		return "", "", p.errorf(t.pos, "Expecting a field name but got %s.", t.describe())
	}
	canon, ok := canonicalField(t.text)
	if !ok && otherJiraField(t.text) {
		return "", "", p.errorf(t.pos, "The emulator does not support searching on field '%s'.", t.text)
	}
	if !ok {
		return "", "", &jqlError{msg: fmt.Sprintf("Field '%s' does not exist or you do not have permission to view it.", t.text)}
	}
	return canon, t.text, nil
}

func (p *jqlParser) parseClause() (jqlClause, error) {
	field, name, err := p.parseField()
	if err != nil {
		return jqlClause{}, err
	}
	c := jqlClause{field: field, name: name}
	op := p.next()
	switch {
	case op.kind == tokOp && op.text == "=":
	case op.kind == tokOp && op.text == "!=":
		c.negate = true
	case op.is("in"):
		return c, p.parseList(&c)
	case op.is("not") && p.peek().is("in"):
		p.next()
		c.negate = true
		return c, p.parseList(&c)
	case op.kind == tokOp || op.is("is") || op.is("was") || op.is("changed"):
		return c, p.errorf(op.pos, "The emulator does not support the operator '%s'.", op.text)
	default:
		return c, p.errorf(op.pos, "Expecting operator but got %s. The valid operators are '=', '!=', 'in' and 'not in'.", op.describe())
	}
	v, err := p.parseValue()
	if err != nil {
		return c, err
	}
	c.values = []string{v}
	return c, nil
}

func (p *jqlParser) parseList(c *jqlClause) error {
	if t := p.next(); t.kind != tokLParen {
		return p.errorf(t.pos, "Expecting '(' but got %s.", t.describe())
	}
	for {
		v, err := p.parseValue()
		if err != nil {
			return err
		}
		c.values = append(c.values, v)
		t := p.next()
		if t.kind == tokRParen {
			return nil
		}
		if t.kind != tokComma {
			return p.errorf(t.pos, "Expecting ',' or ')' but got %s.", t.describe())
		}
	}
}

func (p *jqlParser) parseValue() (string, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return t.text, nil
	case tokWord:
		if p.peek().kind == tokLParen {
			return "", p.errorf(t.pos, "The emulator does not support JQL functions such as '%s()'.", t.text)
		}
		for _, reserved := range []string{"and", "or", "not", "in", "is", "order", "by", "empty", "null"} {
			if t.is(reserved) {
				return "", p.errorf(t.pos, "Expecting either a value, list or function but got '%s'. You must surround '%s' in quotation marks to use it as a value.", t.text, t.text)
			}
		}
		return t.text, nil
	}
	return "", p.errorf(t.pos, "Expecting either a value, list or function but got %s.", t.describe())
}

func (p *jqlParser) parseOrderBy() ([]jqlOrder, error) {
	p.next() // order
	if t := p.next(); !t.is("by") {
		return nil, p.errorf(t.pos, "Expecting 'by' but got %s.", t.describe())
	}
	var out []jqlOrder
	for {
		t := p.next()
		if t.kind != tokWord && t.kind != tokString {
			return nil, p.errorf(t.pos, "Expecting a field name but got %s.", t.describe())
		}
		var field string
		switch strings.ToLower(t.text) {
		case "created", "createddate":
			field = "created"
		case "updated", "updateddate":
			field = "updated"
		case "key", "issuekey", "id":
			field = "key"
		default:
			if _, ok := canonicalField(t.text); ok || otherJiraField(t.text) {
				return nil, &jqlError{msg: fmt.Sprintf("Not able to sort using field '%s'.", t.text)}
			}
			return nil, &jqlError{msg: fmt.Sprintf("Field '%s' does not exist or you do not have permission to view it.", t.text)}
		}
		o := jqlOrder{field: field}
		if d := p.peek(); d.is("asc") || d.is("desc") {
			p.next()
			o.desc = d.is("desc")
		}
		out = append(out, o)
		if len(out) > maxOrderBy {
			return nil, &jqlError{msg: fmt.Sprintf("The ORDER BY clause cannot contain more than %d fields.", maxOrderBy)}
		}
		if p.peek().kind != tokComma {
			return out, nil
		}
		p.next()
	}
}
