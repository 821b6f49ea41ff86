package natskv

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"function/store"
)

// yamlLine finds the line number in a YAML error.
var yamlLine = regexp.MustCompile(`line (\d+)`)

// ParseAuthFile reads the client-auth YAML that Argo Events writes for the
// EventBus ("username: abc\npassword: def"), with the YAML library Argo's
// own clients read it with (through viper): quoting, comments, a document
// marker and other keys are all fine. Errors name at most a line, never
// the file's content, as that may be the password: the library's messages
// can quote it (a value that is not a string, an alias name), so they are
// not passed on.
func ParseAuthFile(data []byte) (user, pass string, err error) {
	var f struct {
		Username *string `yaml:"username"`
		Password *string `yaml:"password"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		var typeErr *yaml.TypeError
		switch m := yamlLine.FindStringSubmatch(err.Error()); {
		case errors.As(err, &typeErr):
			return "", "", errors.New("not a YAML mapping with string username and password")
		case m != nil:
			return "", "", fmt.Errorf("invalid YAML at line %s", m[1])
		default:
			return "", "", errors.New("invalid YAML")
		}
	}
	switch {
	case f.Username == nil || *f.Username == "":
		return "", "", errors.New("no username")
	case f.Password == nil || *f.Password == "":
		return "", "", errors.New("no password")
	}
	return *f.Username, *f.Password, nil
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
