package natskv

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"function/store"
)

// ParseAuthFile reads the client-auth YAML that Argo Events writes for the
// EventBus ("username: abc\npassword: def"). It accepts the plain, single-
// and double-quoted scalars YAML allows there, comments, CRLF line ends and
// a leading "---"; it is not a general YAML parser. Errors name the line,
// never its content, as that may be the password.
func ParseAuthFile(data []byte) (user, pass string, err error) {
	text := strings.TrimPrefix(string(data), "\ufeff")
	var haveUser, havePass bool
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line == "---" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, found := strings.Cut(line, ":")
		if !found {
			return "", "", fmt.Errorf("line %d: no \"key: value\"", i+1)
		}
		key = strings.TrimSpace(key)
		if key != "username" && key != "password" {
			continue
		}
		v, err := yamlScalar(strings.TrimSpace(value))
		if err != nil {
			return "", "", fmt.Errorf("line %d (%s): %w", i+1, key, err)
		}
		if key == "username" {
			user, haveUser = v, true
		} else {
			pass, havePass = v, true
		}
	}
	switch {
	case !haveUser || user == "":
		return "", "", errors.New("no username")
	case !havePass || pass == "":
		return "", "", errors.New("no password")
	}
	return user, pass, nil
}

// yamlScalar decodes a one-line YAML scalar: "double quoted" (JSON-style
// escapes), 'single quoted' (a doubled ' is one quote), or plain (ends at " #").
func yamlScalar(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, `"`):
		end := closingDoubleQuote(s)
		if end < 0 {
			return "", errors.New("unterminated double quote")
		}
		var v string
		if err := json.Unmarshal([]byte(s[:end+1]), &v); err != nil {
			return "", errors.New("bad escape in double-quoted value")
		}
		if err := trailer(s[end+1:]); err != nil {
			return "", err
		}
		return v, nil
	case strings.HasPrefix(s, "'"):
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '\'' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			if err := trailer(s[i+1:]); err != nil {
				return "", err
			}
			return b.String(), nil
		}
		return "", errors.New("unterminated single quote")
	default:
		if i := strings.Index(s, " #"); i >= 0 {
			s = s[:i]
		}
		if i := strings.Index(s, "\t#"); i >= 0 {
			s = s[:i]
		}
		return strings.TrimSpace(s), nil
	}
}

func closingDoubleQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// trailer accepts what may follow a quoted scalar: nothing or a comment.
func trailer(rest string) error {
	rest = strings.TrimSpace(rest)
	if rest == "" || strings.HasPrefix(rest, "#") {
		return nil
	}
	return errors.New("text after closing quote")
}

// redactURLs returns urls (comma separated) with any password replaced,
// and adds such passwords to secrets.
func redactURLs(urls string, secrets *[]string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "<unparsable url>" // may hold a password we cannot find
			continue
		}
		if pw, ok := u.User.Password(); ok && pw != "" {
			*secrets = append(*secrets, pw)
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

// redact hides secrets in err's text. Belt and braces: nats.go does not
// echo credentials today. A redacted error cannot unwrap to the original
// (whose text holds the secret), so it keeps only whether it is
// store.ErrUnavailable.
func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		// Shorter strings occur in ordinary words ("p" in "unavailable")
		// and are no secret worth garbling every message for.
		if len(s) >= minRedactLen && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[REDACTED]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, unavailable: errors.Is(err, store.ErrUnavailable)}
}

type redactedError struct {
	msg         string
	unavailable bool
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Is(target error) bool {
	return e.unavailable && target == store.ErrUnavailable
}
