package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"function/store"
	"function/store/memory"
)

// Every metric the README's Observability table names is served, with the
// labels it names, and every metric of the function's own is in the table.
func TestReadmeNamesEveryMetric(t *testing.T) {
	m := New()
	m.Event("", "rejected", time.Millisecond)
	m.Attempt("done")
	m.Backlog(2, time.Minute)
	m.Abandoned()
	m.Request("jira", "create issue", 201, time.Millisecond)
	m.Retried("jira", "create issue")
	m.RateLimitWait("jira", time.Second)
	st := m.Store(memory.New(time.Hour))
	if _, err := st.Put(context.Background(), store.Record{Fingerprint: "fp"}); err != nil {
		t.Fatal(err)
	}
	// The same record again, as written by someone who read it before:
	// the store refuses it, and the metric says why.
	if _, err := st.Put(context.Background(), store.Record{Fingerprint: "fp"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale Put: %v, want a conflict", err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	served := map[string]string{} // name → its last series
	for line := range strings.Lines(string(body)) {
		if name, _, ok := strings.Cut(line, "{"); ok && !strings.HasPrefix(line, "#") {
			name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			served[name] = line
		} else if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], namespace) {
			served[f[0]] = line
		}
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "## Observability")
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| (`[^|]+`) \\| ([^|]*) \\|$")
	names := regexp.MustCompile("`" + namespace + "(_[a-z_]+)`")
	examples := regexp.MustCompile(` \([^)]*\)`) // a label's values
	labels := regexp.MustCompile("^`([a-z_]+)`|, `([a-z_]+)`")
	var documented []string
	for _, r := range row.FindAllStringSubmatch(section, -1) {
		var want []string
		for _, l := range labels.FindAllStringSubmatch(examples.ReplaceAllString(r[2], ""), -1) {
			want = append(want, l[1]+l[2])
		}
		for _, n := range names.FindAllStringSubmatch(r[1], -1) {
			name := namespace + n[1]
			documented = append(documented, name)
			line, ok := served[name]
			if !ok {
				t.Errorf("README names %s, not served", name)
				continue
			}
			for _, l := range want {
				if !strings.Contains(line, l+`="`) {
					t.Errorf("README gives %s the label %s; served: %s", name, l, line)
				}
			}
		}
	}
	if len(documented) < 10 {
		t.Fatalf("read %d metric names from the README's table, want them all: %v", len(documented), documented)
	}
	for name := range served {
		if strings.HasPrefix(name, namespace) && !slices.Contains(documented, name) {
			t.Errorf("%s is served but not in the README's table", name)
		}
	}
}
