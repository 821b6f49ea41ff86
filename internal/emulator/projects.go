package emulator

import (
	"fmt"
	"regexp"
	"strings"
)

// projectKeyPattern is Jira's default project key format.
var projectKeyPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]{1,9}$`)

// ParseProjects parses the project flag format used by the emulator
// commands: "KEY:Type,Type;KEY:Type", e.g. "OPS:Incident,Task,Bug;SRE:Incident".
// Keys are upper-cased and must look like Jira project keys; every project
// needs at least one issue type.
func ParseProjects(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, types, ok := strings.Cut(part, ":")
		key = strings.ToUpper(strings.TrimSpace(key))
		if !ok {
			return nil, fmt.Errorf("project %q: want KEY:Type[,Type...]", part)
		}
		if !projectKeyPattern.MatchString(key) {
			return nil, fmt.Errorf("project key %q: want 2-10 characters, a letter followed by letters, digits or underscores", key)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("project %q listed twice", key)
		}
		var names []string
		for _, t := range strings.Split(types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				names = append(names, t)
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("project %q: no issue types", key)
		}
		out[key] = names
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no projects in %q", s)
	}
	return out, nil
}
