package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// writeCase is one write route: how to call it on a fresh emulator, and
// how to see in the state that the call took effect.
type writeCase struct {
	route string
	// call prepares the state the call needs and returns its path, body
	// and options.
	call func(env *testEnv) (path string, body any, opts []reqOpt)
	// took reports whether the state shows the call's effect.
	took func(env *testEnv) bool
}

func issueByKey(env *testEnv, key string) Issue {
	env.t.Helper()
	for _, is := range env.em.Issues() {
		if is.Key == key {
			return is
		}
	}
	env.t.Fatalf("no issue %s", key)
	return Issue{}
}

func pageByID(env *testEnv, id string) Page {
	env.t.Helper()
	for _, p := range env.em.Pages() {
		if p.ID == id {
			return p
		}
	}
	env.t.Fatalf("no page %s", id)
	return Page{}
}

func hasPageTitled(env *testEnv, title string) bool {
	return slices.ContainsFunc(env.em.Pages(), func(p Page) bool { return p.Title == title })
}

// writeCases covers every API route that changes state (the searches,
// which are POSTs, do not), for Jira Cloud and Data Center, Confluence
// v2 and both v1 paths, and Backstage.
func writeCases() []writeCase {
	var cases []writeCase
	link := map[string]any{"globalId": "rollback-postmortem:1", "object": map[string]any{"url": "https://wiki.example.com/p/1", "title": "Postmortem"}}
	for _, fl := range jiraFlavours {
		p, body := fl.prefix, fl.body
		var key string
		newIssue := func(env *testEnv) string {
			key = env.createIssue("lost answer").Key
			return p + "/issue/" + key
		}
		cases = append(cases,
			writeCase{"POST " + p + "/issue",
				func(env *testEnv) (string, any, []reqOpt) { return p + "/issue", issueBody("lost answer"), nil },
				func(env *testEnv) bool { return len(env.em.Issues()) == 1 }},
			writeCase{"POST " + p + "/issue/{issueIdOrKey}/comment",
				func(env *testEnv) (string, any, []reqOpt) {
					return newIssue(env) + "/comment", map[string]any{"body": body("news")}, nil
				},
				func(env *testEnv) bool { return len(env.em.Comments(key)) == 1 }},
			writeCase{"POST " + p + "/issue/{issueIdOrKey}/remotelink",
				func(env *testEnv) (string, any, []reqOpt) { return newIssue(env) + "/remotelink", link, nil },
				func(env *testEnv) bool { return len(issueByKey(env, key).RemoteLinks) == 1 }},
			writeCase{"PUT " + p + "/issue/{issueIdOrKey}",
				func(env *testEnv) (string, any, []reqOpt) {
					return newIssue(env), map[string]any{"fields": map[string]any{"description": body("edited")}}, nil
				},
				func(env *testEnv) bool { return strings.Contains(descriptionOf(env, key), "edited") }},
			writeCase{"POST " + p + "/issue/{issueIdOrKey}/transitions",
				func(env *testEnv) (string, any, []reqOpt) {
					return newIssue(env) + "/transitions", map[string]any{"transition": map[string]any{"id": "31"}}, nil
				},
				func(env *testEnv) bool { return issueByKey(env, key).Status == "Done" }},
		)
	}

	var pageID string
	newPage := func(env *testEnv) {
		space, _ := env.spaceID("INCIDENTS")
		pageID = env.createPage(space, "Postmortem", "<p>v1</p>").ID
	}
	cases = append(cases,
		writeCase{"POST /wiki/api/v2/pages",
			func(env *testEnv) (string, any, []reqOpt) {
				space, _ := env.spaceID("INCIDENTS")
				return "/wiki/api/v2/pages", pageBody(space, "Lost answer", "<p/>"), nil
			},
			func(env *testEnv) bool { return hasPageTitled(env, "Lost answer") }},
		writeCase{"PUT /wiki/api/v2/pages/{id}",
			func(env *testEnv) (string, any, []reqOpt) {
				newPage(env)
				return "/wiki/api/v2/pages/" + pageID, map[string]any{"id": pageID, "status": "current", "title": "Postmortem",
					"body": map[string]any{"representation": "storage", "value": "<p>v2</p>"}, "version": map[string]any{"number": 2}}, nil
			},
			func(env *testEnv) bool { return pageByID(env, pageID).Version == 2 }},
	)
	for _, v1 := range []string{"/wiki/rest/api", "/rest/api"} {
		cases = append(cases,
			writeCase{"POST " + v1 + "/content",
				func(env *testEnv) (string, any, []reqOpt) {
					return v1 + "/content", v1PageBody("Lost answer", "<p/>", ""), nil
				},
				func(env *testEnv) bool { return hasPageTitled(env, "Lost answer") }},
			writeCase{"PUT " + v1 + "/content/{id}",
				func(env *testEnv) (string, any, []reqOpt) {
					newPage(env)
					return v1 + "/content/" + pageID, map[string]any{"id": pageID, "type": "page", "title": "Postmortem",
						"space": map[string]any{"key": "INCIDENTS"}, "version": map[string]any{"number": 2},
						"body": map[string]any{"storage": map[string]any{"value": "<p>v2</p>", "representation": "storage"}}}, nil
				},
				func(env *testEnv) bool { return pageByID(env, pageID).Version == 2 }},
		)
	}
	cases = append(cases, writeCase{"POST " + bsPath,
		func(env *testEnv) (string, any, []reqOpt) {
			return bsPath, map[string]any{"recipients": map[string]any{"type": "broadcast"}, "payload": map[string]any{"title": "Rollback"}},
				[]reqOpt{withBearer(DefaultBackstageToken)}
		},
		func(env *testEnv) bool { return len(env.em.Notifications()) == 1 }})
	return cases
}

// TestWriteCasesCoverEveryWriteRoute keeps writeCases complete: a new
// write route must say how its lost answer is tested.
func TestWriteCasesCoverEveryWriteRoute(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range writeCases() {
		covered[c.route] = true
	}
	for _, r := range New(Options{}).Routes() {
		write := !strings.HasPrefix(r, "GET ") && !strings.Contains(r, "/search")
		if write != covered[r] {
			t.Errorf("route %q: write route %v, covered %v", r, write, covered[r])
		}
		delete(covered, r)
	}
	for r := range covered {
		t.Errorf("writeCases names %q, which is no route", r)
	}
}

// withheldSignal is a slog handler that reports each "answer withheld"
// record's route, so a test knows the call took effect.
type withheldSignal chan string

func (withheldSignal) Enabled(context.Context, slog.Level) bool { return true }
func (s withheldSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "fault: call served, answer withheld" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "route" {
				s <- a.Value.String()
			}
			return true
		})
	}
	return nil
}
func (s withheldSignal) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s withheldSignal) WithGroup(string) slog.Handler      { return s }

// TestAppliedThenLost checks "took effect, answer lost" on every write
// route: the call changes the state, and its caller sees a reset
// connection (applied, then reset) or no answer at all until it gives up
// (applied, then held).
func TestAppliedThenLost(t *testing.T) {
	for _, c := range writeCases() {
		t.Run(c.route, func(t *testing.T) {
			t.Run("reset", func(t *testing.T) {
				env := newEnv(t, Options{})
				path, body, opts := c.call(env)
				env.em.InjectFault(c.route, Fault{Applied: true, Reset: true}, 1)
				_, err := sendFresh(context.Background(), env, c.route, path, body, opts)
				if err == nil || !isConnReset(err) {
					t.Fatalf("client error = %v, want a connection reset", err)
				}
				if !c.took(env) {
					t.Error("the call did not take effect")
				}
			})
			t.Run("no answer", func(t *testing.T) {
				signal := make(withheldSignal, 1)
				env := newEnv(t, Options{Logger: slog.New(signal)})
				path, body, opts := c.call(env)
				env.em.InjectFault(c.route, Fault{Applied: true}, 1)
				ctx, giveUp := context.WithCancel(context.Background())
				defer giveUp()
				type result struct {
					status int
					err    error
				}
				done := make(chan result, 1)
				go func() {
					status, err := sendFresh(ctx, env, c.route, path, body, opts)
					done <- result{status, err}
				}()
				select {
				case got := <-signal:
					if got != c.route {
						t.Fatalf("withheld the answer of %q", got)
					}
				case r := <-done:
					t.Fatalf("the caller got an answer: %d %v", r.status, r.err)
				}
				if !c.took(env) {
					t.Error("the call did not take effect")
				}
				select {
				case r := <-done:
					t.Fatalf("the caller got an answer: %d %v", r.status, r.err)
				default:
				}
				giveUp() // the caller's timeout
				if r := <-done; !errors.Is(r.err, context.Canceled) {
					t.Fatalf("caller: %d %v, want it to give up without an answer", r.status, r.err)
				}
			})
		})
	}
}

// sendFresh sends one request on a new connection, so that Go's transport
// cannot retry it on another, and returns the answer's status.
func sendFresh(ctx context.Context, env *testEnv, route, path string, body any, opts []reqOpt) (int, error) {
	method, _, _ := strings.Cut(route, " ")
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, env.srv.URL+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(DefaultEmail, DefaultAPIToken)
	for _, o := range opts {
		o(req)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// descriptionOf is the issue's description as the emulator holds it.
func descriptionOf(env *testEnv, key string) string {
	is := issueByKey(env, key)
	return string(is.Description) + is.DescriptionWiki
}
